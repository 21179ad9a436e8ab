"""Trace search: matching rows pick traces, summaries cover every row of the trace in the
environment within the window, trace-level filters, newest first."""

from __future__ import annotations

import contextlib
import itertools
import random
from unittest import mock

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from query_fixtures import NS, T0_S, Fixture

import tracehive.storage.duckdb.traces as traces_mod
from tracehive.model.batch import EventBatch
from tracehive.query.spec import SpecError, parse_spec
from tracehive.storage.api import Scope, TraceSummary
from tracehive.storage.arrow import to_arrow
from tracehive.storage.duckdb.backend import DuckDBStore
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


# -- the paged search against a brute-force oracle ---------------------------------------------
#
# ``search_traces`` reads candidates in time slices and summarizes them in batches (see the module
# docstring); these tests compare it with the definition computed in Python from the rows written,
# on data built to break the shortcuts: logs before the first span, span events whose span
# precedes the window, traces split over distant writes and datasets, span-less traces, long traces
# straddling the window start, and two environments. Every search runs with the default sizes and
# with tiny slices and batches (many rounds of the loop).

DATA_T0 = T0_S * NS
SERVICES = ("web", "api", "db", "worker")
SPAN_FILTERS = [
    {"column": "service.name", "op": "=", "value": "db"},
    {"column": "name", "op": "=", "value": "op1"},
    {"column": "k", "op": "=", "value": 3},
    {"column": "body", "op": "contains", "value": "boom"},
    {"column": "error", "op": "=", "value": True},
    {"column": "ev", "op": "exists"},
]
TRACE_FILTERS = [
    {"column": "duration_ms", "op": ">", "value": 2000},
    {"column": "duration_ms", "op": "<=", "value": 500},
    {"column": "span_count", "op": ">=", "value": 3},
    {"column": "error", "op": "=", "value": True},
    {"column": "error", "op": "=", "value": False},
    {"column": "root.name", "op": "=", "value": "op0"},
    {"column": "root.service.name", "op": "=", "value": "web"},
    {"column": "service.name", "op": "=", "value": "worker"},
    {"column": "service.name", "op": "!=", "value": "web"},
]


def _random_traces(rng: random.Random, n: int) -> list[dict]:
    """Rows of ``n`` traces (each row with ``env_id`` and ``dataset_id``)."""
    rows = []
    for t in range(n):
        tid = rng.getrandbits(128).to_bytes(16, "big")
        env = 1 if rng.random() < 0.9 else 2
        start = DATA_T0 + rng.randrange(-300 * NS, 3900 * NS)
        spread = 1200 * NS if rng.random() < 0.05 else 3 * NS  # a few long traces
        times = sorted(rng.sample(range(spread), 12))
        n_spans = rng.choice([0, 1, 2, 3, 4, 5])
        has_root = rng.random() < 0.9
        out = []
        for i in range(n_spans):
            ts = start + times[i]
            span = {
                "ts_ns": ts,
                "dur_ns": rng.randrange(1, 3 * NS),
                "span_id": t * 100 + i + 1,
                "parent_id": None if (i == 0 and has_root) else t * 100 + max(i, 1),
                "service": rng.choice(SERVICES),
                "name": f"op{rng.randrange(4)}",
                "error": rng.random() < 0.05,
                "signal": "span",
                "attributes": {"k": rng.randrange(8)} if rng.random() < 0.5 else {},
            }
            out.append(span)
            if rng.random() < 0.2:
                out.append(
                    {
                        "ts_ns": ts + rng.randrange(span["dur_ns"]),
                        "parent_id": span["span_id"],
                        "service": span["service"],
                        "name": "exception",
                        "error": True,
                        "signal": "span_event",
                        "attributes": {"ev": 1},
                    }
                )
            if rng.random() < 0.1:
                out.append(
                    {
                        "ts_ns": ts,
                        "parent_id": span["span_id"],
                        "service": span["service"],
                        "signal": "link",
                        "attributes": {},
                    }
                )
        for _ in range(rng.choice([0, 0, 1, 2])):  # logs, possibly before the first span
            out.append(
                {
                    "ts_ns": start + rng.randrange(-900 * NS, 10 * NS),
                    "service": rng.choice(SERVICES),
                    "body": rng.choice(["hello", "boom"]),
                    "signal": "log",
                    "attributes": {},
                }
            )
        if n_spans == 0 and rng.random() < 0.5:
            out.append(
                {"ts_ns": start, "service": "web", "name": "op0", "signal": "event", "dur_ns": 5}
            )
        if rng.random() < 0.05:  # a span event in the window whose span starts before it
            out.append(
                {
                    "ts_ns": DATA_T0 + rng.randrange(0, 60 * NS),
                    "service": "db",
                    "name": "exception",
                    "error": True,
                    "signal": "span_event",
                    "attributes": {"ev": 1},
                }
            )
        for row in out:
            row["trace_id"] = tid
            row["env_id"] = env
            row["dataset_id"] = 1 + SERVICES.index(row["service"]) % 3
        rows += out
    return rows


