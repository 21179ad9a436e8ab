"""OTLP logs and metrics from the real OpenTelemetry SDK exporters (HTTP and gRPC), OTLP/JSON
traces sent by hand, and partial success (PROTOCOLS.md §6): logs emitted inside spans show up in
the trace API under their spans and are queryable; metrics land in the dataset named by
``x-honeycomb-dataset``; a span with a bad id is rejected alone."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from api_helpers import export_traces_grpc, query_rows, wait_flushed
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

LOG_SERVICE = "logsvc"
GRPC_LOG_SERVICE = "grpc-logsvc"
METRICS_DATASET = "OTel-Metrics-DS"


class Recording:
    """Wraps an exporter and records what each export returned."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.results: list = []

    def export(self, batch):
        result = self.inner.export(batch)
        self.results.append(result)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


def _python_logger(provider: LoggerProvider, name: str) -> tuple[logging.Logger, LoggingHandler]:
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    log = logging.getLogger(name)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(handler)
    return log, handler


@pytest.fixture(scope="module")
def http_logs(server, key, client):
    """Spans and logs from the SDK's HTTP exporters; returns what was emitted."""
    resource = Resource.create({"service.name": LOG_SERVICE, "deployment.environment": "test"})
    headers = {"x-honeycomb-team": key}
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", headers=headers))
    )
    log_exporter = Recording(OTLPLogExporter(endpoint=f"{server.url}/v1/logs", headers=headers))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    log, handler = _python_logger(logger_provider, f"tracehive.test.otlp.{uuid.uuid4().hex}")
    tracer = tracer_provider.get_tracer("test-otlp-logs")
    try:
        with tracer.start_as_current_span("handle-order") as root:
            log.info("order %s accepted", 42)
            log.warning("slow path taken")
            with tracer.start_as_current_span("db-query") as child:
                log.error("db timeout after %d ms", 1500, extra={"db.system": "postgres"})
        log.info("outside any span")
        log.info({"event": "structured", "n": 1})  # a map body
        try:
            raise KeyError("missing-sku")
        except KeyError:
            log.exception("lookup failed")
        assert logger_provider.force_flush(30_000)
        assert tracer_provider.force_flush(30_000)
    finally:
        log.removeHandler(handler)
        logger_provider.shutdown()
        tracer_provider.shutdown()
    wait_flushed(client)
    return {
        "trace_id": f"{root.get_span_context().trace_id:032x}",
        "root_id": f"{root.get_span_context().span_id:016x}",
        "child_id": f"{child.get_span_context().span_id:016x}",
        "results": log_exporter.results,
    }


def test_log_exports_succeed(http_logs):
    assert http_logs["results"]
    assert all(r == LogRecordExportResult.SUCCESS for r in http_logs["results"])


def test_trace_api_shows_logs_top_level_and_under_spans(client, http_logs):
    r = client.get(f"/api/v1/traces/{http_logs['trace_id']}")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["span_count"] == 2
    logs = doc["logs"]
    assert [(lg["body"], lg["severity_text"], lg["severity_number"]) for lg in logs] == [
        ("order 42 accepted", "INFO", 9),
        ("slow path taken", "WARN", 13),
        ("db timeout after 1500 ms", "ERROR", 17),
    ]
    assert [lg["span_id"] for lg in logs] == [http_logs["root_id"]] * 2 + [http_logs["child_id"]]
    assert all(lg["service"] == LOG_SERVICE for lg in logs)
    assert logs[2]["attributes"]["db.system"] == "postgres"
    for lg in logs:  # deployment.* is a resource attribute, not the record's
        assert "deployment.environment" not in lg["attributes"]
    spans = {s["span_id"]: s for s in doc["spans"]}
    assert [lg["body"] for lg in spans[http_logs["root_id"]]["logs"]] == [
        "order 42 accepted",
        "slow path taken",
    ]
    assert [lg["body"] for lg in spans[http_logs["child_id"]]["logs"]] == [
        "db timeout after 1500 ms"
    ]
    for s in doc["spans"]:  # tree order and times
        assert s["start_time_unix_nano"] <= s["end_time_unix_nano"]
    assert [s["name"] for s in doc["spans"]] == ["handle-order", "db-query"]
    for lg in logs:
        span = spans[lg["span_id"]]
        assert span["start_time_unix_nano"] <= lg["time_unix_nano"] <= span["end_time_unix_nano"]


