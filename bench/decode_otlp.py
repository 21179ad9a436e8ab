"""Decode speed of OTLP trace batches: protobuf parse, the pure-Python decoder, the active one.

Builds realistic ExportTraceServiceRequest batches (512 spans, ~10 attributes each, a resource with
service.name, host.name and telemetry.sdk.*; an exception event on failed spans), serializes them
(protobuf, and OTLP/JSON for the JSON lines) and prints spans/s, the median of 5 runs. Figures
only: nothing here asserts a speed.

    .venv/bin/python bench/decode_otlp.py [--spans 512] [--batches 40] [--runs 5]
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tracehive.ingest import otlp

ROUTES = ["/api/orders", "/api/orders/{id}", "/api/users/{id}", "/healthz", "/api/cart", "/login"]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
HOSTS = ["db.internal", "cache.internal", "payments.example.com", "auth.internal"]


def _kv(key: str, value: str | int | float | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_request(n_spans: int, rng: random.Random) -> ExportTraceServiceRequest:
    """One batch as the Python SDK's BatchSpanProcessor would send it: one resource, one scope."""
    resource = Resource(
        attributes=[
            _kv("service.name", "checkout"),
            _kv("service.version", "1.4.2"),
            _kv("host.name", "web-7f9c4d-x2kq"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.version", "1.45.1"),
            _kv("process.pid", 4242),
        ]
    )
    scope = InstrumentationScope(name="opentelemetry.instrumentation.flask", version="0.66b1")
    spans = []
    now = time.time_ns()
    trace_id = rng.randbytes(16)
    root_id = rng.randbytes(8)
    for i in range(n_spans):
        if i % 8 == 0:  # a trace of 8 spans: one server root, seven children
            trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
        span_id = root_id if i % 8 == 0 else rng.randbytes(8)
        start = now + i * 1_000_000
        method, route = rng.choice(METHODS), rng.choice(ROUTES)
        code = rng.choice([200, 200, 200, 201, 404, 500])
        span = Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=b"" if i % 8 == 0 else root_id,
            name=f"{method} {route}",
            kind=Span.SPAN_KIND_SERVER if i % 8 == 0 else Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start,
            end_time_unix_nano=start + rng.randrange(100_000, 50_000_000),
            attributes=[
                _kv("http.method", method),
                _kv("http.route", route),
                _kv("http.status_code", code),
                _kv("http.url", f"https://shop.example.com{route}?page={rng.randrange(20)}"),
                _kv("http.flavor", "1.1"),
                _kv("net.peer.name", rng.choice(HOSTS)),
                _kv("net.peer.port", 443),
                _kv("enduser.id", f"user-{rng.randrange(10_000)}"),
                _kv("http.response_content_length", rng.randrange(100, 100_000)),
                _kv("cache.hit", rng.random() < 0.3),
            ],
            status=Status(code=Status.STATUS_CODE_ERROR if code == 500 else 0),
        )
        if code == 500:
            event = span.events.add(time_unix_nano=start + 1000, name="exception")
            event.attributes.extend(
                [
                    _kv("exception.type", "ValueError"),
                    _kv("exception.message", "bad order id"),
                    _kv("exception.stacktrace", "Traceback (most recent call last): ..."),
                ]
            )
        spans.append(span)
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=spans)])
        ]
    )


def _otlp_json(node: Any) -> Any:
    """MessageToDict output -> OTLP/JSON: trace and span ids as hex instead of base64."""
    if isinstance(node, list):
        return [_otlp_json(x) for x in node]
    if isinstance(node, dict):
        return {
            k: base64.b64decode(v).hex()
            if k in ("traceId", "spanId", "parentSpanId")
            else _otlp_json(v)
            for k, v in node.items()
        }
    return node


def _rate(fn: Callable[[bytes], object], bodies: list[bytes], spans: int, runs: int) -> float:
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for body in bodies:
            fn(body)
        rates.append(spans * len(bodies) / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=512, help="spans per batch")
    parser.add_argument("--batches", type=int, default=40, help="batches per run")
    parser.add_argument("--runs", type=int, default=5, help="runs (the median is printed)")
    args = parser.parse_args()
    rng = random.Random(42)
    requests = [build_request(args.spans, rng) for _ in range(args.batches)]
    bodies = [request.SerializeToString() for request in requests]
    json_bodies = [orjson.dumps(_otlp_json(MessageToDict(request))) for request in requests]
    per_span = sum(map(len, bodies)) / (args.spans * args.batches)
    print(f"{args.batches} batches x {args.spans} spans, {per_span:.0f} B/span on the wire")

    def parse(body: bytes) -> object:
        return ExportTraceServiceRequest.FromString(body)

    active = "C accelerator" if otlp.ACCELERATED else "pure Python"
    cases: list[tuple[str, Callable[[bytes], object]]] = [
        ("ParseFromString alone", parse),
        ("decode_traces_py (pure Python)", lambda b: otlp.decode_traces_py(b, "protobuf")),
        (f"decode_traces (active: {active})", lambda b: otlp.decode_traces(b, "protobuf")),
    ]
    for label, fn in cases:
        rate = _rate(fn, bodies, args.spans, args.runs)
        print(f"{label:<45} {rate:>12,.0f} spans/s")
    json_cases: list[tuple[str, Callable[[bytes], object]]] = [
        ("OTLP/JSON: orjson.loads alone", orjson.loads),
        ("OTLP/JSON: decode_traces (pure Python)", lambda b: otlp.decode_traces(b, "json")),
    ]
    for label, fn in json_cases:
        rate = _rate(fn, json_bodies, args.spans, args.runs)
        print(f"{label:<45} {rate:>12,.0f} spans/s")


if __name__ == "__main__":
    main()
