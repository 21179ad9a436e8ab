"""Trace ids (UHUGEINT halves) and the trace index (5-byte keys, written sorted per batch);
stores of schemas 1-3 (BLOB ids; 8- and 4-byte keys in 1 and 2) migrate on open and still find
their traces."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent.parent / "query"))
from query_fixtures import NS, T0_S, Fixture

from tracehive.storage.api import StorageError
from tracehive.storage.duckdb import trace_ids
from tracehive.storage.duckdb.backend import DuckDBStore
from tracehive.storage.duckdb.trace_index import keys_of, trace_key, trace_keys

ids16 = st.binary(min_size=16, max_size=16)


@given(st.lists(st.one_of(ids16, st.none()), max_size=40), st.integers(1, 3))
def test_ids_split_into_halves_and_keys_are_the_sorted_distinct_prefixes(values, chunks):
    cut = len(values) // chunks
    parts = [values[i * cut : (i + 1) * cut] for i in range(chunks - 1)] + [
        values[(chunks - 1) * cut :]
    ]
    column = pa.chunked_array([pa.array(p, pa.binary()) for p in parts], pa.binary())
    hi, lo = trace_ids.split(column)
    for v, h, low in zip(values, hi.to_pylist(), lo.to_pylist(), strict=True):
        if v is None:
            assert h is None and low is None
        else:
            assert trace_ids.to_int(v) == h << 64 | low
    expect = sorted({int.from_bytes(v[:5], "big") for v in values if v})
    assert trace_keys(hi).tolist() == expect
    full = [v for v in values if v]
    if full:
        high = trace_ids.split(pa.array(full, pa.binary()))[0]
        assert keys_of(high).tolist() == [trace_key(v) for v in full]
        table = trace_ids.id_table(full)
        con = duckdb.connect()
        con.register("ids", table)
        back = con.execute(
            f"SELECT {trace_ids.as_bytes('t')} FROM (SELECT {trace_ids.JOIN_SQL} AS t FROM ids)"
        )
        assert [bytes(r[0]) for r in back.fetchall()] == full


@given(st.lists(st.one_of(ids16, st.none()), max_size=5), st.binary(max_size=40))
def test_an_id_of_another_length_is_refused(values, odd):
    if len(odd) == 16:
        odd += b"x"
    with pytest.raises(ValueError, match="16 bytes"):
        trace_ids.split(pa.array([*values, odd], pa.binary()))


def _spans(trace_id: bytes, n: int) -> list[dict]:
    return [
        {
            "ts_ns": T0_S * NS + i,
            "dur_ns": 1000,
            "trace_id": trace_id,
            "span_id": i + 1,
            "name": f"s{i}",
            "attributes": {},
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("version", "width", "sql_type"), [(1, 8, "UBIGINT"), (2, 4, "UINTEGER"), (3, 5, "UBIGINT")]
)
def test_older_store_migrates_and_finds_its_traces(tmp_path, version, width, sql_type):
    path = tmp_path / "store.duckdb"
    store = DuckDBStore(path)
    fx = Fixture(store)
    ids = [os.urandom(16) for _ in range(3)]
    for i, tid in enumerate(ids):
        fx.add(_spans(tid, i + 2))
    fx.add([{"ts_ns": T0_S * NS, "signal": "log", "body": "no trace", "attributes": {}}])
    store.close()
    con = duckdb.connect(str(path))  # turn it back into the older schema: BLOB ids, its index
    con.execute(
        "ALTER TABLE events ALTER COLUMN trace_id SET DATA TYPE BLOB "
        "USING unhex(lpad(hex(trace_id), 32, '0'))"
    )
    con.execute("DROP TABLE trace_index")
    con.execute(f"CREATE TABLE trace_index (trace_key {sql_type} NOT NULL, seq UBIGINT NOT NULL)")
    for seq, tid in enumerate(ids, start=1):
        con.execute("INSERT INTO trace_index VALUES (?, ?)", [trace_key_of(tid, width), seq])
    con.execute("UPDATE store_state SET value = ? WHERE key = 'schema_version'", [version])
    con.close()
    store = DuckDBStore(path)
    try:
        for i, tid in enumerate(ids):
            rows = store.get_trace(1, tid)
            assert len(rows) == i + 2 and {r["trace.trace_id"] for r in rows} == {tid.hex()}
        con = store.cursor()
        assert con.execute(
            "SELECT value FROM store_state WHERE key = 'schema_version'"
        ).fetchone() == (4,)
        assert con.execute("SELECT count(*) FROM events WHERE trace_id IS NULL").fetchone() == (1,)
        assert sorted(con.execute("SELECT trace_key, seq FROM trace_index").fetchall()) == sorted(
            (trace_key(tid), seq) for seq, tid in enumerate(ids, start=1)
        )
    finally:
        store.close()


def trace_key_of(tid: bytes, width: int) -> int:
    return int.from_bytes(tid[:width], "big")


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "store.duckdb"
    DuckDBStore(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE store_state SET value = 99 WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StorageError, match="schema version 99"):
        DuckDBStore(path)


def test_traces_sharing_a_key_stay_apart(tmp_path):
    store = DuckDBStore(tmp_path / "store.duckdb")
    try:
        fx = Fixture(store)
        a = b"\x01\x02\x03\x04\x05" + os.urandom(11)
        b = b"\x01\x02\x03\x04\x05" + os.urandom(11)
        fx.add(_spans(a, 3))
        fx.add(_spans(b, 5))
        assert trace_key(a) == trace_key(b)
        assert {r["trace.trace_id"] for r in store.get_trace(1, a)} == {a.hex()}
        assert len(store.get_trace(1, a)) == 3 and len(store.get_trace(1, b)) == 5
    finally:
        store.close()


def test_a_failed_migration_names_the_cause_and_leaves_the_store_as_it_was(tmp_path):
    path = tmp_path / "store.duckdb"
    store = DuckDBStore(path)
    Fixture(store).add(_spans(os.urandom(16), 2))
    store.close()
    con = duckdb.connect(str(path))  # a schema-3 store holding an id no UHUGEINT can take
    con.execute(
        "ALTER TABLE events ALTER COLUMN trace_id SET DATA TYPE BLOB "
        "USING unhex(lpad(hex(trace_id), 32, '0'))"
    )
    con.execute("UPDATE events SET trace_id = ? WHERE span_id = 1", [b"\xff" * 20])
    con.execute("UPDATE store_state SET value = 3 WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StorageError, match="migrating the store from schema 3 failed"):
        DuckDBStore(path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute(
            "SELECT value FROM store_state WHERE key = 'schema_version'"
        ).fetchone() == (3,)
        types = con.execute("SELECT DISTINCT typeof(trace_id) FROM events").fetchall()
        assert types == [("BLOB",)]
    finally:
        con.close()


AWKWARD_IDS = [
    (0xABCD).to_bytes(16, "big"),  # a 64-bit id zero-padded (B3/Jaeger style): a small int
    (2**63 - 1).to_bytes(16, "big"),
    (2**64 + 7).to_bytes(16, "big"),
    (2**127 - 3).to_bytes(16, "big"),  # these two differ in low bits only: equal as doubles
    (2**127 - 2).to_bytes(16, "big"),
    (2**128 - 1).to_bytes(16, "big"),
]


def test_every_id_magnitude_finds_exactly_its_trace(tmp_path):
    """DuckDB binds a Python int by its size; an uncast ``trace_id = ?`` failed on small ids
    and matched neighbouring large ones (compared as DOUBLE)."""
    store = DuckDBStore(tmp_path / "store.duckdb")
    try:
        fx = Fixture(store)
        fx.add([s for i, tid in enumerate(AWKWARD_IDS) for s in _spans(tid, i + 1)])
        for i, tid in enumerate(AWKWARD_IDS):
            rows = store.get_trace(1, tid)
            assert [r["trace.trace_id"] for r in rows] == [tid.hex()] * (i + 1)
            for value in (tid.hex(), f"1-{tid.hex()[:8]}-{tid.hex()[8:]}"):
                out = fx.run(
                    {
                        "calculations": [{"op": "COUNT"}],
                        "filters": [{"column": "trace.trace_id", "op": "=", "value": value}],
                        "start_time": T0_S,
                        "end_time": T0_S + 60,
                    }
                )
                assert [r["COUNT"] for r in out.results] == [i + 1]
        out = fx.run(
            {
                "calculations": [{"op": "COUNT"}],
                "filters": [
                    {"column": "trace.trace_id", "op": "in", "value": [AWKWARD_IDS[3].hex()]}
                ],
                "start_time": T0_S,
                "end_time": T0_S + 60,
            }
        )
        assert [r["COUNT"] for r in out.results] == [4]
    finally:
        store.close()
