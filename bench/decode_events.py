"""Decode speed of Honeycomb events-API batches: the active decoder and the pure reference.

Builds ``POST /1/batch/{dataset}`` bodies as libhoney-py / beeline-python send them (an array of
``{"data": {...}, "time": RFC3339, "samplerate": N}``; ~21 fields per event mixing strings, ints,
floats and bools: trace ids, durations, request/response fields, app fields), already
decompressed, and prints events/s of ``decode_batch`` (JSON parse included), the median of
``--runs`` runs on one core. Figures only: nothing here asserts a speed.

    .venv/bin/python bench/decode_events.py [--events 1000] [--batches 20] [--runs 5] [--shapes]

``--shapes`` adds batches unlike the main one (optional fields, nested values, mixed types,
distinct names, small batches, single events), active vs reference on each.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from tracehive.ingest import honeycomb

# The reference is test-only: a copy of the per-field decoder the columnar one replaced.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "ingest"))
import honeycomb_reference

ROUTES = ["/api/orders", "/api/orders/<id>", "/api/users/<id>", "/healthz", "/api/cart", "/login"]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
    "python-requests/2.32.3",
    "curl/8.5.0",
]
Decode = Callable[[bytes, str, int], Any]
SPAN_NAMES = ["flask_http_get", "flask_http_post", "db_query", "redis_get", "render_template"]


def build_event(i: int, rng: random.Random, trace: tuple[str, str]) -> dict[str, Any]:
    """One span as beeline-python sends it (flask + its auto-instrumented children)."""
    trace_id, root_id = trace
    root = i % 6 == 0
    method, route = rng.choice(METHODS), rng.choice(ROUTES)
    data: dict[str, Any] = {
        "service_name": "checkout",
        "service.name": "checkout",
        "name": rng.choice(SPAN_NAMES),
        "trace.trace_id": trace_id,
        "trace.span_id": root_id if root else rng.randbytes(8).hex(),
        "duration_ms": round(rng.lognormvariate(2.5, 1.0), 3),
        "meta.beeline_version": "3.6.0",
        "meta.local_hostname": "web-7f9c4d-x2kq",
        "meta.span_type": "root" if root else "leaf",
        "meta.instrumentation_count": 3,
        "request.method": method,
        "request.path": route.replace("<id>", str(rng.randrange(1, 100_000))),
        "request.host": "shop.example.com",
        "request.http_version": "HTTP/1.1",
        "request.remote_addr": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
        "request.user_agent": rng.choice(AGENTS),
        "request.secure": rng.random() < 0.9,
        "response.status_code": rng.choice([200, 200, 200, 201, 404, 500]),
        "app.user_id": rng.randrange(1, 100_000),
        "app.cart_value": round(rng.uniform(0, 500), 2),
        "app.cache_hit": rng.random() < 0.7,
    }
    if not root:
        data["trace.parent_id"] = root_id
    return data


def build_body(n_events: int, rng: random.Random) -> bytes:
    """A batch body as libhoney-py's transmission sends it."""
    start = datetime.now(UTC) - timedelta(seconds=60)
    items = []
    trace = (rng.randbytes(16).hex(), rng.randbytes(8).hex())
    for i in range(n_events):
        if i % 6 == 0:
            trace = (rng.randbytes(16).hex(), rng.randbytes(8).hex())
        created = start + timedelta(microseconds=i * 997)
        items.append(
            {
                "data": build_event(i, rng, trace),
                "time": created.isoformat(),
                "samplerate": rng.choice([1, 1, 1, 10]),
            }
        )
    return orjson.dumps(items)


def measure(decode: Decode, bodies: list[bytes], n_events: int, runs: int) -> list[float]:
    now_ns = time.time_ns()
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for body in bodies:
            decode(body, "checkout", now_ns)
        rates.append(n_events / (time.perf_counter() - t0))
    return rates