def test_log_body_and_severity_are_queryable(client, http_logs):
    spec = {
        "calculations": [{"op": "COUNT"}],
        "filters": [{"column": "meta.signal_type", "op": "=", "value": "log"}],
        "breakdowns": ["severity_text", "body"],
        "time_range": 3600,
    }
    got = {
        (r["severity_text"], r["body"]): r["COUNT"] for r in query_rows(client, LOG_SERVICE, spec)
    }
    assert got == {
        ("INFO", "order 42 accepted"): 1,
        ("WARN", "slow path taken"): 1,
        ("ERROR", "db timeout after 1500 ms"): 1,
        ("INFO", "outside any span"): 1,
        ("INFO", '{"event":"structured","n":1}'): 1,  # a non-string body as compact JSON
        ("ERROR", "lookup failed"): 1,
    }
    spec = {
        "calculations": [{"op": "COUNT"}, {"op": "MAX", "column": "severity_number"}],
        "filters": [
            {"column": "meta.signal_type", "op": "=", "value": "log"},
            {"column": "body", "op": "contains", "value": "timeout"},
            {"column": "db.system", "op": "=", "value": "postgres"},
            {"column": "error", "op": "=", "value": True},
        ],
        "time_range": 3600,
    }
    assert query_rows(client, LOG_SERVICE, spec) == [{"COUNT": 1, "MAX(severity_number)": 17}]
    # exception details logged with log.exception are attributes of the record
    spec = {
        "calculations": [{"op": "COUNT"}],
        "filters": [{"column": "exception.type", "op": "=", "value": "KeyError"}],
        "breakdowns": ["body", "exception.message", "error"],
        "time_range": 3600,
    }
    assert query_rows(client, LOG_SERVICE, spec) == [
        {"body": "lookup failed", "exception.message": "missing-sku", "error": True, "COUNT": 1}
    ]
    # the log outside any span carries no trace id
    spec = {
        "calculations": [{"op": "COUNT"}],
        "filters": [
            {"column": "meta.signal_type", "op": "=", "value": "log"},
            {"column": "trace.trace_id", "op": "does-not-exist"},
        ],
        "breakdowns": ["body"],
        "time_range": 3600,
    }
    got = {r["body"]: r["COUNT"] for r in query_rows(client, LOG_SERVICE, spec)}
    assert got == {"outside any span": 1, '{"event":"structured","n":1}': 1, "lookup failed": 1}
    # spans are in the same dataset, with signal type "trace"
    spec = {
        "calculations": [{"op": "COUNT"}],
        "breakdowns": ["meta.signal_type"],
        "time_range": 3600,
    }
    got = {r["meta.signal_type"]: r["COUNT"] for r in query_rows(client, LOG_SERVICE, spec)}
    assert got == {"log": 6, "trace": 2}


