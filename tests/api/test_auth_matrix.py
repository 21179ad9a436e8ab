"""Every route x {no key, unknown key, key without the permission, key of another environment}."""

from __future__ import annotations

import gzip
import time

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def otlp_body() -> bytes:
    span = trace_pb2.Span(
        trace_id=TRACE_ID,
        span_id=b"\x01" * 8,
        name="auth-span",
        start_time_unix_nano=time.time_ns() - 10**6,
        end_time_unix_nano=time.time_ns(),
    )
    rs = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[span])])
    rs.resource.attributes.append(
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="authsvc"))
    )
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


PB = {"content-type": "application/x-protobuf"}
# (method, path, body, headers, permission, error shape)
ROUTES = [
    ("POST", "/v1/traces", otlp_body(), PB, "ingest", "otlp"),
    ("POST", "/v1/logs", b"", PB, "ingest", "otlp"),
    ("POST", "/v1/metrics", b"", PB, "ingest", "otlp"),
    ("POST", "/1/events/authsvc", b'{"a": 1}', {}, "ingest", "honeycomb"),
    ("POST", "/1/batch/authsvc", b'[{"data": {"a": 1}}]', {}, "ingest", "honeycomb"),
    ("POST", "/1/queries/__all__", b"{}", {}, "query", "honeycomb"),
    ("GET", "/1/queries/__all__/nope", None, {}, "query", "honeycomb"),
    ("POST", "/1/query_results/__all__", b'{"query_id": "x"}', {}, "query", "honeycomb"),
    ("GET", "/1/query_results/__all__/nope", None, {}, "query", "honeycomb"),
    ("GET", "/1/columns/__all__", None, {}, "query", "honeycomb"),
    ("GET", "/1/datasets", None, {}, "query", "honeycomb"),
    ("GET", f"/api/v1/traces/{TRACE_ID.hex()}", None, {}, "query", "json"),
    ("POST", "/api/v1/traces/search", b"{}", {}, "query", "json"),
]


@pytest.fixture(scope="module")
def keys(server):
    return {
        "ingest": server.create_key("ingest"),
        "query": server.create_key("query"),
        "all": server.create_key("ingest,query,admin"),
        "other_env": server.create_key("ingest,query", env="staging"),
    }


def _call(server, method, path, body, headers, key):
    h = dict(headers)
    if key is not None:
        h["x-honeycomb-team"] = key
    with server.client(None) as c:
        return c.request(method, path, content=body, headers=h)


def _assert_error_shape(r, shape):
    if shape == "otlp":
        status = status_pb2.Status()
        status.ParseFromString(r.content)
        assert status.message
    else:
        assert r.json()["error"]


@pytest.mark.parametrize(("method", "path", "body", "headers", "perm", "shape"), ROUTES)
def test_missing_and_unknown_keys_get_401(server, method, path, body, headers, perm, shape):
    for key in (None, "thk_000000000000_notarealsecretnotarealsecret00", "garbage"):
        r = _call(server, method, path, body, headers, key)
        assert r.status_code == 401, (key, r.text)
        _assert_error_shape(r, shape)


@pytest.mark.parametrize(("method", "path", "body", "headers", "perm", "shape"), ROUTES)
def test_key_without_permission_gets_403(server, keys, method, path, body, headers, perm, shape):
    lacking = keys["query"] if perm == "ingest" else keys["ingest"]
    r = _call(server, method, path, body, headers, lacking)
    assert r.status_code == 403, r.text
    _assert_error_shape(r, shape)
    r = _call(server, method, path, body, headers, keys["all"])
    assert r.status_code not in (401, 403), r.text


def test_bearer_header_works(server, keys):
    with server.client(None) as c:
        r = c.get("/1/auth", headers={"authorization": f"Bearer {keys['query']}"})
    assert r.status_code == 200


def test_auth_who_am_i(server, keys):
    with server.client(keys["ingest"]) as c:
        body = c.get("/1/auth").json()
    assert body["type"] == "ingest"
    assert body["api_key_access"]["createDatasets"] is True
    assert body["api_key_access"]["create_datasets"] is True
    assert body["environment"] == {"name": "development", "slug": "development"}
    assert body["team"]["slug"]
    with server.client(None) as c:
        assert c.get("/1/auth").status_code == 401


def test_other_environment_never_sees_data(server, keys):
    with server.client(keys["all"]) as c:
        r = c.post("/v1/traces", content=otlp_body(), headers=PB)
        assert r.status_code == 200
        deadline = time.monotonic() + 20
        while c.get(f"/api/v1/traces/{TRACE_ID.hex()}").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        qid = c.post("/1/queries/__all__", json={"calculations": [{"op": "COUNT"}]}).json()["id"]
    with server.client(keys["other_env"]) as c:
        assert c.get(f"/api/v1/traces/{TRACE_ID.hex()}").status_code == 404
        assert c.get("/1/columns/authsvc").status_code == 404
        assert c.get("/1/datasets").json() == []
        assert c.get(f"/1/queries/__all__/{qid}").status_code == 404
        r = c.post("/1/query_results/__all__", json={"query_id": qid})
        assert r.status_code == 404
        found = c.post("/api/v1/traces/search", json={}).json()["traces"]
        assert TRACE_ID.hex() not in [t["trace_id"] for t in found]


def test_grpc_auth(server, keys):
    target = server.grpc_url.replace("http://", "")
    with grpc.insecure_channel(target) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        for key, code in (
            (None, grpc.StatusCode.UNAUTHENTICATED),
            ("nope", grpc.StatusCode.UNAUTHENTICATED),
            (keys["query"], grpc.StatusCode.PERMISSION_DENIED),
        ):
            md = (("x-honeycomb-team", key),) if key else ()
            with pytest.raises(grpc.RpcError) as err:
                export(otlp_body(), metadata=md, timeout=10)
            assert err.value.code() == code
        assert (
            export(otlp_body(), metadata=(("x-honeycomb-team", keys["ingest"]),), timeout=10) == b""
        )


def test_bad_payloads_get_protocol_errors(server, keys):
    with server.client(keys["all"]) as c:
        r = c.post("/v1/traces", content=b"\xff\xff\xff", headers=PB)
        assert r.status_code == 400
        r = c.post("/v1/traces", content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "message" in r.json()
        r = c.post("/v1/traces", content=otlp_body(), headers={"content-type": "text/plain"})
        assert r.status_code == 415
        r = c.post("/v1/traces", content=b"not gzip", headers={**PB, "content-encoding": "gzip"})
        assert r.status_code == 400
        r = c.post(
            "/v1/traces",
            content=gzip.compress(otlp_body()),
            headers={**PB, "content-encoding": "gzip"},
        )
        assert r.status_code == 200
        bomb = gzip.compress(b"\0" * (80 * 1024 * 1024))
        r = c.post("/v1/traces", content=bomb, headers={**PB, "content-encoding": "gzip"})
        assert r.status_code == 413
        r = c.post("/1/events/x", content=b"")
        assert r.status_code == 400 and r.json()["error"] == "Request body should not be empty."
        r = c.post("/1/queries/__all__", json={"calculations": [{"op": "P91", "column": "x"}]})
        assert r.status_code == 400 and "calculations[0].op" in r.json()["error"]
        assert c.get("/api/v1/traces/not-an-id").status_code == 400
        assert c.get("/healthz").status_code == 200
