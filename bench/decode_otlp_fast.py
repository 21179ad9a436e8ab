"""Speed of the C OTLP trace decoder (``tracehive.ingest._otlp_fast.decode_traces``).

Realistic batches as the Python SDK's BatchSpanProcessor sends them: 512 spans, one resource
(service.name, host.name, telemetry.sdk.*, process.pid), one scope, ~10 attributes a span (HTTP
semantic conventions: strings, ints, a bool), traces of 8 spans, an "exception" event on the spans
with status 500, a link on every 16th span. Prints spans/s (and rows/s) as the median of 5 runs.
Figures only: nothing here asserts a speed.

    .venv/bin/python bench/decode_otlp_fast.py [--spans 512] [--batches 40] [--runs 5]

To test another build of the extension (e.g. with sanitizers), point
``TRACEHIVE_OTLP_FAST_SO`` at it; tests/ingest/test_otlp_fast.py honours the same variable:

    gcc -shared -fPIC -std=c11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \\
        -I$(.venv/bin/python -c "import sysconfig;print(sysconfig.get_paths()['include'])") \\
        src/tracehive/ingest/_otlp_fast.c -o /tmp/_otlp_fast_asan.so
    LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so) \\
        ASAN_OPTIONS=detect_leaks=0 TRACEHIVE_OTLP_FAST_SO=/tmp/_otlp_fast_asan.so \\
        .venv/bin/python -m pytest tests/ingest/test_otlp_fast.py -q -p no:cacheprovider
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import random
import statistics
import time
from types import ModuleType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

ROUTES = ["/api/orders", "/api/orders/{id}", "/api/users/{id}", "/healthz", "/api/cart", "/login"]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
HOSTS = ["db.internal", "cache.internal", "payments.example.com", "auth.internal"]


def load_fast() -> ModuleType:
    path = os.environ.get("TRACEHIVE_OTLP_FAST_SO")
    if not path:
        from tracehive.ingest import _otlp_fast

        return _otlp_fast
    name = "tracehive.ingest._otlp_fast"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _kv(key: str, value: str | int | float | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_request(n_spans: int, rng: random.Random) -> ExportTraceServiceRequest:
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
    trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
    for i in range(n_spans):
        if i % 8 == 0:
            trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
        start = now + i * 1_000_000
        method, route = rng.choice(METHODS), rng.choice(ROUTES)
        code = rng.choice([200, 200, 200, 201, 404, 500])
        span = Span(
            trace_id=trace_id,
            span_id=root_id if i % 8 == 0 else rng.randbytes(8),
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
        if i % 16 == 0:
            span.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
        spans.append(span)
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=spans)])
        ]
    )


def bench_c_decoder(spans: int = 512, batches: int = 40, runs: int = 5, seed: int = 42) -> float:
    """Print and return the C decoder's spans/s on realistic batches (median of ``runs``)."""
    fast = load_fast()
    rng = random.Random(seed)
    bodies = [build_request(spans, rng).SerializeToString() for _ in range(batches)]
    rows = sum(fast.decode_traces(b)[2] for b in bodies)  # warm-up, and the row count
    per_span = sum(map(len, bodies)) / (spans * batches)
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for body in bodies:
            fast.decode_traces(body)
        rates.append(spans * batches / (time.perf_counter() - t0))
    rate = statistics.median(rates)
    print(
        f"{batches} batches x {spans} spans, {per_span:.0f} B/span, {rows / batches:.0f} rows/batch"
    )
    rows_rate = rate * rows / (spans * batches)
    print(
        f"C decoder (_otlp_fast.decode_traces): {rate:>12,.0f} spans/s  ({rows_rate:,.0f} rows/s)"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=512, help="spans per batch")
    parser.add_argument("--batches", type=int, default=40, help="batches per run")
    parser.add_argument("--runs", type=int, default=5, help="runs (the median is printed)")
    args = parser.parse_args()
    bench_c_decoder(args.spans, args.batches, args.runs)


if __name__ == "__main__":
    main()
