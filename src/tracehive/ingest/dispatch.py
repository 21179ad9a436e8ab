"""One entry for every ingest protocol: a WAL ``Record`` in, canonical records out.

The live path and WAL replay both come through here, so a replayed request decodes exactly as it
did when it was acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracehive.ingest import honeycomb, otlp
from tracehive.ingest.compression import decompress
from tracehive.model.batch import EventBatch, MetricBatch
from tracehive.pipeline.records import Kind, Record


@dataclass(slots=True)
class IngestResult:
    events: EventBatch | None = None
    metrics: MetricBatch | None = None
    accepted: int = 0
    rejected: int = 0
    error_message: str = ""
    statuses: list[dict[str, Any]] = field(default_factory=list)  # Honeycomb batch replies


def decode_record(record: Record, max_decoded_bytes: int) -> IngestResult:
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
