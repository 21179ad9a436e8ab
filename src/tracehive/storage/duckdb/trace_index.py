"""The trace index: which write batches (``seq``) hold a trace's rows.

One row per (trace, write batch): ``trace_key``, the first 4 bytes of the 16-byte trace id as a
big-endian UINTEGER, and the batch's ``seq``. A lookup reads this small table, then only the row
groups of those seqs (zone maps on ``events.seq``), and matches the full trace id there, so a
key shared by two traces costs one extra row group read, never a wrong answer. At 10M traces a
random other trace shares a lookup's key with probability ~0.2%.

Keys are written sorted within a batch, so DuckDB bit-packs them as deltas: ~0.5 B per span on
the ingest bench, against ~2 B for 8-byte keys (schema version 1, migrated on open).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEY_BYTES = 4
SQL_TYPE = "UINTEGER"


def trace_key(trace_id: bytes) -> int:
    """The index key of one trace id."""
    return int.from_bytes(trace_id[:KEY_BYTES], "big")


def trace_keys(trace_ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Distinct index keys of a column of trace ids (16-byte ones only), sorted, as uint32."""
    ids = pc.drop_null(trace_ids)
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if len(ids) == 0:
        return np.empty(0, np.uint32)
    lengths = pc.binary_length(ids)
    if pc.min(lengths).as_py() != 16 or pc.max(lengths).as_py() != 16:
        ids = pa.array(pc.filter(ids, pc.equal(lengths, 16)).to_pylist(), pa.binary())
        if len(ids) == 0:
            return np.empty(0, np.uint32)
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32)
    data = np.frombuffer(ids.buffers()[2], dtype=np.uint8)
    start = int(offsets[ids.offset])
    raw = data[start : start + 16 * len(ids)].reshape(-1, 16)[:, :KEY_BYTES]
    return np.unique(raw.copy().view(">u4").ravel()).astype(np.uint32)


def migrate_v1_sql() -> str:
    """Schema 1 stored 8-byte keys; their top 4 bytes are the new key."""
    return f"ALTER TABLE trace_index ALTER trace_key TYPE {SQL_TYPE} USING (trace_key >> 32)"


def keys_of(ids: list[bytes]) -> np.ndarray:
    """The index key of each 16-byte trace id, in order, as uint32."""
    raw = np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(-1, 16)[:, :KEY_BYTES]
    return raw.copy().view(">u4").ravel().astype(np.uint32)
