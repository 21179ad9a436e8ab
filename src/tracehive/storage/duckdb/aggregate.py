"""The grouped passes: decomposable aggregates per cell, COUNT_DISTINCT, CONCURRENCY.

The main pass groups by (breakdowns, time bucket, histogram code) into a temp table of *cells*;
every decomposable aggregate (weighted count, weighted sum, min, max) rolls up exactly to the
per-group and per-time-bucket levels, so one scan serves the result rows and the series.
COUNT_DISTINCT and CONCURRENCY do not roll up and get their own statement (GROUPING SETS for
both levels at once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from tracehive.storage.duckdb.compile import Params
from tracehive.storage.duckdb.source import Source, execute, hash_sql, temp_name

GroupKey = tuple[Any, ...]


@dataclass(frozen=True)
class Agg:
    """A decomposable aggregate: ``sumw`` Σw, ``sumxw`` Σx·w, ``min``/``max`` of x; over rows
    passing ``pred`` (and, for ``sumw`` with an ``x``, where x is not null)."""

    fn: str
    x: str | None = None
    pred: str | None = None

    def render(self, src: Source) -> str:
        w = src.e("w")
        x = src.e(self.x) if self.x else ""
        if w == "1":  # unit weights: counts and plain sums, samplerate is not read
            sumw, sumxw = f"count({x or '*'})", f"sum({x})"
        else:
            # Σw over non-null x; a CASE costs about half what FILTER does in DuckDB 2.0
            sumw = f"sum(CASE WHEN {x} IS NOT NULL THEN {w} END)" if x else f"sum({w})"
            sumxw = f"sum({x} * {w})"
        call = {"sumw": sumw, "sumxw": sumxw, "min": f"min({x})", "max": f"max({x})"}[self.fn]
        if self.pred:
            call += f" FILTER (WHERE {src.e(self.pred)})"
        # weighted counts as BIGINT: DuckDB's sum of integers is HUGEINT, slow downstream
        return f"CAST({call} AS BIGINT)" if self.fn == "sumw" else call

    @property
    def rollup(self) -> str:
        return "sum" if self.fn in ("sumw", "sumxw") else self.fn


class Aggs:
    """Aggregates of one pass, deduplicated; ``add`` returns the cell column alias."""

    def __init__(self) -> None:
        self.aliases: dict[Agg, str] = {}

    def add(self, agg: Agg) -> str:
        if agg not in self.aliases:
            self.aliases[agg] = f"v{len(self.aliases)}"
        return self.aliases[agg]


def cells_pass(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    groups: list[str],
    tb_step_ns: int | None,
    code: Callable[[Params], str] | None,
    aggs: Aggs,
) -> str:
    """The main pass into a temp table: one row per (groups, tb, code) with every aggregate."""
    params = src.params_copy()
    select = [f"{src.e(g)} AS {g}" for g in groups]
    if tb_step_ns:
        select.append(f"{src.e('ts')} // {params(tb_step_ns)} AS tb")
    if code is not None:
        select.append(f"{code(params)} AS code")
    select += [f"{agg.render(src)} AS {alias}" for agg, alias in aggs.aliases.items()]
    keys = groups + (["tb"] if tb_step_ns else []) + (["code"] if code is not None else [])
    # no keys: an ungrouped aggregate, which would give a row even when nothing matched
    group_by = f" GROUP BY {', '.join(keys)}" if keys else " HAVING count(*) > 0"
    name = temp_name("cells")
    execute(
        con,
        f"CREATE TEMP TABLE {name} AS SELECT {', '.join(select)} FROM {src.from_} "
        f"WHERE {src.where}{group_by}",
        params,
    )
    return name


def rollup(
    con: duckdb.DuckDBPyConnection, cells: str, keys: list[str], aggs: Aggs, seed: int
) -> tuple[dict[GroupKey, dict[str, Any]], dict[int, GroupKey]]:
    """Cells summed (min/maxed) to ``keys``: key tuple -> alias -> value, and the keys' hashes
    (``source.hash_sql``) -> key tuple."""
    params = Params()
    cols = [
        f"CAST({agg.rollup}({alias}) AS BIGINT) AS {alias}"
        if agg.fn == "sumw"
        else f"{agg.rollup}({alias}) AS {alias}"
        for agg, alias in aggs.aliases.items()
    ]
    group_by = f" GROUP BY {', '.join(keys)}" if keys else " HAVING count(*) > 0"
    select = [*keys, hash_sql(keys, params, seed), *cols]
    rows = execute(con, f"SELECT {', '.join(select)} FROM {cells}{group_by}", params).fetchall()
    names = list(aggs.aliases.values())
    n = len(keys)
    values = {tuple(r[:n]): dict(zip(names, r[n + 1 :], strict=True)) for r in rows}
    return values, {r[n]: tuple(r[:n]) for r in rows}


def _levels_sql(groups: list[str], tb: bool) -> str:
    if not tb:
        return f" GROUP BY {', '.join(groups)}" if groups else ""
    with_tb = ", ".join([*groups, "tb"])
    return f" GROUP BY GROUPING SETS (({with_tb}), ({', '.join(groups)}))"


def _split_levels(
    rows: list[tuple[Any, ...]], n_groups: int, tb: bool, n_values: int
) -> tuple[dict[GroupKey, list[Any]], dict[tuple[GroupKey, Any], list[Any]]]:
    results: dict[GroupKey, list[Any]] = {}
    series: dict[tuple[GroupKey, Any], list[Any]] = {}
    for r in rows:
        key = tuple(r[:n_groups])
        values = list(r[len(r) - n_values :])
        if tb and r[-n_values - 1] == 0:  # GROUPING(tb) = 0: a per-bucket row
            series[(key, r[n_groups])] = values
        else:
            results[key] = values
    return results, series


def distinct_pass(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    groups: list[str],
    tb_step_ns: int | None,
    items: list[tuple[str, str | None]],
) -> tuple[dict[GroupKey, list[Any]], dict[tuple[GroupKey, Any], list[Any]]]:
    """Exact (unweighted) COUNT_DISTINCT of each (value column, predicate) per group and per
    (group, time bucket)."""
    params = src.params_copy()
    select = [f"{src.e(g)} AS {g}" for g in groups]
    if tb_step_ns:
        select += [f"{src.e('ts')} // {params(tb_step_ns)} AS tb", "GROUPING(tb)"]
    for y, pred in items:
        where = f" FILTER (WHERE {src.e(pred)})" if pred else ""
        select.append(f"count(DISTINCT {src.e(y)}){where}")
    rows = execute(
        con,
        f"SELECT {', '.join(select)} FROM {src.from_} WHERE {src.where}"
        f"{_levels_sql(groups, bool(tb_step_ns))}",
        params,
    ).fetchall()
    return _split_levels(rows, len(groups), bool(tb_step_ns), len(items))


def concurrency_pass(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    groups: list[str],
    tb_step_ns: int | None,
    end_ns: int,
    pred: str | None,
) -> tuple[dict[GroupKey, list[Any]], dict[tuple[GroupKey, Any], list[Any]]]:
    """CONCURRENCY: the most spans (rows with a duration, unweighted) in progress at any instant,
    per group and per (group, time bucket). Each span is +1 at its start and -1 at its end (ends
    first on ties: back-to-back spans do not overlap); a bucket's maximum includes the level
    carried in from before its first event."""
    params = src.params_copy()
    g_cols = "".join(f"{src.e(g)} AS {g}, " for g in groups)
    ts, dur = src.e("ts"), src.e("dur")
    cond = f"{src.where} AND {dur} IS NOT NULL" + (f" AND {src.e(pred)}" if pred else "")
    end = params(end_ns)
    events = (
        f"SELECT {g_cols}{ts} AS t, 1 AS d FROM {src.from_} WHERE {cond} UNION ALL "
        f"SELECT {g_cols}{ts} + {dur} AS t, -1 AS d FROM {src.from_} "
        f"WHERE {cond} AND {ts} + {dur} < {end}"
    )
    part = f"PARTITION BY {', '.join(groups)} " if groups else ""
    select = list(groups)
    if tb_step_ns:
        select += [f"t // {params(tb_step_ns)} AS tb", "GROUPING(tb)"]
    select.append("max(greatest(level, level - d))")
    sql = (
        f"WITH ev AS ({events}), lv AS (SELECT *, sum(d) OVER ({part}ORDER BY t, d "
        f"ROWS UNBOUNDED PRECEDING) AS level FROM ev) "
        f"SELECT {', '.join(select)} FROM lv{_levels_sql(groups, bool(tb_step_ns))}"
    )
    rows = execute(con, sql, params).fetchall()
    return _split_levels(rows, len(groups), bool(tb_step_ns), 1)
