"""Helpers shared by the API tests (imported by name, like ``query_fixtures``): wait for the
pipeline, run a query through ``/1/queries`` + ``/1/query_results``, export spans over gRPC."""

from __future__ import annotations

import time


def wait_flushed(client, timeout=30):
    """Until the server has stored everything it acknowledged (queries see it at once: a
    relative window includes the current second)."""
    deadline = time.monotonic() + timeout
    while client.get("/healthz").json()["pending_rows"]:
        assert time.monotonic() < deadline, "pipeline did not flush"
        time.sleep(0.05)


def run_query(client, dataset, spec, timeout=30):
    """The complete query result (Honeycomb's shape), asserting every step's status."""
    r = client.post(f"/1/queries/{dataset}", json=spec)
    assert r.status_code == 200, r.text
    r = client.post(f"/1/query_results/{dataset}", json={"query_id": r.json()["id"]})
    assert r.status_code == 201, r.text
    result = r.json()
    deadline = time.monotonic() + timeout
    while not result["complete"]:
        assert time.monotonic() < deadline, "query did not complete"
        time.sleep(0.05)
        r = client.get(f"/1/query_results/{dataset}/{result['id']}")
        assert r.status_code == 200, r.text
        result = r.json()
    assert "error" not in result, result
    return result


def query_rows(client, dataset, spec, timeout=30):
    """The result rows' data of ``run_query``."""
    return [row["data"] for row in run_query(client, dataset, spec, timeout)["data"]["results"]]


def export_traces_grpc(server, key, body: bytes, timeout=10):
    """One OTLP/gRPC trace export of a serialized request with ``key``: the
    ``ExportTraceServiceResponse`` (a refusal raises ``grpc.RpcError``)."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    with grpc.insecure_channel(server.grpc_url.replace("http://", "")) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
        )
        return export(body, metadata=(("x-honeycomb-team", key),), timeout=timeout)
