"""Acknowledged means durable: kill -9 the server during a load, restart, every acknowledged span
is there exactly once. SIGTERM under load: exit 0 with everything acknowledged flushed."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from server_harness import ServerProcess

SPANS_PER_TRACE = 50
PB = {"content-type": "application/x-protobuf"}


def trace_body(trace_id: bytes) -> bytes:
    now = time.time_ns()
    spans = [
        trace_pb2.Span(
            trace_id=trace_id,
            span_id=(i + 1).to_bytes(8, "big"),
            name=f"op-{i % 7}",
            parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
            start_time_unix_nano=now + i,
            end_time_unix_nano=now + i + 1000 * i,
            attributes=[common_pb2.KeyValue(key="load.i", value=common_pb2.AnyValue(int_value=i))],
        )
        for i in range(SPANS_PER_TRACE)
    ]
    rs = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])
    rs.resource.attributes.append(
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="load"))
    )
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


def load(url: str, key: str, acked: list[bytes], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, headers={**PB, "x-honeycomb-team": key}, timeout=10) as c:
        while not stop.is_set():
            tid = os.urandom(16)
            try:
                r = c.post("/v1/traces", content=trace_body(tid))
            except httpx.HTTPError:
                return  # the server died: this request was never acknowledged
            if r.status_code == 200:
                acked.append(tid)
            elif r.status_code == 503:
                time.sleep(float(r.headers.get("retry-after", "0.2")))


def run_load_then(server: ServerProcess, key: str, action, min_acked: int = 200) -> list[bytes]:
    acked: list[bytes] = []
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(server.url, key, acked, stop)) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < min_acked and time.monotonic() < deadline:
        time.sleep(0.05)
    action()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= min_acked
    return list(acked)


def assert_all_present(server: ServerProcess, key: str, acked: list[bytes]) -> None:
    with server.client(key) as c:
        for tid in acked:
            r = c.get(f"/api/v1/traces/{tid.hex()}")
            assert r.status_code == 200, f"acknowledged trace {tid.hex()} lost"
            assert r.json()["span_count"] == SPANS_PER_TRACE  # exactly once, not replayed twice


@pytest.mark.slow
def test_kill_9_loses_nothing_acknowledged(tmp_path):
    # Small row groups: writes split records at row-group boundaries all the time, so replay
    # must resume inside a record (exactly once) as well as after whole ones.
    env = {"TRACEHIVE_FLUSH_ROWS": "1013"}
    server = ServerProcess(tmp_path / "data", env).start()
    key = server.create_key("ingest,query")
    acked = run_load_then(server, key, server.kill)
    restarted = ServerProcess(tmp_path / "data", env).start()
    try:
        assert_all_present(restarted, key, acked)
    finally:
        assert restarted.stop() == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_under_load_flushes_and_exits_0(tmp_path, sig):
    server = ServerProcess(tmp_path / "data").start()
    key = server.create_key("ingest,query")
    codes = []
    acked = run_load_then(server, key, lambda: codes.append(server.stop(sig)))
    assert codes == [0]
    # the WAL must have been applied to the store at shutdown: nothing left to replay
    restarted = ServerProcess(tmp_path / "data").start()
    try:
        assert not any("replayed" in line for line in restarted.output)
        assert_all_present(restarted, key, acked)
    finally:
        assert restarted.stop() == 0