def test_grpc_log_exporter(server, key, client):
    resource = Resource.create({"service.name": GRPC_LOG_SERVICE})
    exporter = Recording(
        GrpcLogExporter(endpoint=server.grpc_url, insecure=True, headers={"x-honeycomb-team": key})
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    log, handler = _python_logger(provider, f"tracehive.test.grpc.{uuid.uuid4().hex}")
    tracer = TracerProvider(resource=resource).get_tracer("grpc-logs")  # not exported
    try:
        with tracer.start_as_current_span("grpc-work") as span:
            log.warning("over grpc %s", "one")
            log.critical("over grpc two")
        assert provider.force_flush(30_000)
    finally:
        log.removeHandler(handler)
        provider.shutdown()
    assert exporter.results and all(r == LogRecordExportResult.SUCCESS for r in exporter.results)
    wait_flushed(client)
    spec = {
        "calculations": [{"op": "COUNT"}],
        "filters": [{"column": "meta.signal_type", "op": "=", "value": "log"}],
        "breakdowns": ["severity_text", "body"],
        "time_range": 3600,
    }
    got = {
        (r["severity_text"], r["body"]): r["COUNT"] for r in query_rows(client, "grpc-logsvc", spec)
    }
    assert got == {("WARN", "over grpc one"): 1, ("FATAL", "over grpc two"): 1}
    # the trace has no spans stored, but its logs are found by trace id
    trace_id = f"{span.get_span_context().trace_id:032x}"
    r = client.get(f"/api/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["spans"] == [] and doc["span_count"] == 0
    assert [lg["body"] for lg in doc["logs"]] == ["over grpc one", "over grpc two"]


class RecordingMetricExporter(OTLPMetricExporter):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.results: list = []

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
        result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.results.append(result)
        return result


def _export_metrics(server, headers: dict[str, str]) -> RecordingMetricExporter:
    exporter = RecordingMetricExporter(endpoint=f"{server.url}/v1/metrics", headers=headers)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": "metricsvc"}), metric_readers=[reader]
    )
    meter = provider.get_meter("test-metrics")
    meter.create_counter("orders.placed").add(3, {"region": "eu"})
    meter.create_up_down_counter("queue.depth").add(-2)
    meter.create_histogram("order.value", unit="EUR").record(12.5)
    meter.create_gauge("cpu.temp").set(61.5)
    try:
        assert provider.force_flush(30_000)
    finally:
        provider.shutdown()
    return exporter


def test_metrics_land_in_the_dataset_named_by_header(server, key, client):
    exporter = _export_metrics(
        server, {"x-honeycomb-team": key, "x-honeycomb-dataset": METRICS_DATASET}
    )
    assert exporter.results
    assert all(r == MetricExportResult.SUCCESS for r in exporter.results)
    wait_flushed(client)
    names = [d["name"] for d in client.get("/1/datasets").json()]
    assert METRICS_DATASET in names
    assert "metricsvc" not in names  # not routed by service.name


def test_metrics_without_dataset_header_go_to_unknown_metrics(server, key, client):
    exporter = _export_metrics(server, {"x-honeycomb-team": key})
    assert exporter.results and all(r == MetricExportResult.SUCCESS for r in exporter.results)
    wait_flushed(client)
    assert "unknown_metrics" in [d["name"] for d in client.get("/1/datasets").json()]


def test_metrics_plain_http_answers_200_protobuf(server, key):
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    with server.client(key) as c:
        r = c.post(
            "/v1/metrics",
            content=metrics_service_pb2.ExportMetricsServiceRequest().SerializeToString(),
            headers={"content-type": "application/x-protobuf", "x-honeycomb-dataset": "m2"},
        )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-protobuf")
    response = metrics_service_pb2.ExportMetricsServiceResponse.FromString(r.content)
    assert response.partial_success.rejected_data_points == 0


# -- OTLP/JSON traces and partial success -------------------------------------------------------


def _json_trace(trace_id: str, now_ns: int) -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "json-svc"}},
                        {"key": "host.name", "value": {"stringValue": "box-1"}},
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "curl-scope", "version": "0.1"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "1111111111111111",
                                "name": "GET /json",
                                "kind": 2,
                                "startTimeUnixNano": str(now_ns - 50_000_000),
                                "endTimeUnixNano": str(now_ns),
                                "attributes": [
                                    {"key": "http.status_code", "value": {"intValue": "503"}},
                                    {"key": "retry", "value": {"boolValue": True}},
                                    {"key": "ratio", "value": {"doubleValue": 0.5}},
                                ],
                                "status": {"code": 2, "message": "upstream down"},
                                "events": [
                                    {
                                        "timeUnixNano": str(now_ns - 10_000_000),
                                        "name": "retrying",
                                        "attributes": [
                                            {"key": "attempt", "value": {"intValue": 2}}
                                        ],
                                    }
                                ],
                            },
                            {
                                "traceId": trace_id,
                                "spanId": "2222222222222222",
                                "parentSpanId": "1111111111111111",
                                "name": "child",
                                "startTimeUnixNano": now_ns - 40_000_000,
                                "endTimeUnixNano": now_ns - 20_000_000,
                            },
                        ],
                    }
                ],
            }
        ]
    }


