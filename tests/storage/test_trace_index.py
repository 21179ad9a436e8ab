"""The trace index: 4-byte keys, written sorted per batch; stores of schema 1 (8-byte keys)
migrate on open and still find their traces."""

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
from tracehive.storage.duckdb.backend import DuckDBStore
from tracehive.storage.duckdb.trace_index import keys_of, trace_key, trace_keys

ids16 = st.binary(min_size=16, max_size=16)


@given(st.lists(st.one_of(ids16, st.none(), st.binary(max_size=20)), max_size=40))
def test_keys_are_the_sorted_distinct_prefixes_of_the_16_byte_ids(values):
    got = trace_keys(pa.chunked_array([pa.array(values, pa.binary())]))
    expect = sorted({int.from_bytes(v[:4], "big") for v in values if v and len(v) == 16})
    assert got.tolist() == expect
    full = [v for v in values if v and len(v) == 16]
    if full:
        assert keys_of(full).tolist() == [trace_key(v) for v in full]


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


def test_schema_1_store_migrates_and_finds_its_traces(tmp_path):
    path = tmp_path / "store.duckdb"
    store = DuckDBStore(path)
    fx = Fixture(store)
    ids = [os.urandom(16) for _ in range(3)]
    for i, tid in enumerate(ids):
        fx.add(_spans(tid, i + 2))
    store.close()
    con = duckdb.connect(str(path))  # turn it back into schema 1: 8-byte keys
    keys8 = {int.from_bytes(t[:8], "big") for t in ids}
    con.execute("ALTER TABLE trace_index ALTER trace_key TYPE UBIGINT")
    con.execute("DELETE FROM trace_index")
    for k in keys8:
        con.execute("INSERT INTO trace_index VALUES (?, 1), (?, 2), (?, 3)", [k, k, k])
    con.execute("UPDATE store_state SET value = 1 WHERE key = 'schema_version'")
    con.close()
    store = DuckDBStore(path)
    try:
        for i, tid in enumerate(ids):
            assert len(store.get_trace(1, tid)) == i + 2
        con = store.cursor()
        assert con.execute(
            "SELECT value FROM store_state WHERE key = 'schema_version'"
        ).fetchone() == (2,)
        assert con.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'trace_index' "
            "AND column_name = 'trace_key'"
        ).fetchone() == ("UINTEGER",)
    finally:
        store.close()


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
        a = b"\x01\x02\x03\x04" + os.urandom(12)
        b = b"\x01\x02\x03\x04" + os.urandom(12)
        fx.add(_spans(a, 3))
        fx.add(_spans(b, 5))
        assert trace_key(a) == trace_key(b)
        assert {r["trace.trace_id"] for r in store.get_trace(1, a)} == {a.hex()}
        assert len(store.get_trace(1, a)) == 3 and len(store.get_trace(1, b)) == 5
    finally:
        store.close()
