"""EventBatch -> Arrow table: the engine-neutral form rows take between the pipeline and a store.

Converting right after decoding keeps pending rows compact (columnar buffers, not Python objects),
which is what bounds the server's memory under load. Attribute columns are named
``"<type>:<key>"`` (``s:http.method``); each store maps them onto its own physical columns.
"""

from __future__ import annotations

import pyarrow as pa

from tracehive.model.batch import FIXED_COLUMNS, EventBatch

#: Arrow types of the fixed columns (``dataset`` is replaced by ``dataset_id``).
FIXED_ARROW: dict[str, pa.DataType] = {
    "ts_ns": pa.int64(),
    "dur_ns": pa.int64(),
    "trace_id": pa.binary(),
    "span_id": pa.uint64(),
    "parent_id": pa.uint64(),
    "name": pa.string(),
    "service": pa.string(),
    "kind": pa.string(),
    "status_code": pa.int32(),
    "status_message": pa.string(),
    "error": pa.bool_(),
    "signal": pa.string(),
    "library_name": pa.string(),
    "library_version": pa.string(),
    "samplerate": pa.int64(),
    "body": pa.string(),
    "severity_text": pa.string(),
    "severity_number": pa.int32(),
}
ATTR_ARROW: dict[str, pa.DataType] = {
    "s": pa.string(),
    "i": pa.int64(),
    "f": pa.float64(),
    "b": pa.bool_(),
}
assert set(FIXED_ARROW) == set(FIXED_COLUMNS) - {"dataset"}


class RowsOutOfRange(ValueError):
    """A value does not fit its column (e.g. a timestamp past 2^63 ns)."""


def attr_field(key: str, attr_type: str) -> str:
    return f"{attr_type}:{key}"


def split_attr_field(name: str) -> tuple[str, str] | None:
    """``"s:http.method"`` -> ``("http.method", "s")``; None for a fixed column name."""
    if len(name) >= 2 and name[1] == ":" and name[0] in ATTR_ARROW:
        return name[2:], name[0]
    return None


def to_arrow(batch: EventBatch, env_id: int, dataset_ids: list[int]) -> pa.Table:
    """The batch as an Arrow table with ``env_id`` and ``dataset_id`` columns prepended."""
    n = batch.n
    arrays: list[pa.Array] = [
        pa.array([env_id] * n, pa.uint16()),
        pa.array(dataset_ids, pa.uint32()),
    ]
    names = ["env_id", "dataset_id"]
    try:
        for name, type_ in FIXED_ARROW.items():
            arrays.append(pa.array(batch.cols[name], type_))
            names.append(name)
        for (key, attr_type), values in batch.attrs.items():
            arrays.append(pa.array(values, ATTR_ARROW[attr_type]))
            names.append(attr_field(key, attr_type))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
        raise RowsOutOfRange(f"a value does not fit its column ({name}): {exc}") from None
    return pa.Table.from_arrays(arrays, names=names)
