"""Query latency on synthetic stores of 1M and 10M spans (built once under /tmp, never the repo).

    .venv/bin/python bench/query_latency.py [--rows 1000000,10000000] [--runs 5] [--dir DIR]

Rows: 24 h of spans in time order (as ingest writes them), lognormal durations (median ~10 ms),
5 services, 20 span names, traces of 8 spans, and 10 attribute columns including a
high-cardinality ``user.id`` (100k users). Prints the median of ``--runs`` runs (after one
warm-up) per query, wall and process CPU (DuckDB runs 2 threads: CPU/2 is what a quiet 2-core
machine would show if the wall figure is inflated by other load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from tracehive.model.batch import EventBatch
from tracehive.query.spec import parse_spec
from tracehive.storage.api import Scope
from tracehive.storage.arrow import to_arrow
from tracehive.storage.duckdb.backend import DuckDBStore
from tracehive.storage.duckdb.query import run_query
from tracehive.storage.duckdb.trace_index import rebuild_sql

T0_S = 1_700_000_000
DAY = 86_400
ATTRS = {  # key -> (model type, SQL producing the value from row number i)
    "user.id": ("s", "'user-' || (hash(i * 31) % 100000)"),
    "http.method": (
        "s",
        "(['GET','GET','GET','POST','PUT','DELETE'])[1 + CAST(hash(i * 19) % 6 AS INTEGER)]",
    ),
    "http.route": ("s", "'/api/v1/r' || (hash(i * 17) % 40)"),
    "http.status_code": (
        "i",
        "(CASE WHEN hash(i * 23) % 100 < 3 THEN 500 WHEN hash(i * 23) % "
        "100 < 8 THEN 404 ELSE 200 END)",
    ),
    "db.rows": ("i", "(hash(i * 29) % 1000)"),
    "cache.hit": ("b", "(hash(i * 37) % 10 < 7)"),
    "payload.bytes": ("f", "((hash(i * 41) % 100000) / 7.0)"),
    "cloud.region": (
        "s",
        "(['us-east-1','eu-west-1','ap-south-1'])[1 + CAST(hash(i * 43) % 3 AS INTEGER)]",
    ),
    "host.name": ("s", "'host-' || (hash(i * 47) % 200)"),
    "app.version": ("s", "'v1.' || (hash(i * 53) % 12)"),
}
SAMPLE_VALUE = {"s": "x", "i": 1, "f": 1.5, "b": True}


def build(path: Path, rows: int) -> DuckDBStore:
    if path.exists():
        store = DuckDBStore(path)
        (n,) = store.cursor().execute("SELECT count(*) FROM events").fetchone()
        if n == rows:
            ensure_trace_index(store)
            return store
        store.close()
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore(path)
    seed = EventBatch()  # registers the attribute columns the way ingest does
    seed.append(
        dataset="bench",
        ts_ns=T0_S * 10**9,
        signal="span",
        attributes={k: SAMPLE_VALUE[t] for k, (t, _) in ATTRS.items()},
    )
    store.write(to_arrow(seed, 1, [1]), [], 1)
    cur = store.cursor()
    cur.execute("DELETE FROM events")
    physical = {k: store.resolve(k)[0].physical for k in ATTRS}  # type: ignore[index]
    u1 = "((hash(i) % 1000003) + 1) / 1000004.0"
    u2 = "((hash(i * 7 + 1) % 1000003) + 1) / 1000004.0"
    t0 = time.perf_counter()
    cur.execute(f"""
        INSERT INTO events (env_id, dataset_id, seq, ts_ns, dur_ns, trace_id, span_id, parent_id,
                            name, service, kind, status_code, error, signal, library_name,
                            library_version, samplerate, {", ".join(physical.values())})
        SELECT 1, 1 + (i // 8) % 5, i // 65536,
               {T0_S * 10**9} + i * {DAY * 10**9 // rows},
               CAST(exp(16.1 + 1.0 * sqrt(-2 * ln({u1})) * cos(2 * pi() * {u2})) AS BIGINT),
               ('0x' || md5(CAST(i // 8 AS VARCHAR)))::UHUGEINT, hash(i),
               CASE WHEN i % 8 = 0 THEN NULL ELSE hash(i - 1 - (i % 8 > 1)::INT) END,
               'op-' || (hash(i * 7) % 20), 'svc-' || ((i // 8) % 5), 'server',
               CASE WHEN hash(i * 11) % 100 < 2 THEN 2 ELSE 0 END, hash(i * 11) % 100 < 2,
               'span', 'opentelemetry.instrumentation.flask', '0.66b1', 1,
               {", ".join(sql for _, sql in ATTRS.values())}
        FROM range({rows}) t(i)
    """)
    cur.execute("CHECKPOINT")
    print(f"built {rows:,} rows in {time.perf_counter() - t0:.1f} s at {path}", flush=True)
    ensure_trace_index(store)
    return store


def ensure_trace_index(store: DuckDBStore) -> None:
    """The rows above are inserted with SQL, not ``store.write``: index their traces the way
    a schema migration does (``trace_index.rebuild_sql``)."""
    cur = store.cursor()
    if cur.execute("SELECT count(*) FROM trace_index").fetchone()[0]:
        return
    t0 = time.perf_counter()
    for sql in rebuild_sql():
        cur.execute(sql)
    store.checkpoint()
    print(f"filled the trace index in {time.perf_counter() - t0:.1f} s", flush=True)


QUERIES = {
    "HEATMAP+P90(duration_ms) by service, series": (
        {
            "calculations": [
                {"op": "HEATMAP", "column": "duration_ms"},
                {"op": "P90", "column": "duration_ms"},
            ],
            "breakdowns": ["service.name"],
        },
        True,
    ),
    "HEATMAP+P90(duration_ms) by service, no series": (
        {
            "calculations": [
                {"op": "HEATMAP", "column": "duration_ms"},
                {"op": "P90", "column": "duration_ms"},
            ],
            "breakdowns": ["service.name"],
        },
        False,
    ),
    "COUNT where user.id = user-77": (
        {
            "calculations": [{"op": "COUNT"}],
            "filters": [{"column": "user.id", "op": "=", "value": "user-77"}],
        },
        True,
    ),
    "COUNT+P90 by service where user.id = user-77": (
        {
            "calculations": [{"op": "COUNT"}, {"op": "P90", "column": "duration_ms"}],
            "breakdowns": ["service.name"],
            "filters": [{"column": "user.id", "op": "=", "value": "user-77"}],
        },
        True,
    ),
    "COUNT by service, series": ({"breakdowns": ["service.name"]}, True),
    "P50+P99(duration_ms) by name, series": (
        {
            "calculations": [
                {"op": "P50", "column": "duration_ms"},
                {"op": "P99", "column": "duration_ms"},
            ],
            "breakdowns": ["name"],
        },
        True,
    ),
}


def timed(fn, runs: int) -> tuple[float, float]:
    fn()  # warm-up
    walls, cpus = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def bench(store: DuckDBStore, rows: int, runs: int) -> None:
    window = {"start_time": T0_S, "end_time": T0_S + DAY}
    scope = Scope(1, None)  # the environment (``__all__``), resolved as the API does
    print(f"\n{rows:,} rows (median of {runs}; load average {os.getloadavg()[0]:.2f})")
    print(f"  {'query':48s} {'wall ms':>9s} {'cpu ms':>9s}")
    for label, (spec, series) in QUERIES.items():
        parsed = parse_spec({**window, **spec})

        def q(parsed=parsed, series=series):
            run_query(store.cursor(), scope, parsed, store.resolver(scope), T0_S + DAY, series)

        wall, cpu = timed(q, runs)
        print(f"  {label:48s} {wall:9.1f} {cpu:9.1f}", flush=True)
    cur = store.cursor()
    (tid,) = cur.execute(f"SELECT trace_id FROM events LIMIT 1 OFFSET {rows // 2}").fetchone()
    naive = timed(
        lambda: cur.execute(
            "SELECT * FROM events WHERE env_id = 1 AND trace_id = CAST(? AS UHUGEINT)", [tid]
        ).fetchall(),
        runs,
    )
    print(f"  {'trace by id (naive full scan)':48s} {naive[0]:9.1f} {naive[1]:9.1f}")
    indexed = timed(lambda: store.get_trace(1, int(tid).to_bytes(16, "big")), runs)
    print(f"  {'trace by id (store.get_trace)':48s} {indexed[0]:9.1f} {indexed[1]:9.1f}")


def run_stores(bench_fn) -> int:
    """Parse ``--rows/--runs/--dir``, then build (or reuse) each store and run ``bench_fn(store,
    rows, runs)`` on it (``bench/trace_search.py`` uses the same stores)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1000000,10000000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/tracehive-bench")
    args = ap.parse_args()
    if Path(args.dir).resolve().is_relative_to(Path(__file__).resolve().parent.parent):
        print("--dir must be outside the repository", file=sys.stderr)
        return 2
    for rows in (int(r) for r in args.rows.split(",")):
        store = build(Path(args.dir) / f"{rows}" / "store.duckdb", rows)
        try:
            bench_fn(store, rows, args.runs)
        finally:
            store.close()
    return 0


def main() -> int:
    return run_stores(bench)


if __name__ == "__main__":
    sys.exit(main())
