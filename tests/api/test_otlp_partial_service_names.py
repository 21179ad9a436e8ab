"""Through a real server (OTLP/HTTP protobuf and JSON, OTLP/gRPC): a resource whose service.name
is not a valid dataset name (a control character) has its spans or log records rejected in
partial success while the request's other resources are stored and queryable, and no dataset is
created for it; a request past the dense-output limit (attribute columns x rows) is refused like
the other per-request limits (400 / INVALID_ARGUMENT)."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from api_helpers import export_traces_grpc, query_rows, wait_flushed
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tracehive.ingest.otlp.common import INVALID_SERVICE_NAME, TOO_MANY_SLOTS

BAD_SERVICE = "billing\nworker"  # a newline inside: not a dataset name
PROTOBUF = {"content-type": "application/x-protobuf"}


def _kv(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def _resource_spans(service: str, trace_id: bytes, first: int, n: int):
    now = time.time_ns()
    spans = [
        trace_pb2.Span(
            trace_id=trace_id,
            span_id=(first + i).to_bytes(8, "big"),
            name=f"{service}-op-{i}",
            start_time_unix_nano=now - 10**6,
            end_time_unix_nano=now,
        )
        for i in range(n)
    ]
    rs = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])
    rs.resource.attributes.append(_kv("service.name", service))
    return rs


def _mixed_request(good_service: str, trace_id: bytes) -> bytes:
    """Two spans of ``good_service`` and three of BAD_SERVICE, all in one trace."""
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            _resource_spans(BAD_SERVICE, trace_id, 100, 3),
            _resource_spans(good_service, trace_id, 1, 2),
        ]
    ).SerializeToString()


def _check_stored(client, good_service: str, trace_id: bytes) -> None:
    wait_flushed(client)
    doc = client.get(f"/api/v1/traces/{trace_id.hex()}").json()
    assert sorted(s["name"] for s in doc["spans"]) == [
        f"{good_service}-op-0",
        f"{good_service}-op-1",
    ]
    assert doc["services"] == [good_service]
    spec = {"calculations": [{"op": "COUNT"}], "breakdowns": ["name"], "time_range": 3600}
    got = {r["name"]: r["COUNT"] for r in query_rows(client, good_service, spec)}
    assert got == {f"{good_service}-op-0": 1, f"{good_service}-op-1": 1}
    names = [d["name"] for d in client.get("/1/datasets").json()]
    assert good_service in names
    assert not any("billing" in name for name in names)


def test_protobuf_partial_success(client):
    trace_id = uuid.uuid4().bytes
    r = client.post("/v1/traces", content=_mixed_request("pb-good", trace_id), headers=PROTOBUF)
    assert r.status_code == 200, r.content
    assert r.headers["content-type"].startswith("application/x-protobuf")
    partial = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 3
    assert partial.error_message == f"3 spans rejected: {INVALID_SERVICE_NAME}"
    _check_stored(client, "pb-good", trace_id)


def test_json_partial_success(client):
    trace_id = uuid.uuid4().hex
    now = time.time_ns()

    def resource(service: str, span_ids: list[str]) -> dict:
        return {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
            },
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": trace_id,
                            "spanId": sid,
                            "name": f"{service}-op-{i}",
                            "startTimeUnixNano": str(now - 10**6),
                            "endTimeUnixNano": str(now),
                        }
                        for i, sid in enumerate(span_ids)
                    ]
                }
            ],
        }

    body = {
        "resourceSpans": [
            resource("json-good", ["0000000000000001", "0000000000000002"]),
            resource("bad\x00svc", ["00000000000000a1"]),
        ]
    }
    r = client.post("/v1/traces", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": f"1 spans rejected: {INVALID_SERVICE_NAME}",
        }
    }
    _check_stored(client, "json-good", bytes.fromhex(trace_id))


def test_grpc_partial_success(server, key, client):
    trace_id = uuid.uuid4().bytes
    response = export_traces_grpc(server, key, _mixed_request("grpc-good", trace_id))
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message == f"3 spans rejected: {INVALID_SERVICE_NAME}"
    _check_stored(client, "grpc-good", trace_id)


def test_only_bad_resources_answers_200_and_stores_nothing(client):
    trace_id = uuid.uuid4().bytes
    body = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[_resource_spans("x" * 256, trace_id, 1, 2)]  # too long a name
    ).SerializeToString()
    r = client.post("/v1/traces", content=body, headers=PROTOBUF)
    assert r.status_code == 200, r.content
    partial = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 2
    wait_flushed(client)
    assert client.get(f"/api/v1/traces/{trace_id.hex()}").status_code == 404


def test_logs_partial_success(client):
    now = time.time_ns()

    def resource(service: str, bodies: list[str]) -> logs_pb2.ResourceLogs:
        rl = logs_pb2.ResourceLogs(
            scope_logs=[
                logs_pb2.ScopeLogs(
                    log_records=[
                        logs_pb2.LogRecord(
                            time_unix_nano=now, body=common_pb2.AnyValue(string_value=b)
                        )
                        for b in bodies
                    ]
                )
            ]
        )
        rl.resource.attributes.append(_kv("service.name", service))
        return rl

    body = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            resource("log-good", ["kept one", "kept two"]),
            resource("log\x1bbad", ["dropped"]),
        ]
    ).SerializeToString()
    r = client.post("/v1/logs", content=body, headers=PROTOBUF)
    assert r.status_code == 200, r.content
    partial = logs_service_pb2.ExportLogsServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_log_records == 1
    assert partial.error_message == f"1 log records rejected: {INVALID_SERVICE_NAME}"
    wait_flushed(client)
    spec = {"calculations": [{"op": "COUNT"}], "breakdowns": ["body"], "time_range": 3600}
    got = {r["body"]: r["COUNT"] for r in query_rows(client, "log-good", spec)}
    assert got == {"kept one": 1, "kept two": 1}


# -- the dense-output limit ---------------------------------------------------------------------


def _amplification_request() -> bytes:
    """One span with 199,999 events, 2,000 of them with a one-off key: ~2.2 MB that decoded to
    ~3 GB before the limit on attribute columns x rows."""
    now = time.time_ns()
    events = [
        trace_pb2.Span.Event(time_unix_nano=now, attributes=[_kv(f"k{i}", "v")] if i < 2000 else [])
        for i in range(199_999)
    ]
    span = trace_pb2.Span(
        trace_id=uuid.uuid4().bytes, span_id=b"\x01" * 8, name="amp", events=events
    )
    rs = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[span])])
    rs.resource.attributes.append(_kv("service.name", "amp"))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


@pytest.fixture(scope="module")
def amplification() -> bytes:
    return _amplification_request()


def test_dense_limit_is_a_400(client, amplification):
    from google.rpc import status_pb2

    t0 = time.perf_counter()
    r = client.post("/v1/traces", content=amplification, headers=PROTOBUF)
    assert time.perf_counter() - t0 < 10
    assert r.status_code == 400
    status = status_pb2.Status.FromString(r.content)
    assert (status.code, status.message) == (
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        TOO_MANY_SLOTS,
    )
    assert "amp" not in [d["name"] for d in client.get("/1/datasets").json()]


def test_dense_limit_over_grpc_is_invalid_argument(server, key, amplification):
    with pytest.raises(grpc.RpcError) as info:
        export_traces_grpc(server, key, amplification, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == TOO_MANY_SLOTS
