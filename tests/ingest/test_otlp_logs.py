"""OTLP logs (protobuf): records from the real OpenTelemetry logs SDK (its Logger and the stdlib
logging bridge), edge cases, and a hypothesis round trip against otlp_requests' model."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PB2Resource
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from otlp_requests import (
    attrs_to_pb,
    batch_rows,
    expected_log_rejections,
    expected_logs,
    log_request_to_pb,
    log_requests,
    value_to_pb,
)

from tracehive.ingest.otlp import DecodeError, decode_logs

NOW = 1_700_000_000_123_456_789


def _rows(request: ExportLogsServiceRequest, rejected: tuple[int, str] = (0, "")) -> list[dict]:
    decoded = decode_logs(request.SerializeToString(), "protobuf", now_ns=NOW)
    assert decoded.metrics is None and (decoded.rejected, decoded.error_message) == rejected
    rows = batch_rows(decoded.events)
    assert decoded.accepted == len(rows)
    return rows


@pytest.fixture(scope="module")
def sdk_logs():
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "billing"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("tests.logs", "0.1")
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("charge") as span:
        logger.emit(
            timestamp=1_700_000_000_000_000_001,
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            body={"msg": "retrying", "attempts": [1, 2]},
            attributes={"user.id": 7, "card": "visa"},
        )
    logger.emit(body="plain text", severity_number=SeverityNumber.FATAL)
    # the stdlib bridge (deprecated in the SDK, still what most apps use)
    app_log = logging.getLogger("tests.otlp.app")
    app_log.propagate = False
    with pytest.warns(DeprecationWarning, match="LoggingHandler"):
        handler = LoggingHandler(logger_provider=provider)
    app_log.addHandler(handler)
    try:
        app_log.error("payment %s failed", "p-1")
    finally:
        app_log.removeHandler(handler)
    provider.shutdown()
    records = exporter.get_finished_logs()
    assert len(records) == 3
    return records, span.get_span_context()


def test_sdk_logs_map_every_field(sdk_logs):
    records, span_ctx = sdk_logs
    warn, fatal, app = _rows(encode_logs(records))
    for row in (warn, fatal, app):
        assert (row["dataset"], row["service"], row["signal"]) == ("billing", "billing", "log")
        assert row["name"] is row["dur_ns"] is row["parent_id"] is row["kind"] is None
        assert row["status_code"] is row["status_message"] is None
        assert row["samplerate"] == 1
        assert row["attributes"][("telemetry.sdk.language", "s")] == "python"
        assert ("service.name", "s") not in row["attributes"]

    assert warn["ts_ns"] == 1_700_000_000_000_000_001
    assert warn["trace_id"] == span_ctx.trace_id.to_bytes(16, "big")
    assert warn["span_id"] == span_ctx.span_id
    assert warn["body"] == '{"msg":"retrying","attempts":[1,2]}'
    assert (warn["severity_text"], warn["severity_number"], warn["error"]) == ("WARN", 13, None)
    assert (warn["library_name"], warn["library_version"]) == ("tests.logs", "0.1")
    assert warn["attributes"][("user.id", "i")] == 7
    assert warn["attributes"][("card", "s")] == "visa"

    # no timestamp given: the SDK sets only observed_time_unix_nano, which stands in
    assert fatal["ts_ns"] == records[1].log_record.observed_timestamp
    assert fatal["trace_id"] is fatal["span_id"] is None
    assert (fatal["body"], fatal["severity_number"], fatal["error"]) == ("plain text", 21, True)
    assert fatal["severity_text"] is None

    assert app["body"] == "payment p-1 failed"
    assert (app["severity_text"], app["severity_number"], app["error"]) == ("ERROR", 17, True)
    assert app["library_name"] == "tests.otlp.app"
    assert app["attributes"][("code.function.name", "s")] == "sdk_logs"
    assert app["attributes"][("code.file.path", "s")] == __file__
    assert isinstance(app["attributes"][("code.line.number", "i")], int)


def _request(records, resource=()) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=PB2Resource(attributes=attrs_to_pb(list(resource))),
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    )


def test_times_fall_back_to_observed_then_receive_time():
    rows = _rows(
        _request(
            [
                LogRecord(time_unix_nano=5, observed_time_unix_nano=9),
                LogRecord(observed_time_unix_nano=9),
                LogRecord(),
                LogRecord(time_unix_nano=2**64 - 1),
            ]
        )
    )
    assert [r["ts_ns"] for r in rows] == [5, 9, NOW, 2**63 - 1]
    assert all(r["library_name"] is None and r["dataset"] == "unknown_service" for r in rows)


def test_invalid_ids_become_none_and_the_record_stays():
    rows = _rows(
        _request(
            [
                LogRecord(trace_id=bytes(16), span_id=bytes(8)),
                LogRecord(trace_id=b"\x01" * 15, span_id=b"\x01" * 9),
                LogRecord(trace_id=b"\x01" * 16, span_id=b"\x02" * 8),
            ]
        )
    )
    assert [(r["trace_id"], r["span_id"]) for r in rows] == [
        (None, None),
        (None, None),
        (b"\x01" * 16, int.from_bytes(b"\x02" * 8, "big")),
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (("s", "text"), "text"),
        (("s", ""), ""),
        (("i", 5), "5"),
        (("b", False), "false"),
        (("f", 1.5), "1.5"),
        (("f", math.nan), "NaN"),
        (("bytes", b"hi"), '"aGk="'),
        (("arr", [("s", "a"), ("empty", None)]), '["a",null]'),
        (("kv", [("k", ("i", 1))]), '{"k":1}'),
        (("empty", None), None),
    ],
)
def test_bodies(body, expected):
    record = LogRecord()
    record.body.CopyFrom(value_to_pb(body))
    (row,) = _rows(_request([record, LogRecord()]))[:1]
    assert row["body"] == expected
    assert _rows(_request([LogRecord()]))[0]["body"] is None


@pytest.mark.parametrize(
    ("number", "stored", "error"), [(0, None, None), (16, 16, None), (17, 17, True), (99, 99, True)]
)
def test_severity(number, stored, error):
    (row,) = _rows(_request([LogRecord(severity_number=number, severity_text="")]))
    assert (row["severity_number"], row["error"], row["severity_text"]) == (stored, error, None)


def test_invalid_payload():
    with pytest.raises(DecodeError, match="not a valid ExportLogsServiceRequest"):
        decode_logs(b"\x0a\x7f", "protobuf")
    decoded = decode_logs(b"", "protobuf")
    assert decoded.events.n == 0 and decoded.accepted == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_requests)
def test_round_trip_matches_the_model(spec):
    rows = _rows(log_request_to_pb(spec), expected_log_rejections(spec))
    assert rows == expected_logs(spec, NOW)