def test_otlp_json_trace_stored_and_readable(client):
    trace_id = uuid.uuid4().hex
    now_ns = time.time_ns()
    r = client.post("/v1/traces", json=_json_trace(trace_id, now_ns))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {}
    wait_flushed(client)
    r = client.get(f"/api/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["trace_id"] == trace_id
    assert doc["span_count"] == 2 and doc["error"] is True
    assert doc["services"] == ["json-svc"]
    assert doc["duration_ms"] == pytest.approx(50.0)
    root, child = doc["spans"]
    assert (root["span_id"], root["parent_id"], root["depth"]) == ("1111111111111111", None, 0)
    assert (child["span_id"], child["parent_id"], child["depth"]) == (
        "2222222222222222",
        "1111111111111111",
        1,
    )
    assert root["name"] == "GET /json" and root["kind"] == "server"
    assert root["error"] is True and root["status_message"] == "upstream down"
    assert root["attributes"] == {"http.status_code": 503, "retry": True, "ratio": 0.5}
    assert root["resource"] == {"service.name": "json-svc", "host.name": "box-1"}
    assert root["library"] == {"name": "curl-scope", "version": "0.1"}
    assert root["duration_ms"] == pytest.approx(50.0)
    assert child["duration_ms"] == pytest.approx(20.0)
    assert [(e["name"], e["attributes"]) for e in root["events"]] == [("retrying", {"attempt": 2})]
    assert root["events"][0]["time_unix_nano"] == now_ns - 10_000_000


def test_partial_success_json(client):
    good = uuid.uuid4().hex
    body = _json_trace(good, time.time_ns())
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1]["traceId"] = good[:30]  # 15 bytes: rejected
    r = client.post("/v1/traces", json=body)
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert partial["errorMessage"]
    wait_flushed(client)
    doc = client.get(f"/api/v1/traces/{good}").json()
    assert [s["span_id"] for s in doc["spans"]] == ["1111111111111111"]


def _pb_request(good: bytes, bad: bytes) -> bytes:
    now = time.time_ns()
    spans = [
        trace_pb2.Span(
            trace_id=tid,
            span_id=bytes([i + 1]) * 8,
            name=f"pb-span-{i}",
            start_time_unix_nano=now - 10**6,
            end_time_unix_nano=now,
        )
        for i, tid in enumerate((good, bad, good))
    ]
    rs = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])
    rs.resource.attributes.append(
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="pbsvc"))
    )
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


def test_partial_success_protobuf(client):
    good = uuid.uuid4().bytes
    r = client.post(
        "/v1/traces",
        content=_pb_request(good, good[:15]),
        headers={"content-type": "application/x-protobuf"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-protobuf")
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content)
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message
    wait_flushed(client)
    doc = client.get(f"/api/v1/traces/{good.hex()}").json()
    assert sorted(s["name"] for s in doc["spans"]) == ["pb-span-0", "pb-span-2"]


def test_partial_success_grpc(server, key):
    good = uuid.uuid4().bytes
    # an all-zero trace id is invalid too
    response = export_traces_grpc(server, key, _pb_request(good, bytes(16)))
    assert response.partial_success.rejected_spans == 1
