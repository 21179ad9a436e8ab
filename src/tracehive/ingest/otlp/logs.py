"""OTLP logs (ExportLogsServiceRequest, protobuf) -> ``EventBatch`` rows with ``signal="log"``.

Per log record:
  dataset/service   as for spans (resource ``service.name``, else "unknown_service"/None); a
                    name that is not a valid dataset name rejects the resource's records (counted,
                    ``rejected_message``), the other resources are kept
  ts_ns             time_unix_nano, else observed_time_unix_nano, else the receive time (the
                    spec: "If [time] is missing, the collector/receiver SHOULD use
                    observed_time_unix_nano"); clamped to 2^63 - 1
  trace_id/span_id  when 16/8 bytes and non-zero, else None: a record is never rejected for ids
  body              a string body as is, any other value as compact JSON (common.py), None if unset
  severity_text     None when empty; severity_number None when 0 (UNSPECIFIED)
  error             True when severity_number >= 17 (SEVERITY_NUMBER_ERROR and above), else None
  library_*         instrumentation scope; name, parent_id, kind, status: None; samplerate 1
  attributes        resource (minus service.name), then scope, then the record's attributes
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tracehive.ingest.otlp.common import (
    INT64_MAX,
    INVALID_SERVICE_NAME,
    TOO_MANY_LOG_RECORDS,
    Decoded,
    DecodeError,
    RowWriter,
    dataset_and_service,
    pb_attr_map,
    pb_plain,
    routable,
    to_json,
)

SEVERITY_ERROR = 17  # SeverityNumber.SEVERITY_NUMBER_ERROR (logs.proto)
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


def rejected_message(bad_service: int) -> str:
    """``partial_success.error_message`` for records rejected for their resource's service.name
    (the only reason a log record is rejected)."""
    return f"{bad_service} log records rejected: {INVALID_SERVICE_NAME}" if bad_service else ""


def body_text(plain: Any, is_string: bool) -> str | None:
    """The ``body`` column from the body as a natural Python value: a string body unchanged,
    anything else as JSON text (so a bytes body is its base64 in quotes), unset as None."""
    if is_string or plain is None:
        return plain
    return to_json(plain)


def decode_logs_pb(body: bytes, now_ns: int | None = None) -> Decoded:
    """Decode a protobuf ExportLogsServiceRequest. ``now_ns``: the receive time (tests pin it)."""
    try:
        request = ExportLogsServiceRequest.FromString(body)
    except Exception as exc:
        raise DecodeError(f"payload is not a valid ExportLogsServiceRequest: {exc}") from None
    now = time.time_ns() if now_ns is None else now_ns
    w = RowWriter(TOO_MANY_LOG_RECORDS)
    rows = w.rows
    add_cells = w.add_cells
    cap = 0
    bad_service = 0
    for resource_logs in request.resource_logs:
        res = pb_attr_map(resource_logs.resource.attributes)
        dataset, service = dataset_and_service(res)
        if service is not None and not routable(dataset):
            bad_service += sum(len(sl.log_records) for sl in resource_logs.scope_logs)
            continue
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            lib_name = scope.name or None
            lib_version = scope.version or None
            writes, base_seen = w.scope_base(res, pb_attr_map(scope.attributes))
            for record in scope_logs.log_records:
                # Limits (common.py): reserving row by row is also the MAX_ROWS check; the
                # columns put_pb creates count keys; add_cells counts the row's values.
                row = len(rows)
                if row >= cap:
                    cap = w.reserve(row + 1)
                for col, v in writes:
                    col[row] = v
                seen = base_seen.copy()
                w.put_pb(record.attributes, row, seen)
                add_cells(len(seen))
                ts = record.time_unix_nano or record.observed_time_unix_nano or now
                trace_id = record.trace_id
                raw_sid = record.span_id
                severity = record.severity_number
                rows.append(
                    (
                        dataset,
                        ts if ts <= INT64_MAX else INT64_MAX,
                        None,
                        trace_id if len(trace_id) == 16 and trace_id != _ZERO16 else None,
                        (int.from_bytes(raw_sid, "big") or None) if len(raw_sid) == 8 else None,
                        None,
                        None,
                        service,
                        None,
                        None,
                        None,
                        True if severity >= SEVERITY_ERROR else None,
                        "log",
                        lib_name,
                        lib_version,
                        1,
                        body_text(
                            pb_plain(av := record.body), av.WhichOneof("value") == "string_value"
                        ),
                        record.severity_text or None,
                        severity or None,
                    )
                )
    n = len(rows)
    return Decoded(w.finish(), None, n, bad_service, rejected_message(bad_service))
