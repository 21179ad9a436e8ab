"""Services in-process: dataset routing, retention, and WAL replay through the real decoders."""

from __future__ import annotations

import asyncio
import time

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tracehive.pipeline import Record
from tracehive.services import DataDirLocked, Services
from tracehive.settings import Config

DAY_NS = 86_400 * 10**9


def body(trace_id: bytes, start_ns: int, service: str = "svc") -> bytes:
    span = trace_pb2.Span(
        trace_id=trace_id,
        span_id=b"\x02" * 8,
        name="op",
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + 1000,
    )
    rs = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[span])])
    rs.resource.attributes.append(
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service))
    )
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


@pytest.fixture
def services(tmp_path):
    s = Services(Config.from_env(data_dir=str(tmp_path / "data"), flush_interval_ms="50"))
    yield s
    s.close()


def env_id(services):
    return services.catalog.environment("development").id


def ingest(services, trace_id, start_ns, service="svc"):
    rec = Record(
        kind="traces",
        env_id=env_id(services),
        body=body(trace_id, start_ns, service),
        now_ns=time.time_ns(),
    )
    return asyncio.run(services.ingest(rec))


def wait_written(services, rows):
    deadline = time.monotonic() + 10
    while services.pipeline.rows_written < rows:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_one_server_per_data_dir(services):
    with pytest.raises(DataDirLocked):
        Services(services.config)


def test_datasets_created_on_first_write_case_insensitive(services):
    ingest(services, b"\x01" * 16, time.time_ns(), "Backend-Flask")
    ingest(services, b"\x03" * 16, time.time_ns(), "backend-flask")
    wait_written(services, 2)
    names = [d.name for d in services.catalog.datasets(env_id(services))]
    assert names == ["Backend-Flask"]
    scope = services.scope(env_id(services), "BACKEND-FLASK")
    assert len(scope.dataset_ids) == 1


def test_retention_removes_rows_past_the_environment_window(services):
    now = time.time_ns()
    old, new = b"\x0a" * 16, b"\x0b" * 16
    ingest(services, old, now - 61 * DAY_NS)
    ingest(services, new, now - 59 * DAY_NS)
    wait_written(services, 2)
    assert services.enforce_retention(now) == 1
    assert services.store.get_trace(env_id(services), old) == []
    assert len(services.store.get_trace(env_id(services), new)) == 1
    services.catalog.set_retention("development", 30)
    assert services.enforce_retention(now) == 1
    assert services.store.get_trace(env_id(services), new) == []


def test_unapplied_wal_records_are_replayed_on_start(tmp_path):
    cfg = Config.from_env(
        data_dir=str(tmp_path / "d"), flush_interval_ms="60000", flush_rows="1000000"
    )
    s = Services(cfg)
    tid = b"\x0c" * 16
    rec = Record(
        kind="traces", env_id=env_id(s), body=body(tid, time.time_ns()), now_ns=time.time_ns()
    )
    asyncio.run(s.ingest(rec))  # acknowledged: in the WAL, not yet in the store
    assert s.store.get_trace(env_id(s), tid) == []
    # simulate a crash: drop the writer's pending rows, release the lock without flushing
    s.pipeline.wal.stop()
    s.store.close()
    s.catalog.close()
    import fcntl

    fcntl.flock(s._lock_file, fcntl.LOCK_UN)
    s2 = Services(cfg)
    try:
        assert s2.replayed == 1
        assert len(s2.store.get_trace(env_id(s2), tid)) == 1
    finally:
        s2.close()
