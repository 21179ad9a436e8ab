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
        _write(s, _spans(TRACE_B, **{"k2": 1}), 4)
        assert len(s.get_trace(1, TRACE_B)) == 3
    finally:
        s.close()
