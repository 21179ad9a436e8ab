"""OTLP/HTTP protobuf ingest into a real server: sustained durable spans/s, the decode ceiling of
the same payloads, peak RSS and bytes per span on disk.

    .venv/bin/python bench/ingest_otlp.py --seconds 15 --runs 3 [--connections 4] [--gzip]
        [--payload worst|cruddur] [--keep]

Each run starts a fresh server (its own data dir under /tmp), pre-builds unique payloads (512
spans, ~10 attributes), sends them from N connections for the duration (503 + Retry-After is
honoured like the exporters do), then waits until every acknowledged span is in the store.
"acked" = spans acknowledged with 200 per second of load; "durable" = spans in the store per
second from the first request until the store has them all. "span tables bytes/span" counts
only the blocks of the tables that grow per span (events, trace_index), without the ~2 MB
fixed part.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from otlp_payloads import PAYLOADS

from server_harness import ServerProcess

SPANS = 512


def decode_ceiling(payloads: list[bytes]) -> dict[str, float]:
    from tracehive.ingest import otlp

    out = {}
    fns = {"decode (active path)": lambda b: otlp.decode_traces(b, "protobuf")}
    if hasattr(otlp, "decode_traces_py"):
        fns["decode (pure Python)"] = lambda b: otlp.decode_traces_py(b, "protobuf")
    for label, fn in fns.items():
        sample = payloads[:40]
        t0 = time.perf_counter()
        for p in sample:
            fn(p)
        out[label] = len(sample) * SPANS / (time.perf_counter() - t0)
    return out


def sender(host, port, key, payloads, idx, lock, stop, acked, gz):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"content-type": "application/x-protobuf", "x-honeycomb-team": key}
    if gz:
        headers["content-encoding"] = "gzip"
    while not stop.is_set():
        with lock:
            if idx[0] >= len(payloads):
                return
            body = payloads[idx[0]]
            idx[0] += 1
        while not stop.is_set():
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                with lock:
                    acked[0] += SPANS
                break
            if resp.status in (429, 503):
                time.sleep(float(resp.getheader("retry-after", "1")))
                continue
            raise RuntimeError(f"unexpected status {resp.status}")


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(args, payloads) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="tracehive-bench-"))
    server = ServerProcess(data / "data").start()
    try:
        key = server.create_key("ingest,query")
        host, port = server.url.replace("http://", "").split(":")
        stop = threading.Event()
        idx, acked, lock = [0], [0], threading.Lock()
        threads = [
            threading.Thread(
                target=sender,
                args=(host, int(port), key, payloads, idx, lock, stop, acked, args.gzip),
            )
            for _ in range(args.connections)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        deadline = t0 + args.seconds
        while time.perf_counter() < deadline and any(t.is_alive() for t in threads):
            time.sleep(0.05)  # payloads may run out first: then the load ends early
        stop.set()
        for t in threads:
            t.join()
        load_s = time.perf_counter() - t0
        total = acked[0]
        import httpx

        while True:  # until the store has every acknowledged span
            health = httpx.get(server.url + "/healthz").json()
            if health["pending_rows"] == 0 and health["rows_written"] >= total:
                break
            time.sleep(0.05)
        durable_s = time.perf_counter() - t0
        peak = rss_peak_mb(server.proc.pid)
    finally:
        code = server.stop()
    store = data / "data" / "store.duckdb"
    size = store.stat().st_size
    table_bytes = span_table_bytes(store)
    if args.keep:
        print(f"kept the data dir: {data / 'data'}", file=sys.stderr)
    else:
        shutil.rmtree(data, ignore_errors=True)
    assert code == 0
    return {
        "acked spans/s": total / load_s,
        "durable spans/s": total / durable_s,
        "spans": total,
        "peak RSS MB": peak,
        "bytes/span": size / max(total, 1),
        "span tables bytes/span": table_bytes / max(total, 1),
    }


def span_table_bytes(store: Path) -> int:
    """Blocks holding the events and trace_index tables (what grows per span): the file size
    minus the fixed part (catalog, metadata, small tables: ~2 MB, noticeable at 1M spans)."""
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        (block_size,) = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()
        (blocks,) = con.execute(
            "SELECT count(DISTINCT block_id) FROM (SELECT block_id FROM "
            "pragma_storage_info('events') UNION ALL SELECT block_id FROM "
            "pragma_storage_info('trace_index')) WHERE block_id >= 0"
        ).fetchone()
    finally:
        con.close()
    return int(blocks) * int(block_size)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument(
        "--payload",
        choices=sorted(PAYLOADS),
        default="worst",
        help="worst: ten independent high-entropy attributes on every span (the headline "
        "figures); cruddur: spans shaped like the tutorial's instrumented Flask app",
    )
    ap.add_argument("--keep", action="store_true", help="keep each run's data dir (for inspection)")
    ap.add_argument("--max-rate", type=float, default=120_000, help="payload budget, spans/s")
    args = ap.parse_args()
    rng = random.Random(7)
    n = int(args.seconds * args.max_rate / SPANS) + 1
    print(f"building {n} payloads of {SPANS} spans...", flush=True)
    now = time.time_ns()
    build_payload = PAYLOADS[args.payload]
    payloads = [build_payload(rng, now) for _ in range(n)]
    wire = statistics.mean(len(p) for p in payloads[:50]) / SPANS
    if args.gzip:
        payloads = [gzip.compress(p, 6) for p in payloads]
    print(f"~{wire:.0f} B/span on the wire (uncompressed)")
    ceiling = decode_ceiling([build_payload(rng, now) for _ in range(40)])
    for label, rate in ceiling.items():
        print(f"{label}: {rate:,.0f} spans/s (one core)")
    results = [one_run(args, payloads) for _ in range(args.runs)]
    print(json.dumps(results, indent=1))
    for k in results[0]:
        print(f"median {k}: {statistics.median(r[k] for r in results):,.1f}")


if __name__ == "__main__":
    main()