def compare(bodies: list[bytes], n_events: int, runs: int, single: bool) -> None:
    """Active vs reference on the same bodies, after checking that they decode them alike."""
    if single:
        pairs: list[tuple[str, Decode]] = [
            ("active", lambda b, d, now: honeycomb.decode_event(b, d, None, None, now)),
            (
                "reference",
                lambda b, d, now: honeycomb_reference.decode_event(b, d, None, None, now),
            ),
        ]
    else:
        pairs = [
            ("active", honeycomb.decode_batch),
            ("reference", honeycomb_reference.decode_batch),
        ]
    now_ns = time.time_ns()
    for body in bodies[:2]:  # the figures compare two decoders of the same thing
        got, want = (decode(body, "checkout", now_ns) for _, decode in pairs)
        if single:
            got, want = (got, []), (want, [])
        assert got[1] == want[1], "statuses differ"
        assert (got[0].n, got[0].cols, got[0].attrs) == (want[0].n, want[0].cols, want[0].attrs)
        assert list(got[0].attrs) == list(want[0].attrs)
    for _, decode in pairs:
        measure(decode, bodies[:2], 1, 1)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name, _ in pairs}
    for _ in range(runs):  # interleaved, so that a slower spell of the machine hits both
        for name, decode in pairs:
            rates[name] += measure(decode, bodies, n_events, 1)
    for name, values in rates.items():
        runs_text = " · ".join(f"{r:,.0f}" for r in values)
        print(f"  {name:9} median {statistics.median(values):>9,.0f} events/s   ({runs_text})")
    ratios = [a / r for a, r in zip(rates["active"], rates["reference"], strict=True)]
    print(f"  active / reference: {statistics.median(ratios):.1f}x (median of the runs' ratios)")


def other_shapes(rng: random.Random) -> list[tuple[str, list[bytes], int, bool]]:
    """Batches unlike the main one: (label, bodies, events in all, single-event bodies?)."""
    bodies = [build_body(1000, rng) for _ in range(5)]
    optional = []
    for body in bodies:  # libhoney with optional fields: many field sets per batch
        items = orjson.loads(body)
        for item in items:
            data = item["data"]
            for key in rng.sample(sorted(data), 5):
                del data[key]
            for j in rng.sample(range(12), rng.randrange(4)):
                data[f"app.optional_{j}"] = rng.randrange(1000)
        optional.append(orjson.dumps(items))
    nested = [
        orjson.dumps(
            [{**i, "data": {**i["data"], "tags": ["a", "b"], "ctx": {"k": 1}}} for i in items]
        )
        for items in map(orjson.loads, bodies)
    ]
    mixed = [  # every field an int in some events and a string in others
        orjson.dumps(
            [
                {"data": {f"k{j}": i if (i + j) % 2 else str(i) for j in range(20)}}
                for i in range(1000)
            ]
        )
    ]
    distinct = [  # 20 names per event that no other event has
        orjson.dumps([{"data": {f"k{b}.{i}.{j}": j for j in range(20)}} for i in range(100)])
        for b in range(10)
    ]
    first = orjson.loads(bodies[0])
    small = [orjson.dumps(first[i : i + 10]) for i in range(0, 1000, 10)]
    single = [orjson.dumps(item["data"]) for item in first]
    return [
        ("optional fields (1000-event batches, many field sets)", optional, 5000, False),
        ("nested values (+ an array and an object per event)", nested, 5000, False),
        ("mixed types (20 fields, each an int or a string by event)", mixed, 1000, False),
        ("distinct names (100-event batches, 20 unique names per event)", distinct, 1000, False),
        ("10-event batches", small, 1000, False),
        ("single events (/1/events)", single, 1000, True),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="events per batch body")
    parser.add_argument("--batches", type=int, default=20, help="distinct bodies per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shapes", action="store_true", help="also other batch shapes")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    rng = random.Random(7)
    bodies = [build_body(args.events, rng) for _ in range(args.batches)]
    n_events = args.events * args.batches
    size = sum(map(len, bodies)) / n_events
    fields = statistics.mean(len(d["data"]) for d in orjson.loads(bodies[0]))
    print(f"{args.batches} batches x {args.events} events, {fields:.1f} fields, {size:.0f} B/event")
    t0 = time.perf_counter()
    for body in bodies:
        orjson.loads(body)
    print(f"  orjson.loads alone: {n_events / (time.perf_counter() - t0):,.0f} events/s")
    compare(bodies, n_events, args.runs, single=False)
    if args.shapes:
        for label, shape_bodies, shape_events, single in other_shapes(rng):
            print(label)
            compare(shape_bodies, shape_events, args.runs, single)


if __name__ == "__main__":
    main()
