"""Trace ids in the DuckDB store: one ``UHUGEINT`` (the 16 id bytes as a big-endian unsigned
128-bit integer), not a 16-byte BLOB.

Why: rows are written clustered by trace, so a trace's rows repeat its id, and DuckDB run-length
encodes integer columns (16 B per trace plus a 2-byte count) where a BLOB goes through its string
dictionary (the id plus an offset per segment, plus a dictionary index per row). Measured on both
bench payloads (``bench/ingest_otlp.py``): -1.1 B/span. Integer order equals byte order, so
sorting by the column sorts ids as bytes sort.

The store's boundary converts: Arrow ``binary`` ids arrive as two ``uint64`` halves that SQL joins
(``JOIN_SQL``), and ids leave SQL as 16-byte BLOBs (``as_bytes``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SQL_TYPE = "UHUGEINT"
#: Column names of the two halves in a registered Arrow table, and the SQL that joins them.
HI, LO = "trace_hi", "trace_lo"
JOIN_SQL = f"(({HI}::UHUGEINT << 64) | {LO}::UHUGEINT)"
#: Migration from schema 3 (BLOB ids; always 16 bytes, the decoders drop others).
FROM_BLOB_SQL = "('0x' || hex(trace_id))::UHUGEINT"


def to_int(trace_id: bytes) -> int:
    """The id as a query parameter; compare it through ``param_sql``."""
    return int.from_bytes(trace_id, "big")


def param_sql(placeholder: str) -> str:
    """A trace-id parameter in SQL. The cast is required: DuckDB binds a Python int by its size
    (BIGINT, UBIGINT, HUGEINT), and ``trace_id = ?`` then casts the column to BIGINT (an error
    on any larger id in the rows read) or compares a HUGEINT as DOUBLE (ids that differ only in
    their low bits match each other)."""
    return f"CAST({placeholder} AS {SQL_TYPE})"


def split(trace_ids: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, pa.Array]:
    """A column of 16-byte ids (or nulls) -> its high and low halves as ``uint64`` arrays with
    the same nulls. Any other length is a decoder bug: ``ValueError``."""
    ids = trace_ids.combine_chunks() if isinstance(trace_ids, pa.ChunkedArray) else trace_ids
    present = pc.drop_null(ids)
    null = ~ids.is_valid().to_numpy(zero_copy_only=False) if ids.null_count else None
    halves = np.zeros((len(ids), 2), dtype=np.uint64)
    if len(present):
        try:  # the cast checks every width
            raw = pc.cast(present, pa.binary(16)).buffers()[1]
        except pa.ArrowInvalid:
            raise ValueError("trace ids must be 16 bytes") from None
        data = np.frombuffer(raw, dtype=">u8", count=2 * len(present)).reshape(-1, 2)
        if null is None:
            halves[:] = data
        else:
            halves[~null] = data
    hi = pa.array(halves[:, 0], pa.uint64(), mask=null)
    lo = pa.array(halves[:, 1], pa.uint64(), mask=null)
    return hi, lo


def id_table(ids: list[bytes]) -> pa.Table:
    """16-byte trace ids as a table of halves, for ``JOIN_SQL`` over a registered view."""
    hi, lo = split(pa.array(ids, pa.binary()))
    return pa.table({HI: hi, LO: lo})


def as_bytes(column: str = "trace_id") -> str:
    """SQL giving the 16 id bytes (a BLOB) of a UHUGEINT id column: how ids leave SQL for
    Python. Fetching a UHUGEINT itself is ~100x slower (DuckDB 2.0 converts each value through
    its decimal text: ~55 us a value, 1.1 s for 20k ids; this: 11 ms)."""
    return f"unhex(lpad(hex({column}), 32, '0'))"
