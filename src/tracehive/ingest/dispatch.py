"""One entry for every ingest protocol: a WAL ``Record`` in, canonical records out.

The live path and WAL replay both come through here, so a replayed request decodes exactly as it
did when it was acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tracehive.ingest import honeycomb, otlp
from tracehive.ingest.compression import decompress
from tracehive.model.batch import EventBatch, MetricBatch


class Kind:
    """What a request (and its WAL record) is: which decoder reads it."""

    TRACES = "traces"
    LOGS = "logs"
    METRICS = "metrics"
    HONEYCOMB_EVENT = "hc_event"
    HONEYCOMB_BATCH = "hc_batch"


class RecordLike(Protocol):
    """The fields of ``pipeline.records.Record`` a decoder needs."""

    kind: str
    body: bytes
    fmt: str
    encoding: str
    dataset: str
    now_ns: int
    meta: dict[str, str]


@dataclass(slots=True)
class IngestResult:
    events: EventBatch | None = None
    metrics: MetricBatch | None = None
    accepted: int = 0
    rejected: int = 0
    error_message: str = ""
    statuses: list[dict[str, Any]] = field(default_factory=list)  # Honeycomb batch replies


def decode_record(record: RecordLike, max_decoded_bytes: int) -> IngestResult:
    """Decompress and decode. Raises the protocol's error types (``otlp.DecodeError``,
    ``honeycomb.EventError``, compression errors) for a bad request."""
    body = decompress(record.body, record.encoding or None, max_decoded_bytes)
    kind = record.kind
    if kind in (Kind.TRACES, Kind.LOGS, Kind.METRICS):
        if kind == Kind.TRACES:
            d = otlp.decode_traces(body, record.fmt)
        elif kind == Kind.LOGS:
            d = otlp.decode_logs(body, record.fmt)
        else:
            d = otlp.decode_metrics(body, record.fmt, record.dataset)
        return IngestResult(d.events, d.metrics, d.accepted, d.rejected, d.error_message)
    if kind == Kind.HONEYCOMB_EVENT:
        batch = honeycomb.decode_event(
            body,
            record.dataset,
            record.meta.get("time"),
            record.meta.get("samplerate"),
            record.now_ns,
        )
        return IngestResult(events=batch, accepted=batch.n)
    if kind == Kind.HONEYCOMB_BATCH:
        batch, statuses = honeycomb.decode_batch(body, record.dataset, record.now_ns)
        return IngestResult(events=batch, accepted=batch.n, statuses=statuses)
    raise ValueError(f"unknown record kind {kind!r}")
