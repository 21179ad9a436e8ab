"""OTLP traces (ExportTraceServiceRequest, protobuf) -> ``EventBatch`` rows.

This is the reference mapping; ``_otlp_fast.c`` must produce identical batches from the same bytes
(attribute values: see ``common.py``). Per span, in wire order: the span row, then one row per
span event, then one row per link.

Span row (``signal="span"``):
  dataset/service   resource ``service.name`` if a non-empty string (stripped), else
                    "unknown_service"/None (Honeycomb's routing, PROTOCOLS.md §6.1). A name that
                    is not a valid dataset name rejects every span of that resource (counted,
                    ``INVALID_SERVICE_NAME``; common.py), the other resources are kept.
  ts_ns, dur_ns     start_time_unix_nano, max(0, end - start); times clamped to 2^63 - 1
  trace_id          16 raw bytes; span_id/parent_id: the 8 bytes big-endian as an int. A span
                    whose trace_id is not 16 bytes or all zero, or whose span_id is not 8 bytes or
                    all zero, is rejected (not a row; counted). A parent_span_id that is not 8
                    non-zero bytes is None (a root span).
  name, kind        kind names by enum value; an unknown value is "unspecified"
  status_code/msg   status.code as is; message or None when empty
  error             status.code == 2 (STATUS_CODE_ERROR) or an event named "exception"
  library_*         instrumentation scope name/version, None when empty
  samplerate        the span's own ``SampleRate`` attribute (Honeycomb convention) if it is an
                    int > 0 (the last non-dropped one of the span's attributes), else 1
  attributes        resource (minus service.name), then scope, then span attributes
Event row (``span_event``): ts_ns = event time; dur_ns/span_id/status None; parent_id = the
  span's span_id; error = True if named "exception" else None; attributes = resource + event.
Link row (``link``): ts_ns = span start; parent_id = the span's span_id; name None; attributes =
  resource + ``trace.link.trace_id`` (32 lower hex) + ``trace.link.span_id`` (16 lower hex) + link.
  A link whose ids are not 16/8 non-zero bytes is left out (it points nowhere); not counted.
Event and link rows carry the span's dataset, service, library, trace_id and samplerate.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehive.ingest.otlp.common import (
    INT64_MAX,
    INVALID_SERVICE_NAME,
    TOO_MANY_SPAN_ROWS,
    Decoded,
    DecodeError,
    RowWriter,
    dataset_and_service,
    pb_attr_map,
    pb_value,
    routable,
)

# Span.SpanKind by value (opentelemetry/proto/trace/v1/trace.proto).
KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_ERROR = 2
EXCEPTION_EVENT = "exception"  # OTel semconv: exceptions are span events with this name
SAMPLE_RATE = "SampleRate"
REJECTED_IDS = "invalid trace_id or span_id"
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


def rejected_message(bad_ids: int, bad_service: int = 0) -> str:
    """``partial_success.error_message`` for spans rejected for their ids and for their
    resource's service.name (the C decoder writes the same text)."""
    parts = []
    if bad_ids:
        parts.append(f"{bad_ids} spans rejected: {REJECTED_IDS}")
    if bad_service:
        parts.append(f"{bad_service} spans rejected: {INVALID_SERVICE_NAME}")
    return "; ".join(parts)


def parse_request(body: bytes) -> Any:
    try:
        return ExportTraceServiceRequest.FromString(body)
    except Exception as exc:  # upb raises google.protobuf.message.DecodeError, but be total
        raise DecodeError(f"payload is not a valid ExportTraceServiceRequest: {exc}") from None


def span_sample_rate(pb_attrs: Any) -> int:
    """The span's effective ``SampleRate``: its last non-dropped value, used if an int > 0."""
    rate: Any = None
    for kv in pb_attrs:
        if kv.key == SAMPLE_RATE:
            tv = pb_value(kv.value)
            if tv is not None:  # a dropped value does not override (common.py)
                rate = tv[1] if tv[0] == "i" else None
    return rate if rate is not None and rate > 0 else 1


