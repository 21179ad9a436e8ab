"""Trace search latency on the synthetic stores of ``bench/query_latency.py`` (1M and 10M spans).

    .venv/bin/python bench/trace_search.py [--rows 1000000,10000000] [--runs 5] [--dir DIR]

Reuses (or builds) the stores of ``query_latency.py`` under ``--dir`` and, when their trace index
is empty (that bench writes rows with SQL, not through ``store.write``), fills it the way
``store.write`` would: one ``(trace id prefix, seq)`` row per trace and write batch.
Every search covers the whole 24 h; prints the median of ``--runs`` runs (after one warm-up), wall
and process CPU (DuckDB runs 2 threads), and how many traces came back.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from query_latency import DAY, T0_S, run_stores, timed

from tracehive.query.spec import parse_spec
from tracehive.storage.api import Scope
from tracehive.storage.duckdb.backend import DuckDBStore

USER = [{"column": "user.id", "op": "=", "value": "user-77"}]
STATUS_500 = [{"column": "http.status_code", "op": "=", "value": 500}]
POST = [{"column": "http.method", "op": "=", "value": "POST"}]


def slow(ms: int) -> list[dict[str, Any]]:
    return [{"column": "duration_ms", "op": ">", "value": ms}]


#: label -> (span filters, trace filters, limit). Trace durations at 10M: p50 81 ms, p90 128 ms,
#: p99 235 ms, p99.9 414 ms (at 1M the spans of a trace are 10x further apart: p50 615 ms).
SEARCHES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], int]] = {
    "all traces, limit 20": ([], [], 20),
    "all traces, limit 100": ([], [], 100),
    "http.status_code = 500, limit 100": (STATUS_500, [], 100),
    "user.id = user-77 (~100 spans), limit 20": (USER, [], 20),
    "duration_ms > 150 (~5%), limit 20": ([], slow(150), 20),
    "duration_ms > 150 (~5%), limit 100": ([], slow(150), 100),
    "duration_ms > 250 (~1%), limit 100": ([], slow(250), 100),
    "http.method = POST + duration_ms > 150, limit 50": (POST, slow(150), 50),
    "status 500 + root.service.name = svc-2, limit 20": (
        STATUS_500,
        [{"column": "root.service.name", "op": "=", "value": "svc-2"}],
        20,
    ),
    "error = true (trace), limit 100": ([], [{"column": "error", "op": "=", "value": True}], 100),
}


def bench(store: DuckDBStore, rows: int, runs: int) -> None:
    window = {"start_time": T0_S, "end_time": T0_S + DAY}
    print(f"\n{rows:,} rows (median of {runs}; load average {os.getloadavg()[0]:.2f})")
    print(f"  {'search (last 24 h)':52s} {'wall ms':>9s} {'cpu ms':>9s} {'traces':>7s}")
    for label, (filters, trace_filters, limit) in SEARCHES.items():
        spec = parse_spec({**window, "filters": filters})

        def q(spec=spec, trace_filters=trace_filters, limit=limit):
            return store.search_traces(Scope(1, None), spec, trace_filters, T0_S + DAY, limit)

        found = q()
        wall, cpu = timed(q, runs)
        print(f"  {label:52s} {wall:9.1f} {cpu:9.1f} {len(found):7d}", flush=True)


def main() -> int:
    return run_stores(bench)


if __name__ == "__main__":
    sys.exit(main())
