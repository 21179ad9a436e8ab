"""Export*ServiceResponse bodies, protobuf or OTLP/JSON.

OTLP/HTTP: "The server MUST respond with HTTP 200 OK [and an] Export<signal>ServiceResponse"; on
partial success it MUST set ``partial_success`` with the count of rejected items and SHOULD give
an ``error_message``; a message may also be a warning with nothing rejected. A fully accepted
request gets an empty message (an empty body in protobuf, ``{}`` in JSON).
"""

from __future__ import annotations

from typing import Literal

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

Signal = Literal["traces", "logs", "metrics"]

# signal -> (response message, rejected-count field, its OTLP/JSON name)
_RESPONSES = {
    "traces": (ExportTraceServiceResponse, "rejected_spans", "rejectedSpans"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records", "rejectedLogRecords"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points", "rejectedDataPoints"),
}


def encode_export_response(
    signal: Signal, rejected: int, error_message: str, fmt: Literal["protobuf", "json"]
) -> bytes:
    """The response body for ``signal``; ``rejected`` items and a message set partial_success."""
    message_type, field, json_field = _RESPONSES[signal]
    if fmt == "json":
        partial: dict[str, str] = {}
        if rejected:
            partial[json_field] = str(rejected)  # int64 is a string in proto3 JSON
        if error_message:
            partial["errorMessage"] = error_message
        return orjson.dumps({"partialSuccess": partial} if partial else {})
    response = message_type()
    if rejected or error_message:
        setattr(response.partial_success, field, rejected)
        response.partial_success.error_message = error_message
    return response.SerializeToString()