NOT_FIXED = ("attributes", "env_id", "dataset_id")


class Paged:
    """The store and the rows written to it (a short repr for hypothesis reports)."""

    def __init__(self, store: DuckDBStore, rows: list[dict]) -> None:
        self.store, self.rows = store, rows

    def __repr__(self) -> str:
        return f"Paged({len(self.rows)} rows)"


def _write(store, rows: list[dict], rng: random.Random) -> None:
    """Roughly in time order (as ingest sees it), in writes of varied size; some rows late."""
    order = sorted(rows, key=lambda r: r["ts_ns"] + rng.randrange(0, 30 * NS))
    late = [r for r in order if rng.random() < 0.03]
    order = [r for r in order if not any(r is x for x in late)] + late
    wal = itertools.count(1)
    i = 0
    while i < len(order):
        chunk = order[i : i + rng.choice([1, 5, 40, 200])]
        i += len(chunk)
        for env in (1, 2):
            mine = [r for r in chunk if r["env_id"] == env]
            if not mine:
                continue
            batch = EventBatch()
            for r in mine:
                fixed = {
                    k: v for k, v in r.items() if k not in ("attributes", "env_id", "dataset_id")
                }
                batch.append(attributes=r.get("attributes"), dataset="ds", **fixed)
            store.write(to_arrow(batch, env, [r["dataset_id"] for r in mine]), [], next(wal))


def _row_matches(row: dict, f: dict) -> bool:
    col, op, value = f["column"], f["op"], f.get("value")
    if col == "service.name":
        return row.get("service") == value
    if col == "name":
        return row.get("name") == value
    if col == "error":
        return row.get("error") is value
    if col == "body":
        return row.get("body") is not None and value in row["body"]
    if op == "exists":
        return col in row.get("attributes", {})
    return row.get("attributes", {}).get(col) == value


def _summary(rows: list[dict]) -> TraceSummary:
    spans = [r for r in rows if r["signal"] == "span"]
    if spans:
        start = min(r["ts_ns"] for r in spans)
        duration = (max(r["ts_ns"] + r["dur_ns"] for r in spans) - start) / 1e6
        root = min(spans, key=lambda r: (r["parent_id"] is not None, r["ts_ns"]))
        root_service, root_name = root["service"], root["name"]
    else:
        start, duration = min(r["ts_ns"] for r in rows), 0.0
        root_service = root_name = None
    return TraceSummary(
        rows[0]["trace_id"],
        start,
        duration,
        len(spans),
        any(r.get("error") is True for r in rows),
        root_service,
        root_name,
        sorted({r["service"] for r in rows if r.get("service") is not None}),
    )


def _trace_passes(t: TraceSummary, f: dict) -> bool:
    col, op, value = f["column"], f["op"], f.get("value")
    if col == "service.name":
        return (value in t.services) == (op == "=")
    field = {
        "duration_ms": t.duration_ms,
        "span_count": t.span_count,
        "error": t.error,
        "root.name": t.root_name,
        "root.service.name": t.root_service,
    }[col]
    if field is None:
        return False
    return {"=": field == value, ">": field > value, "<=": field <= value, ">=": field >= value}[op]


