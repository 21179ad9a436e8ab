"""Trace search: matching rows pick traces, summaries cover every row of the trace in the
environment within the window, trace-level filters, newest first."""

from __future__ import annotations

import pytest
from query_fixtures import NS, T0_S, Fixture

from tracehive.query.spec import SpecError, parse_spec
from tracehive.storage.api import Scope
from tracehive.storage.duckdb.traces import search_traces

WINDOW = {"start_time": T0_S, "end_time": T0_S + 3600}


def _trace(
    tid: int,
    start_s: int,
    services: list[str],
    error_at: int | None = None,
    root: bool = True,
    dataset_id: int = 1,
    extra: dict | None = None,
) -> list[dict]:
    rows = []
    for i, svc in enumerate(services):
        rows.append(
            {
                "ts_ns": (start_s + i) * NS,
                "dur_ns": (10 - i) * NS // 10,
                "trace_id": tid.to_bytes(16, "big"),
                "span_id": i + 1,
                "parent_id": None if (i == 0 and root) else (i or 99),
                "service": svc,
                "name": f"{svc}-op{i}",
                "error": i == error_at,
                "signal": "span",
                "attributes": {"user.id": f"u{tid}", **(extra or {})},
            }
        )
    rows.append(
        {
            "ts_ns": (start_s + 1) * NS,
            "trace_id": tid.to_bytes(16, "big"),
            "service": services[0],
            "signal": "log",
            "body": "hello",
            "attributes": {},
        }
    )
    return rows


@pytest.fixture
def tfx(fx):
    fx.add(_trace(1, T0_S + 10, ["web", "api", "db"], error_at=2))
    fx.add(_trace(2, T0_S + 100, ["web", "api"], extra={"vip": True}))
    fx.add(_trace(3, T0_S + 200, ["worker"], root=False))
    fx.add(_trace(4, T0_S + 300, ["web"]), dataset_id=2)
    fx.add(_trace(5, T0_S - 500, ["web"]))  # before the window
    fx.add(_trace(6, T0_S + 400, ["web"]), env_id=2)  # another environment
    return fx


def search(fx: Fixture, filters=(), trace_filters=(), scope=None, limit=100, **spec):
    scope = scope or Scope(1, None)
    return search_traces(
        fx.store.cursor(),
        scope,
        parse_spec({**WINDOW, "filters": list(filters), **spec}),
        list(trace_filters),
        fx.store.resolver(scope),
        T0_S + 3600,
        limit,
    )


def ids(found):
    return [int.from_bytes(t.trace_id, "big") for t in found]


def test_all_traces_newest_first_with_summaries(tfx):
    found = search(tfx)
    assert ids(found) == [4, 3, 2, 1]
    t1 = found[-1]
    assert t1.start_ns == (T0_S + 10) * NS
    assert t1.span_count == 3 and t1.error is True
    assert t1.root_service == "web" and t1.root_name == "web-op0"
    assert t1.services == ["api", "db", "web"]
    # from the first span's start to the latest span end (the 3rd span: +2 s, 0.8 s long)
    assert t1.duration_ms == pytest.approx(2800.0)
    t3 = found[1]
    assert t3.root_name == "worker-op0"  # no parentless span: the earliest
    assert search(tfx, limit=2) == found[:2]


def test_span_filters_pick_traces_and_summaries_use_every_row(tfx):
    found = search(tfx, [{"column": "service.name", "op": "=", "value": "db"}])
    assert ids(found) == [1]
    assert found[0].span_count == 3
    assert ids(search(tfx, [{"column": "vip", "op": "exists"}])) == [2]
    both = [{"column": "service.name", "op": "=", "value": "db"}, {"column": "vip", "op": "exists"}]
    assert ids(search(tfx, both, filter_combination="OR")) == [2, 1]
    assert ids(search(tfx, [{"column": "body", "op": "contains", "value": "ell"}])) == [4, 3, 2, 1]


def test_dataset_scope_selects_matches_not_summaries(tfx):
    assert ids(search(tfx, scope=Scope(1, (2,)))) == [4]
    assert ids(search(tfx, scope=Scope(2, None))) == [6]  # each environment sees its own


@pytest.mark.parametrize(
    ("tf", "expect"),
    [
        ({"column": "duration_ms", "op": ">", "value": 1500}, [2, 1]),
        ({"column": "duration_ms", "op": "<=", "value": 1000}, [4, 3]),
        ({"column": "span_count", "op": ">=", "value": 2}, [2, 1]),
        ({"column": "error", "op": "=", "value": True}, [1]),
        ({"column": "error", "op": "!=", "value": True}, [4, 3, 2]),
        ({"column": "root.name", "op": "starts-with", "value": "web"}, [4, 2, 1]),
        ({"column": "root.service.name", "op": "in", "value": ["worker", "api"]}, [3]),
        ({"column": "service.name", "op": "=", "value": "api"}, [2, 1]),
        ({"column": "service.name", "op": "!=", "value": "api"}, [4, 3]),
        ({"column": "service.name", "op": "in", "value": ["db", "worker"]}, [3, 1]),
        ({"column": "service.name", "op": "contains", "value": "ork"}, [3]),
        ({"column": "service.name", "op": "does-not-exist"}, []),
    ],
)
def test_trace_filters(tfx, tf, expect):
    assert ids(search(tfx, trace_filters=[tf])) == expect


@pytest.mark.parametrize(
    ("tf", "field"),
    [
        ({"column": "nope", "op": "=", "value": 1}, "trace_filters[0].column"),
        ({"column": "duration_ms", "op": "~", "value": 1}, "trace_filters[0].op"),
        ({"column": "duration_ms", "op": ">", "value": "slow"}, "trace_filters[0].value"),
        ("x", "trace_filters[0]"),
    ],
)
def test_trace_filter_errors_name_the_field(tfx, tf, field):
    with pytest.raises(SpecError) as info:
        search(tfx, trace_filters=[tf])
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
