"""Realistic OTLP trace payloads for the benchmarks: batches of 512 spans, ~10 attributes each,
as the Python SDK's BatchSpanProcessor sends them (one resource, one scope)."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime

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


def _resource(rng: random.Random) -> list:
    """One service's resource attributes, as the Python SDK sends them."""
    return [
        _kv("service.name", rng.choice(SERVICES)),
        _kv("host.name", f"ip-10-0-0-{rng.randint(1, 9)}"),
        _kv("telemetry.sdk.language", "python"),
        _kv("telemetry.sdk.name", "opentelemetry"),
        _kv("telemetry.sdk.version", "1.45.2"),
    ]


def _request(resource: list, spans: list) -> bytes:
    """One resource, one scope (the Flask instrumentation's), as BatchSpanProcessor exports."""
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


def build_payload(rng: random.Random, now_ns: int, spans_per_batch: int = 512) -> bytes:
    resource = _resource(rng)
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
    return _request(resource, spans)


# -- "cruddur": traces shaped like the tutorial's instrumented backend-flask ------------------
# What the real instrumentations put on each span (opentelemetry-instrumentation-flask,
# -requests, -psycopg and the tutorial's custom span): the SERVER root carries the HTTP request
# attributes and the user, children carry their own few. Values are per trace where the real
# app's are (one user, one client address, one route per request), random where they are
# (ids, durations, timestamps, result sizes). The default shape above gives every span ten
# independent high-entropy values instead: the worst case for compression.
USER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1 Safari",
    "python-requests/2.31.0",
]
SQL = [
    "SELECT activities.uuid, users.display_name FROM activities LEFT JOIN users ON users.uuid "
    "= activities.user_uuid ORDER BY activities.created_at DESC",
    "SELECT uuid, handle FROM users WHERE users.cognito_user_id = %(sub)s LIMIT 1",
    "INSERT INTO activities (user_uuid, message, expires_at) VALUES (%s, %s, %s) RETURNING uuid",
]


def _iso(ns: int) -> str:
    """``datetime.now(timezone.utc).isoformat()`` at ``ns``, as the tutorial's span sets it."""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def _child(rng, trace_id, parent, start, name, kind, attrs):
    dur = int(rng.lognormvariate(13.5, 1.0))
    return trace_pb2.Span(
        trace_id=trace_id,
        span_id=os.urandom(8),
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + dur,
        attributes=[_kv(k, v) for k, v in attrs],
    )


def build_cruddur_payload(rng: random.Random, now_ns: int, spans_per_batch: int = 512) -> bytes:
    resource = _resource(rng)
    spans: list = []
    while len(spans) < spans_per_batch:
        trace_id, root = os.urandom(16), os.urandom(8)
        start = now_ns + rng.randint(0, 10**9)
        route = rng.choice(ROUTES)
        user = f"user-{rng.randint(0, 100_000)}"
        status = rng.choice([200] * 30 + [404, 500])
        children = [
            (
                "home-activities-mock-data",
                1,
                [
                    ("app.now", _iso(start + 40_000)),
                    ("app.result_length", rng.randint(0, 20)),
                ],
            ),
            (
                "SELECT",
                3,
                [
                    ("db.system", "postgresql"),
                    ("db.name", "cruddur"),
                    ("db.statement", rng.choice(SQL)),
                    ("db.user", "root"),
                    ("net.peer.name", "db"),
                    ("net.peer.port", 5432),
                ],
            ),
            (
                "GET",
                3,
                [
                    ("http.method", "GET"),
                    ("http.url", f"http://users:4567/api/users/{user}"),
                    ("http.status_code", 200),
                ],
            ),
        ]
        n = min(rng.randint(2, 8), spans_per_batch - len(spans))
        dur = int(rng.lognormvariate(15, 1.2))
        root_span = trace_pb2.Span(
            trace_id=trace_id,
            span_id=root,
            name=route,
            kind=2,
            start_time_unix_nano=start,
            end_time_unix_nano=start + dur,
            attributes=[
                _kv(k, v)
                for k, v in [
                    ("http.method", rng.choice(["GET", "GET", "POST"])),
                    ("http.route", route),
                    ("http.target", route),
                    ("http.scheme", "http"),
                    ("http.host", "backend-flask:4567"),
                    ("net.host.port", 4567),
                    ("http.status_code", status),
                    ("http.user_agent", rng.choice(USER_AGENTS)),
                    ("net.peer.ip", f"10.0.{rng.randint(0, 3)}.{rng.randint(1, 254)}"),
                    ("user.id", user),
                ]
            ],
        )
        if status == 500:
            root_span.status.code = 2
        spans.append(root_span)
        for j in range(1, n):
            name, kind, attrs = children[(j - 1) % len(children)]
            spans.append(_child(rng, trace_id, root, start + j * 50_000, name, kind, attrs))
    return _request(resource, spans)


PAYLOADS = {"worst": build_payload, "cruddur": build_cruddur_payload}
