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
import sys
import time
from pathlib import Path
from types import ModuleType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).parent))
from decode_otlp import build_request as _base_request

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


def build_request(n_spans: int, rng: random.Random) -> ExportTraceServiceRequest:
    """``decode_otlp.build_request``'s batch, plus a link on every 16th span (links are a
    separate code path in the C decoder)."""
    req = _base_request(n_spans, rng)
    for i, span in enumerate(req.resource_spans[0].scope_spans[0].spans):
        if i % 16 == 0:
            span.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
    return req


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
