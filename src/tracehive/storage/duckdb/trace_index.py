"""The trace index: which write batches (``seq``) hold a trace's rows.

One row per (trace, write batch): ``trace_key``, the first 5 bytes of the 16-byte trace id as a
big-endian integer, and the batch's ``seq``. A lookup reads this small table, then only the row
groups of those seqs (zone maps on ``events.seq``), and matches the full trace id there, so a
key shared by two traces costs one extra row group read, never a wrong answer.

Why 5 bytes: keys are written sorted within a batch, so DuckDB bit-packs them as deltas, and
the cost grows with the key's width: ~0.4 B/span at 4 bytes, ~0.6 at 5, ~1.8 for the unsorted
8-byte keys of schema 1. Trace search looks up sets of ~10^5 keys against ~10^6-10^7 indexed
traces; at 4 bytes that matched ~60 unrelated write batches per search (measured,
bench/trace_search.py), at 5 bytes the expected false match is below one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEY_BYTES = 5
SQL_TYPE = "UBIGINT"
#: The key of a ``trace_id`` (UHUGEINT, see trace_ids.py) in SQL (rebuilds the index).
KEY_SQL = f"(trace_id >> {128 - 8 * KEY_BYTES})::{SQL_TYPE}"


def trace_key(trace_id: bytes) -> int:
    """The index key of one trace id."""
    return int.from_bytes(trace_id[:KEY_BYTES], "big")


def keys_of(high_halves: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The index key of each trace id, in order, as uint64, from the ids' high 64 bits
    (``trace_ids.split``; no nulls)."""
    return np.asarray(high_halves, dtype=np.uint64) >> np.uint64(64 - 8 * KEY_BYTES)


def trace_keys(high_halves: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Distinct index keys, sorted, of a column of trace ids given by their high 64 bits
    (nulls are rows without a trace)."""
    return np.unique(keys_of(pc.drop_null(high_halves)))


def rebuild_sql() -> list[str]:
    """Statements that rebuild the index from ``events`` (migrations from schemas 1 and 2,
    whose keys were 8 and 4 bytes; benchmark stores built without it). One scan of
    ``trace_id, seq``: a few seconds at 10M rows."""
    return [
        "DROP TABLE IF EXISTS trace_index",
        f"CREATE TABLE trace_index (trace_key {SQL_TYPE} NOT NULL, seq UBIGINT NOT NULL)",
        f"INSERT INTO trace_index SELECT DISTINCT {KEY_SQL}, seq FROM events "
        "WHERE trace_id IS NOT NULL ORDER BY seq, 1",
    ]
