"""How a write batch's rows are laid out in the events table, which the disk figure depends on
(docs/PERFORMANCE.md): clustered by dataset, then by trace with traces in order of their first
row, a trace's rows in time order; rows without a trace by their own time. Checked on the
physical row order (``rowid``) against an independent sort of what was written. A trace's start
is its first row in the batch over all its datasets."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent.parent / "query"))
from query_fixtures import NS, T0_S

from tracehive.model.batch import EventBatch
from tracehive.storage.arrow import to_arrow
from tracehive.storage.duckdb import trace_ids
from tracehive.storage.duckdb.backend import BLOCK_SIZE, DuckDBStore

row = st.tuples(
    st.integers(1, 3),  # dataset id
    st.one_of(st.none(), st.integers(0, 4)),  # trace (None: a log without one)
    st.integers(0, 10**6),  # ts offset
)


def _expected(rows: list[tuple[int, bytes | None, int]]) -> list[tuple[int, bytes | None, int]]:
    starts: dict[bytes, int] = {}  # a trace's first row in the batch, over all its datasets
    for _, tid, ts in rows:
        if tid is not None:
            starts[tid] = min(ts, starts.get(tid, ts))

    def key(r):
        ds, tid, ts = r
        return (ds, ts if tid is None else starts[tid], tid is None, tid or b"", ts)

    return sorted(rows, key=key)


@settings(max_examples=25, deadline=None)
@given(st.lists(row, min_size=1, max_size=60), st.randoms(use_true_random=False))
def test_a_write_is_stored_by_dataset_then_trace_start_then_time(tmp_path_factory, rows, rnd):
    ids = [bytes(rnd.getrandbits(8) for _ in range(16)) for _ in range(5)]
    written = [(ds, None if t is None else ids[t], T0_S * NS + off) for ds, t, off in rows]
    batch = EventBatch()
    for i, (_, tid, ts) in enumerate(written):
        batch.append(
            dataset="ds", ts_ns=ts, trace_id=tid, span_id=i + 1, signal="span" if tid else "log"
        )
    store = DuckDBStore(tmp_path_factory.mktemp("layout") / "store.duckdb")
    try:
        store.write(to_arrow(batch, 1, [ds for ds, _, _ in written]), [], 1)
        got = (
            store.cursor()
            .execute(f"SELECT dataset_id, {trace_ids.as_bytes()}, ts_ns FROM events ORDER BY rowid")
            .fetchall()
        )
    finally:
        store.close()
    stored = [(ds, None if t is None else bytes(t), ts) for ds, t, ts in got]
    assert stored == _expected(written)


def test_new_store_files_use_small_blocks(tmp_path):
    store = DuckDBStore(tmp_path / "store.duckdb")
    try:
        (size,) = store.cursor().execute("SELECT block_size FROM pragma_database_size()").fetchone()
    finally:
        store.close()
    assert size == BLOCK_SIZE == 64 * 1024
