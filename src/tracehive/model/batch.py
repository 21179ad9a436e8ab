"""The canonical records, in columnar form.

An ``EventBatch`` holds rows of one shape for every signal that lands in a dataset: spans, span
events, span links, log records and Honeycomb events (Honeycomb's model: everything is an event with
fields). Decoders build it column by column because the hot path (OTLP ingest at tens of thousands
of spans a second) cannot afford a Python object per span; ``append`` is the convenient row-wise
way in for slower paths.

Attributes are typed columns keyed by ``(name, type)``: a key that arrives with two value types in
one batch gives two columns, and the store decides how to keep them. Types: ``s`` str, ``i`` int,
``f`` float, ``b`` bool. Arrays, maps and bytes arrive as JSON/hex strings (``s``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

AttrType = Literal["s", "i", "f", "b"]
AttrKey = tuple[str, AttrType]


class Signal:
    """Values of the ``signal`` column (``meta.signal_type`` / ``meta.annotation_type``)."""

    SPAN = "span"
    SPAN_EVENT = "span_event"
    LINK = "link"
    LOG = "log"
    EVENT = "event"  # a Honeycomb events-API event

    ALL = (SPAN, SPAN_EVENT, LINK, LOG, EVENT)


# The fixed columns of an event row, in order, with their Python types. Everything else is an
# attribute. ``dataset`` routes the row (service.name for OTLP, the URL for the events API).
FIXED_COLUMNS: tuple[str, ...] = (
    "dataset",  # str
    "ts_ns",  # int, event time (span start), ns since the epoch
    "dur_ns",  # int | None, span duration
    "trace_id",  # bytes(16) | None
    "span_id",  # int | None (unsigned 64-bit)
    "parent_id",  # int | None
    "name",  # str | None
    "service",  # str | None, resource service.name
    "kind",  # str | None: server, client, internal, producer, consumer
    "status_code",  # int | None: 0 unset, 1 ok, 2 error
    "status_message",  # str | None
    "error",  # bool | None
    "signal",  # str, one of Signal.ALL
    "library_name",  # str | None, instrumentation scope
    "library_version",  # str | None
    "samplerate",  # int >= 1
    "body",  # str | None, log body
    "severity_text",  # str | None
    "severity_number",  # int | None
)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def attr_type(value: Any) -> AttrType | None:
    """The column type for a Python value; None for values that are not stored (None, NaN)."""
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i" if _INT64_MIN <= value <= _INT64_MAX else "s"
    if isinstance(value, float):
        return None if math.isnan(value) else "f"
    if isinstance(value, str):
        return "s"
    return None


@dataclass(slots=True)
class EventBatch:
    """Columnar rows for the events table; every list has ``n`` items."""

    n: int = 0
    cols: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in FIXED_COLUMNS})
    attrs: dict[AttrKey, list[Any]] = field(default_factory=dict)

    def append(self, *, attributes: dict[str, Any] | None = None, **fixed: Any) -> None:
        """Add one row. Unknown fixed names are an error; missing ones are None (samplerate 1)."""
        unknown = set(fixed) - set(FIXED_COLUMNS)
        if unknown:
            raise TypeError(f"unknown fixed columns: {sorted(unknown)}")
        for c in FIXED_COLUMNS:
            self.cols[c].append(fixed.get(c, 1 if c == "samplerate" else None))
        for key, value in (attributes or {}).items():
            if key is None:
                continue
            t = attr_type(value)
            if t is None:
                continue
            if t == "s" and not isinstance(value, str):
                value = str(value)
            column = self.attrs.get((key, t))
            if column is None:
                column = self.attrs[(key, t)] = [None] * self.n
            column.append(value)
        self.n += 1
        for column in self.attrs.values():
            if len(column) < self.n:
                column.append(None)

    def extend(self, other: EventBatch) -> None:
        """Append every row of ``other`` (used to coalesce small batches before a write)."""
        for c in FIXED_COLUMNS:
            self.cols[c].extend(other.cols[c])
        for key, values in other.attrs.items():
            column = self.attrs.get(key)
            if column is None:
                self.attrs[key] = [None] * self.n + list(values)
            else:
                column.extend(values)
        self.n += other.n
        for column in self.attrs.values():
            if len(column) < self.n:
                column.extend([None] * (self.n - len(column)))

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a dict (fixed columns plus present attributes); for tests and debugging."""
        out = {c: self.cols[c][i] for c in FIXED_COLUMNS}
        out["attributes"] = {k: v[i] for (k, _t), v in self.attrs.items() if v[i] is not None}
        return out

    def check(self) -> None:
        """Raise AssertionError when the columns do not all have ``n`` items."""
        for c, v in self.cols.items():
            assert len(v) == self.n, (c, len(v), self.n)
        for k, v in self.attrs.items():
            assert len(v) == self.n, (k, len(v), self.n)


@dataclass(slots=True)
class MetricPoint:
    """One OTLP data point, flattened. ``kind``: gauge, sum, histogram, exp_histogram, summary."""

    dataset: str
    name: str
    kind: str
    ts_ns: int
    start_ts_ns: int | None = None
    service: str | None = None
    unit: str | None = None
    description: str | None = None
    value: float | None = None  # gauge and sum
    is_monotonic: bool | None = None
    temporality: int | None = None  # 1 delta, 2 cumulative
    count: int | None = None
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    bucket_counts: list[int] | None = None
    explicit_bounds: list[float] | None = None
    scale: int | None = None
    zero_count: int | None = None
    positive_offset: int | None = None
    positive_counts: list[int] | None = None
    negative_offset: int | None = None
    negative_counts: list[int] | None = None
    quantiles: list[tuple[float, float]] | None = None  # summary (quantile, value)
    attributes: dict[str, Any] = field(default_factory=dict)  # point + resource + scope attributes


@dataclass(slots=True)
class MetricBatch:
    points: list[MetricPoint] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.points)
