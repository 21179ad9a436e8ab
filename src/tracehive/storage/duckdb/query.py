"""Run a Honeycomb query spec on DuckDB: plan, pick a source, run the passes, shape the output.

Passes (at 10M rows, 2 cores; see bench/query_latency.py):

* optional *materialize*: with filters and a multi-pass plan, the matching rows' projection goes
  to a temp table (≤ 262k rows, else the scan stops early and the query runs direct);
* optional *sample* (2% of vectors): grids for histograms, zoom for percentiles, cardinality;
* the *main pass*: cells per (breakdowns, time bucket, histogram code) with every decomposable
  aggregate; rolled up to result rows and series rows, heatmaps (distribution.py);
* percentiles: one narrow pass reading only the codes holding the wanted ranks (percentile.py);
  one more main pass per extra histogram column; COUNT_DISTINCT and CONCURRENCY one statement
  each.

High-cardinality breakdowns with series (the sample sees > ``HIGH_CARD_GROUPS`` groups) run in
two stages: result rows for every group, then series only for the groups kept by havings,
orders and limit. Everything runs in one transaction, so all passes see the same snapshot.

Values: COUNT, SUM, AVG, percentiles and HEATMAP weigh rows by samplerate (not in
``usage_mode``); MIN, MAX, COUNT_DISTINCT and CONCURRENCY do not. RATE_X (Honeycomb's
definition): per time bucket, X of the column; the rate at a bucket is the difference from the
previous bucket with values (per bucket, not per second); the result row's value is the mean of
its buckets' rates.
"""

from __future__ import annotations

from typing import Any

import duckdb

from tracehive.query.ordering import finish
from tracehive.query.spec import QuerySpec
from tracehive.storage.api import QueryData, Scope
from tracehive.storage.duckdb.aggregate import GroupKey
from tracehive.storage.duckdb.compile import Params, Resolver
from tracehive.storage.duckdb.distribution import zoom_margin
from tracehive.storage.duckdb.evaluate import Evaluation, evaluate
from tracehive.storage.duckdb.plan import Plan, build_plan
from tracehive.storage.duckdb.source import (
    Sample,
    Source,
    events_source,
    execute,
    sample,
    temp_name,
    try_materialize,
)

HIGH_CARD_GROUPS = 1000


def run_query(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    spec: QuerySpec,
    resolve: Resolver,
    now_s: int,
    include_series: bool = True,
    limit: int | None = None,
) -> QueryData:
    """``limit`` overrides the spec's (query results API); default min(spec.limit or 1000,
    1000 with series / 10000 without)."""
    plan = build_plan(spec, resolve, scope, now_s, include_series, limit)
    own_txn = _begin(con)
    try:
        return _run(con, plan)
    finally:
        if own_txn:
            con.execute("ROLLBACK")  # read-only; also drops the temp tables


def _begin(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.execute("BEGIN TRANSACTION")
    except duckdb.TransactionException:
        return False  # the caller's transaction; temp tables live on until it ends
    return True


def _run(con: duckdb.DuckDBPyConnection, plan: Plan) -> QueryData:
    if plan.exprs.sql["w"] != "1" and _unit_weights(con, plan):
        plan.exprs.sql["w"] = "1"  # every matching row has samplerate 1: counts, not sums
    src = events_source(plan.where, plan.params, plan.exprs)
    if plan.has_filters and plan.passes >= 2:
        src = try_materialize(con, src) or src
    smp = _sample(con, plan, src)
    out = QueryData(start_time=plan.start_s, end_time=plan.end_s, granularity=plan.step_s)
    two_stage = (
        plan.include_series and plan.groups and smp is not None and smp.groups > HIGH_CARD_GROUPS
    )
    # RATE_* need time buckets even for result rows; otherwise stage one of two skips them
    first = evaluate(con, plan, src, smp, tb=plan.has_rates or (plan.need_tb and not two_stage))
    rows = finish(plan.spec, _result_rows(plan, first), plan.limit)
    out.results = rows
    if not plan.include_series:
        return out
    keep = [tuple(r[b] for b in plan.spec.breakdowns) for r in rows]
    series = first
    if two_stage:
        if not keep:
            return out
        restriction = _top_groups(con, plan, src, first, keep)
        series = evaluate(con, plan, src.restricted(restriction), smp, tb=True)
    out.series = _series_rows(plan, series, keep)
    return out


def _unit_weights(con: duckdb.DuckDBPyConnection, plan: Plan) -> bool:
    """True when no row in the query's scope (environment, datasets, window; the filters are
    left out on purpose) has a samplerate other than 1. Weighted sums then become plain counts
    (~25% of the main pass's time at 10M rows). Cheap either way: the samplerate zone maps
    (min = max = 1) rule out every row group without a sampled row before anything is read,
    and the first row group that has one ends the probe (with the filters, a sampled row that
    does not match them would keep it scanning)."""
    sql = (
        f"SELECT 1 FROM events WHERE {plan.scope_where} "
        "AND (samplerate <> 1 OR samplerate IS NULL) LIMIT 1"
    )
    return execute(con, sql, plan.params).fetchone() is None


def _sample(con: duckdb.DuckDBPyConnection, plan: Plan, src: Source) -> Sample | None:
    if not (plan.dist_columns or (plan.groups and plan.include_series and not src.materialized)):
        return None
    probs: dict[str, list[float]] = {x: [] for x in plan.dist_columns}
    for c in plan.calcs:
        if c.kind == "percentile" and c.x is not None and c.p is not None:
            probs[c.x] += [c.p - zoom_margin(c.p), c.p + zoom_margin(c.p)]
    return sample(con, src, plan.groups, {x: sorted(set(p)) for x, p in probs.items()})


def _result_rows(plan: Plan, ev: Evaluation) -> list[dict[str, Any]]:
    rows = []
    for key, values in ev.results.items():
        row: dict[str, Any] = dict(zip(plan.spec.breakdowns, key, strict=True))
        row.update(values)
        rows.append(row)
    return rows


def _series_rows(plan: Plan, ev: Evaluation, keep: list[GroupKey]) -> list[dict[str, Any]]:
    rank = {k: i for i, k in enumerate(keep)}
    cells = sorted(((tb, rank[g], g) for g, tb in ev.series if g in rank))
    out = []
    for tb, _, g in cells:
        row: dict[str, Any] = {"time": tb * plan.step_s}
        row.update(zip(plan.spec.breakdowns, g, strict=True))
        row.update(ev.series[(g, tb)])
        out.append(row)
    return out


def _top_groups(
    con: duckdb.DuckDBPyConnection, plan: Plan, src: Source, ev: Evaluation, keep: list[GroupKey]
) -> str:
    """A condition keeping only the rows of ``keep`` groups (a semi-join on a temp table typed
    like the cells' group columns; IS NOT DISTINCT FROM so a null group matches)."""
    name = temp_name("top")
    cols = ", ".join(plan.groups)
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT {cols} FROM {ev.cells} WHERE FALSE")
    params = Params()
    values = ", ".join("(" + ", ".join(params(v) for v in key) + ")" for key in keep)
    execute(con, f"INSERT INTO {name} VALUES {values}", params)
    match = " AND ".join(f"t.{g} IS NOT DISTINCT FROM ({src.e(g)})" for g in plan.groups)
    return f"EXISTS (SELECT 1 FROM {name} t WHERE {match})"
