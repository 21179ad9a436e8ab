"""The storage contract (storage/api.py), run unchanged against every adapter."""

from __future__ import annotations

import os

from tracehive.model.batch import EventBatch, MetricBatch, MetricPoint
from tracehive.storage.api import Scope
from tracehive.storage.arrow import to_arrow

T0 = 1_700_000_000_000_000_000
TRACE_A = bytes.fromhex("4efaaf4d1e8720b39541901950019ee5")
TRACE_B = os.urandom(16)


def _spans(trace_id: bytes, dataset: str = "backend-flask", n: int = 3, t0: int = T0, **attrs):
    b = EventBatch()
    for i in range(n):
        b.append(
            dataset=dataset,
            service=dataset,
            ts_ns=t0 + i * 1000,
            dur_ns=(i + 1) * 1_000_000,
            trace_id=trace_id,
            span_id=i + 1,
            parent_id=None if i == 0 else i,
            name=f"span-{i}",
            kind="server" if i == 0 else "internal",
            status_code=2 if i == 2 else 0,
            error=i == 2,
            signal="span",
            attributes={"app.result_length": i, "http.route": "/api/activities/home", **attrs},
        )
    return b


def _write(store, batch, wal_end, env_id=1, dataset_id=1):
    store.write(to_arrow(batch, env_id, [dataset_id] * batch.n), [], wal_end)


def test_empty_store_position_is_zero(store):
    assert store.wal_position() == (0, 0)


def test_write_records_wal_position_monotonically(store):
    _write(store, _spans(TRACE_A), 5)
    assert store.wal_position() == (5, 0)
    store.write(None, [], 9, 100)
    assert store.wal_position() == (9, 100)
    store.write(None, [], 7)  # an older position never moves it back
    assert store.wal_position() == (9, 100)
    store.write(None, [], 10)
    assert store.wal_position() == (10, 0)