def _oracle(rows, scope, filters, combination, trace_filters, window, limit):
    lo, hi = (s * NS for s in window)
    in_window = [r for r in rows if r["env_id"] == scope.env_id and lo <= r["ts_ns"] < hi]
    matched = set()
    for r in in_window:
        if scope.dataset_ids is not None and r["dataset_id"] not in scope.dataset_ids:
            continue
        tests = [_row_matches(r, f) for f in filters]
        if not filters or (all(tests) if combination == "AND" else any(tests)):
            matched.add(r["trace_id"])
    by_trace: dict[bytes, list[dict]] = {}
    for r in in_window:
        if r["trace_id"] in matched:
            by_trace.setdefault(r["trace_id"], []).append(r)
    found = [_summary(rs) for rs in by_trace.values()]
    found = [t for t in found if all(_trace_passes(t, f) for f in trace_filters)]
    found.sort(key=lambda t: (-t.start_ns, t.trace_id))
    return found[:limit]


@pytest.fixture(scope="module")
def paged(tmp_path_factory):
    rng = random.Random(20261204)
    store = DuckDBStore(tmp_path_factory.mktemp("paged") / "store.duckdb")
    rows = _random_traces(rng, 700)
    _write(store, rows, rng)
    yield Paged(store, rows)
    store.close()


TINY = {
    "FIRST_SLICE_FRACTION": 4096,
    "MAX_SLICE_CANDIDATES": 40,
    "MAX_SCAN_GROWTH": 1,
    "MAX_BATCH": 8,
    "MAX_BATCH_GROWTH": 2,
}


@contextlib.contextmanager
def _seq_filters():
    """The seq filter of every summary statement (``TRUE``: the trace index was bypassed)."""
    seen: list[str] = []
    real = traces_mod._Search._summaries

    def spy(self, seq_filter):
        seen.append(seq_filter)
        return real(self, seq_filter)

    with mock.patch.object(traces_mod._Search, "_summaries", spy):
        yield seen


def _compare(store, rows, scope, filters, combination, trace_filters, window, limit):
    expected = _oracle(rows, scope, filters, combination, trace_filters, window, limit)
    spec = parse_spec(
        {"start_time": window[0], "end_time": window[1], "filters": filters}
        | ({"filter_combination": combination} if len(filters) > 1 else {})
    )
    for sizes in ({"MAX_BATCH": traces_mod.MAX_BATCH}, TINY):
        with mock.patch.multiple(traces_mod, **sizes), _seq_filters() as seq_filters:
            got = search_traces(
                store.cursor(), scope, spec, trace_filters, store.resolve, window[1], limit
            )
        assert "TRUE" not in seq_filters  # every summary went through the trace index
        assert [t.trace_id.hex() for t in got] == [t.trace_id.hex() for t in expected], sizes
        for g, e in zip(got, expected, strict=True):
            assert g.duration_ms == pytest.approx(e.duration_ms)
            assert (g.start_ns, g.span_count, g.error, g.root_service, g.root_name, g.services) == (
                e.start_ns,
                e.span_count,
                e.error,
                e.root_service,
                e.root_name,
                e.services,
            )
    return expected


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    filters=st.lists(st.sampled_from(SPAN_FILTERS), max_size=2, unique_by=lambda f: f["column"]),
    combination=st.sampled_from(["AND", "OR"]),
    trace_filters=st.lists(st.sampled_from(TRACE_FILTERS), max_size=2),
    datasets=st.sampled_from([None, (1,), (2, 3), ()]),
    env_id=st.sampled_from([1, 1, 1, 2]),
    window=st.sampled_from([(0, 3600), (0, 600), (1800, 3600), (-600, 4200), (3000, 3060)]),
    limit=st.sampled_from([1, 2, 5, 12, 40]),
)
def test_paged_search_equals_the_definition(
    paged, filters, combination, trace_filters, datasets, env_id, window, limit
):
    store, rows = paged.store, paged.rows
    window = (T0_S + window[0], T0_S + window[1])
    _compare(
        store, rows, Scope(env_id, datasets), filters, combination, trace_filters, window, limit
    )