def decode_traces_pb(body: bytes) -> Decoded:
    """Decode a protobuf ExportTraceServiceRequest (the pure-Python reference path)."""
    request = parse_request(body)
    w = RowWriter(TOO_MANY_SPAN_ROWS)
    rows = w.rows
    add_cells = w.add_cells
    add_row = rows.append
    cap = 0
    accepted = rejected = bad_service = 0
    for resource_spans in request.resource_spans:
        res = pb_attr_map(resource_spans.resource.attributes)
        dataset, service = dataset_and_service(res)
        if service is not None and not routable(dataset):
            bad_service += sum(len(ss.spans) for ss in resource_spans.scope_spans)
            continue
        res_writes, res_seen = w.base(res)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            lib_name = scope.name or None
            lib_version = scope.version or None
            span_writes, span_seen = w.scope_base(res, pb_attr_map(scope.attributes))
            for span in scope_spans.spans:
                trace_id = span.trace_id
                raw_sid = span.span_id
                if (
                    len(trace_id) != 16
                    or trace_id == _ZERO16
                    or len(raw_sid) != 8
                    or raw_sid == _ZERO8
                ):
                    rejected += 1
                    continue
                accepted += 1
                span_id = int.from_bytes(raw_sid, "big")
                raw_parent = span.parent_span_id
                parent_id = int.from_bytes(raw_parent, "big") if len(raw_parent) == 8 else None
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                if start > INT64_MAX:
                    start = INT64_MAX
                if end > INT64_MAX:
                    end = INT64_MAX
                kind = span.kind
                status = span.status
                code = status.code
                events = span.events
                links = span.links
                error = code == STATUS_ERROR
                if events and not error:
                    error = any(ev.name == EXCEPTION_EVENT for ev in events)

                # Limits (common.py): reserving row by row is also the MAX_ROWS check; the
                # columns put_pb creates count keys; add_cells counts the row's values.
                row = len(rows)
                if row >= cap:
                    cap = w.reserve(row + 1)
                for col, v in span_writes:
                    col[row] = v
                attrs = span.attributes
                seen = span_seen.copy()
                w.put_pb(attrs, row, seen)
                add_cells(len(seen))
                samplerate = span_sample_rate(attrs) if SAMPLE_RATE in seen else 1
                add_row(
                    (
                        dataset,
                        start,
                        end - start if end > start else 0,
                        trace_id,
                        span_id,
                        parent_id or None,
                        span.name,
                        service,
                        KINDS[kind] if 0 <= kind < 6 else "unspecified",
                        code,
                        status.message or None,
                        error,
                        "span",
                        lib_name,
                        lib_version,
                        samplerate,
                        None,
                        None,
                        None,
                    )
                )
                for ev in events:
                    row += 1
                    if row >= cap:
                        cap = w.reserve(row + 1)
                    for col, v in res_writes:
                        col[row] = v
                    seen = res_seen.copy()
                    w.put_pb(ev.attributes, row, seen)
                    add_cells(len(seen))
                    name = ev.name
                    t = ev.time_unix_nano
                    add_row(
                        (
                            dataset,
                            t if t <= INT64_MAX else INT64_MAX,
                            None,
                            trace_id,
                            None,
                            span_id,
                            name,
                            service,
                            None,
                            None,
                            None,
                            True if name == EXCEPTION_EVENT else None,
                            "span_event",
                            lib_name,
                            lib_version,
                            samplerate,
                            None,
                            None,
                            None,
                        )
                    )
                for link in links:
                    link_tid = link.trace_id
                    link_sid = link.span_id
                    if (
                        len(link_tid) != 16
                        or link_tid == _ZERO16
                        or len(link_sid) != 8
                        or link_sid == _ZERO8
                    ):
                        continue
                    row += 1
                    if row >= cap:
                        cap = w.reserve(row + 1)
                    for col, v in res_writes:
                        col[row] = v
                    seen = res_seen.copy()
                    w.put("trace.link.trace_id", "s", link_tid.hex(), row, seen)
                    w.put("trace.link.span_id", "s", link_sid.hex(), row, seen)
                    w.put_pb(link.attributes, row, seen)
                    add_cells(len(seen))
                    add_row(
                        (
                            dataset,
                            start,
                            None,
                            trace_id,
                            None,
                            span_id,
                            None,
                            service,
                            None,
                            None,
                            None,
                            None,
                            "link",
                            lib_name,
                            lib_version,
                            samplerate,
                            None,
                            None,
                            None,
                        )
                    )
    return Decoded(
        w.finish(), None, accepted, rejected + bad_service, rejected_message(rejected, bad_service)
    )