def test_get_trace_returns_every_row_with_attributes(store):
    _write(store, _spans(TRACE_A), 1)
    _write(store, _spans(TRACE_B, n=2), 2)
    rows = store.get_trace(1, TRACE_A)
    assert len(rows) == 3
    assert sorted(r["name"] for r in rows) == ["span-0", "span-1", "span-2"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["span-1"]["parent_id"] == 1
    assert by_name["span-2"]["error"] is True
    assert by_name["span-1"]["attributes"]["app.result_length"] == 1
    assert by_name["span-0"]["trace.trace_id"] == TRACE_A.hex()
    assert by_name["span-0"]["dur_ns"] == 1_000_000
    assert store.get_trace(2, TRACE_A) == []  # another environment sees nothing
    assert store.get_trace(1, os.urandom(16)) == []


def test_trace_split_over_many_writes_is_found_whole(store):
    for i in range(5):
        b = _spans(TRACE_A, n=1, t0=T0 + i)
        b.cols["span_id"][0] = 100 + i
        _write(store, b, i + 1)
        _write(store, _spans(os.urandom(16), n=4), 100 + i)
    assert sorted(r["span_id"] for r in store.get_trace(1, TRACE_A)) == [100, 101, 102, 103, 104]


def test_new_attribute_keys_and_types_add_columns(store):
    _write(store, _spans(TRACE_A, **{"user.id": "u1"}), 1)
    _write(store, _spans(TRACE_B, **{"user.id": 42, "new.key": True}), 2)
    resolved = store.resolve("user.id")
    assert sorted(c.type for c in resolved) == ["integer", "string"]
    assert store.resolve("duration_ms").physical == "dur_ns"
    assert store.resolve("nope") is None
    rows = store.get_trace(1, TRACE_B)
    assert {r["attributes"]["user.id"] for r in rows} == {42}
    assert all(r["attributes"]["new.key"] is True for r in rows)


def test_columns_are_per_dataset(store):
    _write(store, _spans(TRACE_A, **{"only.a": "x"}), 1, dataset_id=1)
    _write(store, _spans(TRACE_B, dataset="other", **{"only.b": 1.5}), 2, dataset_id=2)
    names_a = {c.name for c in store.columns(Scope(1, (1,))) if not c.fixed}
    names_b = {c.name for c in store.columns(Scope(1, (2,))) if not c.fixed}
    names_all = {c.name for c in store.columns(Scope(1, None)) if not c.fixed}
    assert "only.a" in names_a and "only.a" not in names_b
    assert "only.b" in names_b and "only.b" not in names_a
    assert {"only.a", "only.b", "http.route"} <= names_all
    fixed = {c.name for c in store.columns(Scope(1, (1,))) if c.fixed}
    assert {"duration_ms", "trace.trace_id", "name", "service.name"} <= fixed
    assert not [c for c in store.columns(Scope(9, None)) if not c.fixed]


def test_retention_deletes_only_old_rows_of_that_environment(store):
    _write(store, _spans(TRACE_A, t0=T0), 1, env_id=1)
    _write(store, _spans(TRACE_B, t0=T0 + 10**12), 2, env_id=1)
    _write(store, _spans(TRACE_A, t0=T0), 3, env_id=2)
    assert store.delete_before(1, T0 + 10**11) == 3
    assert store.get_trace(1, TRACE_A) == []
    assert len(store.get_trace(1, TRACE_B)) == 3
    assert len(store.get_trace(2, TRACE_A)) == 3


def test_metrics_written_with_position(store):
    batch = MetricBatch(
        [
            MetricPoint(
                dataset="m",
                name="requests",
                kind="sum",
                ts_ns=T0,
                value=3.0,
                is_monotonic=True,
                temporality=2,
                attributes={"route": "/"},
            ),
            MetricPoint(
                dataset="m",
                name="latency",
                kind="histogram",
                ts_ns=T0,
                count=3,
                sum=6.0,
                bucket_counts=[1, 2],
                explicit_bounds=[5.0],
            ),
            MetricPoint(
                dataset="m",
                name="q",
                kind="summary",
                ts_ns=T0,
                count=1,
                sum=1.0,
                quantiles=[(0.5, 1.0)],
            ),
        ]
    )
    store.write(None, [(1, [3, 3, 3], batch)], 4)
    assert store.wal_position() == (4, 0)
    rows = (
        store.cursor()
        .execute("SELECT name, kind, value, bucket_counts FROM metric_points ORDER BY name")
        .fetchall()
    )
    assert [r[0] for r in rows] == ["latency", "q", "requests"]
    assert rows[0][3] == [1, 2]
    assert rows[2][2] == 3.0


def test_reopen_keeps_data_and_columns(tmp_path):
    from tracehive.storage.duckdb.backend import DuckDBStore

    s = DuckDBStore(tmp_path / "s.duckdb")
    _write(s, _spans(TRACE_A, **{"k": "v"}), 3)
    s.close()
    s = DuckDBStore(tmp_path / "s.duckdb")
    try:
        assert s.wal_position() == (3, 0)
        assert [c.type for c in s.resolve("k")] == ["string"]
        assert [c.type for c in s.resolve("k", Scope(1, (1,)))] == ["string"]  # still scoped
        assert s.resolve("k", Scope(2, None)) is None and s.resolve("k", Scope(1, (2,))) is None
        _write(s, _spans(TRACE_B, **{"k2": 1}), 4)
        assert len(s.get_trace(1, TRACE_B)) == 3
    finally:
        s.close()


def _query(store, scope, **spec):
    from tracehive.query.spec import parse_spec

    window = {"start_time": T0 // 10**9 - 60, "end_time": T0 // 10**9 + 60}
    data = store.run_query(scope, parse_spec({**window, **spec}), T0 // 10**9 + 60, False)
    return data.results


def _attr_types(store, name, scope):
    resolved = store.resolve(name, scope)
    return None if resolved is None else sorted(c.type for c in resolved)


def test_attribute_names_resolve_per_scope(store):
    import pytest

    from tracehive.query.spec import SpecError

    _write(store, _spans(TRACE_A, **{"user.id": "u1", "only.a": 1}), 1, dataset_id=1)
    _write(store, _spans(TRACE_B, dataset="b", **{"user.id": 7, "only.b": 1}), 2, dataset_id=2)
    _write(store, _spans(os.urandom(16), **{"theirs": "x"}), 3, env_id=2, dataset_id=1)
    # another environment's names are unknown, even though their columns exist in the store
    assert store.resolve("theirs", Scope(1, None)) is None
    assert _attr_types(store, "theirs", Scope(2, None)) == ["string"]
    assert store.resolve("only.a", Scope(2, None)) is None
    # a dataset knows its own names; the environment (all datasets) knows all of them
    assert store.resolve("only.a", Scope(1, (2,))) is None
    assert _attr_types(store, "only.a", Scope(1, (1,))) == ["integer"]
    assert _attr_types(store, "only.a", Scope(1, None)) == ["integer"]
    assert _attr_types(store, "only.b", Scope(1, (1, 2))) == ["integer"]
    # only the value types written in the scope count
    assert _attr_types(store, "user.id", Scope(1, (1,))) == ["string"]
    assert _attr_types(store, "user.id", Scope(1, (2,))) == ["integer"]
    assert _attr_types(store, "user.id", Scope(1, None)) == ["integer", "string"]
    assert store.resolve("user.id", Scope(1, ())) is None
    # well-known names are known everywhere
    assert store.resolve("duration_ms", Scope(9, None)).physical == "dur_ns"
    # queries resolve within their scope: a leaked name is as unknown as a never-written one
    for name in ("theirs", "never.written"):
        with pytest.raises(SpecError, match="unknown column"):
            _query(store, Scope(1, None), breakdowns=[name])
    assert _query(store, Scope(2, None), breakdowns=["theirs"]) == [{"theirs": "x", "COUNT": 3}]
    for op, count in (("exists", None), ("does-not-exist", 6)):
        rows = _query(store, Scope(1, None), filters=[{"column": "theirs", "op": op}])
        assert rows == ([{"COUNT": count}] if count else [])
    assert {r["user.id"] for r in _query(store, Scope(1, (1,)), breakdowns=["user.id"])} == {"u1"}
    # names written later become known at once (cached scopes are refreshed)
    assert store.resolve("late", Scope(1, (2,))) is None
    assert store.resolve("late", Scope(1, None)) is None
    _write(store, _spans(os.urandom(16), dataset="b", late=True), 4, dataset_id=2)
    assert _attr_types(store, "late", Scope(1, (2,))) == ["boolean"]
    assert _attr_types(store, "late", Scope(1, None)) == ["boolean"]
    assert store.resolve("late", Scope(1, (1,))) is None
    assert store.resolve("late", Scope(2, None)) is None
    _write(store, _spans(os.urandom(16), **{"only.a": "text"}), 5, dataset_id=1)
    assert _attr_types(store, "only.a", Scope(1, (1,))) == ["integer", "string"]
    assert _attr_types(store, "only.a", Scope(1, (2,))) is None


def _event(attributes=None, **fixed):
    b = EventBatch()
    b.append(dataset="events", ts_ns=T0, signal="event", attributes=attributes, **fixed)
    return b


def test_well_known_name_also_written_as_an_attribute_reads_both(store):
    scope = Scope(1, (1,))
    _write(store, _event(name="GET /", dur_ns=2_500_000, status_code=2, trace_id=TRACE_A), 1)
    # what the events API stores for {"name": 5, "duration_ms": "slow", "status_code": 500, ...}
    odd = {"name": 5, "duration_ms": "slow", "status_code": 500, "trace.trace_id": "t-1"}
    _write(store, _event(odd), 2)
    # a row with both (an OTLP span with an attribute of that name): the fixed value wins
    _write(store, _event({"name": 7}, name="POST /", dur_ns=1_000_000, status_code=0), 3)
    rows = _query(store, scope, breakdowns=["name", "duration_ms", "status_code"])
    got = {(r["name"], r["duration_ms"], r["status_code"]) for r in rows}
    assert got == {("GET /", "2.5", 2), ("5", "slow", 500), ("POST /", "1.0", 0)}

    def count(column, op, value=None):
        f = {"column": column, "op": op} | ({} if value is None else {"value": value})
        rows = _query(store, scope, filters=[f])
        return rows[0]["COUNT"] if rows else 0

    assert count("name", "=", 5) == 1
    assert count("name", "=", 7) == 0  # shadowed by the fixed value of its row
    assert count("name", "=", "POST /") == 1
    assert count("name", "!=", 7) == 3
    assert count("duration_ms", "=", "slow") == 1
    assert count("duration_ms", ">", 2) == 1
    assert count("duration_ms", "exists") == 3
    assert count("status_code", ">=", 2) == 2
    assert count("status_code", "=", 500) == 1
    # an id column beside a text attribute: a value that is no id is the attribute's
    assert count("trace.trace_id", "=", "t-1") == 1
    assert count("trace.trace_id", "=", TRACE_A.hex()) == 1
    assert count("trace.trace_id", "in", ["t-1", TRACE_A.hex()]) == 2
    # numeric calculations: duration_ms stays on the fixed column; status_code reads both
    (r,) = _query(
        store,
        scope,
        calculations=[
            {"op": "MAX", "column": "duration_ms"},
            {"op": "SUM", "column": "status_code"},
            {"op": "SUM", "column": "name"},
        ],
    )
    assert r == {"MAX(duration_ms)": 2.5, "SUM(status_code)": 502, "SUM(name)": 5}
    cols = [c for c in store.columns(scope) if c.name in ("name", "duration_ms", "status_code")]
    assert sorted((c.name, c.type, c.fixed) for c in cols) == [
        ("duration_ms", "string", True),
        ("name", "string", True),
        ("status_code", "integer", True),
    ]
    assert all(c.last_written_ns for c in cols)
    # another dataset without such attributes reads the fixed columns alone
    _write(store, _event(name="x", dur_ns=3_000_000), 4, dataset_id=2)
    other = Scope(1, (2,))
    assert store.resolve("duration_ms", other).physical == "dur_ns"
    assert _query(store, other, breakdowns=["name", "duration_ms"]) == [
        {"name": "x", "duration_ms": 3.0, "COUNT": 1}
    ]
    assert {c.name: c.type for c in store.columns(other)}["duration_ms"] == "float"