def test_log_before_the_first_span_is_ranked_by_its_spans(fx):
    """A trace matched only by a log older than every other match ranks by its spans' start,
    although the slices stop long before the log (the late-span check finds it)."""
    rows = []
    for i in range(300):  # traces matched by their spans, one per 10 s
        rows += _trace(1000 + i, T0_S + 10 * i, ["web"], extra={"tag": "x"})
    late = _trace(7, T0_S + 3000, ["api", "db"])  # its spans start at +3000 s ...
    late.append({**late[-1], "ts_ns": (T0_S + 5) * NS, "body": "needle"})  # ... a log at +5 s
    fx.add(rows + late)
    either = [{"column": "tag", "op": "exists"}, {"column": "body", "op": "=", "value": "needle"}]
    assert ids(search(fx, either, filter_combination="OR", limit=5)) == [7, 1299, 1298, 1297, 1296]
    found = search(fx, [{"column": "body", "op": "=", "value": "needle"}])
    assert ids(found) == [7] and found[0].start_ns == (T0_S + 3000) * NS


def test_a_log_match_does_not_bound_the_start(fx):
    """A log can precede its trace's spans: a trace matched only by a log 100 s before its spans
    must not wait behind traces that start between the two."""
    rows = []
    for i in range(300):
        rows += _trace(1000 + i, T0_S + 10 * i, ["web"], extra={"tag": "x"})
    late = _trace(7, T0_S + 2995, ["api"])
    late.append({**late[-1], "ts_ns": (T0_S + 2895) * NS, "body": "needle"})
    fx.add(rows + late)
    either = [{"column": "tag", "op": "exists"}, {"column": "body", "op": "=", "value": "needle"}]
    assert ids(search(fx, either, filter_combination="OR", limit=1)) == [7]
    assert ids(search(fx, either, filter_combination="OR", limit=2)) == [7, 1299]


def test_dataset_scope_match_by_a_log_only(fx):
    """Without filters but with a dataset scope, a trace can match through a log alone (its spans
    in another dataset): it still ranks by its spans."""
    rows = []
    for i in range(300):
        rows += _trace(1000 + i, T0_S + 10 * i, ["web"])
    fx.add(rows, dataset_id=2)
    late = _trace(7, T0_S + 3000, ["api"])
    fx.add([r for r in late if r["signal"] == "span"], dataset_id=1)
    fx.add([{**late[-1], "ts_ns": (T0_S + 5) * NS}], dataset_id=2)  # its log, long before
    found = search(fx, scope=Scope(1, (2,)), limit=3)
    assert ids(found) == [7, 1299, 1298] and found[0].services == ["api"]


def test_trace_split_over_writes_and_missing_from_the_index(fx):
    tid = 42
    rows = _trace(tid, T0_S + 3000, ["web", "api", "db"])
    for r in rows:
        fx.add([r])  # one write (seq) per row
    fx.add(_trace(43, T0_S + 10, ["web"]))
    found = search(fx)
    assert ids(found) == [42, 43] and found[0].span_count == 3
    assert found[0].services == ["api", "db", "web"]
    fx.store.cursor().execute("DELETE FROM trace_index")  # an incomplete index: still exact
    with _seq_filters() as seq_filters:
        assert search(fx) == found
    assert seq_filters == ["TRUE"]
    # the late-span check (a filter, a page filled before the window is) without the index too
    assert search(fx, [{"column": "service.name", "op": "exists"}], limit=1) == found[:1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=400))
def test_seq_filter_covers_every_seq_in_few_ranges(seqs):
    sql = traces_mod._seq_filter(seqs)
    assert sql.count("seq") <= 2 * traces_mod.MAX_SEQ_RANGES
    con = duckdb.connect()
    kept = {r[0] for r in con.execute(f"SELECT seq FROM range(5001) t(seq) WHERE {sql}").fetchall()}
    assert set(seqs) <= kept
    if len(set(seqs)) <= traces_mod.MAX_SEQ_RANGES:
        assert kept == set(seqs)  # few values: exact


def test_root_service_and_name_come_from_one_span_on_a_tie(fx):
    """Two parentless spans starting at the same instant: the root is the one with the lower
    span id, for its service and its name alike (not one field from each)."""
    tid = (4242).to_bytes(16, "big")
    span = {"ts_ns": (T0_S + 7) * NS, "dur_ns": NS, "trace_id": tid, "signal": "span"}
    fx.add(
        [
            {**span, "span_id": 9, "service": "a-svc", "name": "z-op", "attributes": {}},
            {**span, "span_id": 3, "service": "z-svc", "name": "a-op", "attributes": {}},
        ]
    )
    (found,) = search(fx)
    assert (found.root_service, found.root_name) == ("z-svc", "a-op")
