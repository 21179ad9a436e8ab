"""Realistic OTLP trace payloads for the benchmarks: batches of 512 spans, ~10 attributes each,
as the Python SDK's BatchSpanProcessor sends them (one resource, one scope)."""

from __future__ import annotations

import os
import random

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

ROUTES = [
    "/api/activities/home",
    "/api/activities/notifications",
    "/api/message_groups",
    "/api/activities/search",
    "/api/profile/update",
    "/api/users/@{handle}/short",
]
SERVICES = ["backend-flask", "frontend-react-js", "messages", "users", "notifications"]


def _kv(key, value):
    if isinstance(value, bool):
        v = common_pb2.AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = common_pb2.AnyValue(int_value=value)
    elif isinstance(value, float):
        v = common_pb2.AnyValue(double_value=value)
    else:
        v = common_pb2.AnyValue(string_value=value)
    return common_pb2.KeyValue(key=key, value=v)


def build_payload(rng: random.Random, now_ns: int, spans_per_batch: int = 512) -> bytes:
    service = rng.choice(SERVICES)
    resource = [
        _kv("service.name", service),
        _kv("host.name", f"ip-10-0-0-{rng.randint(1, 9)}"),
        _kv("telemetry.sdk.language", "python"),
        _kv("telemetry.sdk.name", "opentelemetry"),
        _kv("telemetry.sdk.version", "1.45.2"),
    ]
    spans = []
    i = 0
    while i < spans_per_batch:
        trace_id = os.urandom(16)
        root = os.urandom(8)
        start = now_ns + rng.randint(0, 10**9)
        n = min(rng.randint(2, 8), spans_per_batch - i)
        for j in range(n):
            route = rng.choice(ROUTES)
            dur = int(rng.lognormvariate(15, 1.2))
            status = rng.choice([200] * 30 + [404, 500])
            attrs = [
                _kv("http.method", rng.choice(["GET", "GET", "POST"])),
                _kv("http.route", route),
                _kv("http.status_code", status),
                _kv("http.url", f"http://backend:4567{route}?page={rng.randint(1, 50)}"),
                _kv("net.peer.name", f"10.0.{rng.randint(0, 3)}.{rng.randint(1, 254)}"),
                _kv("user.id", f"user-{rng.randint(0, 100_000)}"),
                _kv("app.result_length", rng.randint(0, 20)),
                _kv("app.cache_hit", rng.random() < 0.3),
                _kv("db.duration_ms", round(rng.random() * 20, 3)),
                _kv("app.region", rng.choice(["us-east-1", "eu-west-1"])),
            ]
            span = trace_pb2.Span(
                trace_id=trace_id,
                span_id=root if j == 0 else os.urandom(8),
                parent_span_id=b"" if j == 0 else root,
                name=route
                if j == 0
                else rng.choice(["db.query", "cache.get", "render", "home-activities-mock-data"]),
                kind=2 if j == 0 else 1,
                start_time_unix_nano=start + j * 1000,
                end_time_unix_nano=start + j * 1000 + dur,
                attributes=attrs,
            )
            if status == 500:
                span.status.code = 2
            spans.append(span)
        i += n
    rs = trace_pb2.ResourceSpans(
        resource={"attributes": resource},
        scope_spans=[
            trace_pb2.ScopeSpans(
                scope={"name": "opentelemetry.instrumentation.flask", "version": "0.66b1"},
                spans=spans,
            )
        ],
    )
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()
