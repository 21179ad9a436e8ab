"""Compute every calculation of a plan at two levels: per group (result rows) and, with ``tb``,
per group and time bucket (series rows). See query.py for the order of passes."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from tracehive.storage.duckdb.aggregate import (
    Agg,
    Aggs,
    GroupKey,
    cells_pass,
    concurrency_pass,
    distinct_pass,
    rollup,
)
from tracehive.storage.duckdb.compile import NumExpr
from tracehive.storage.duckdb.distribution import (
    Band,
    Grid,
    HeatmapEdges,
    heatmap_rows,
    make_grid,
    zoom_margin,
)
from tracehive.storage.duckdb.percentile import Wanted, interpolate, percentile_values
from tracehive.storage.duckdb.plan import CalcPlan, Plan
from tracehive.storage.duckdb.source import Sample, Source, execute

CellKey = tuple[GroupKey, Any]
SIMPLE = ("count", "sum", "avg", "min", "max")
DIST = ("percentile", "heatmap")


@dataclass
class Evaluation:
    results: dict[GroupKey, dict[str, Any]]
    series: dict[CellKey, dict[str, Any]]
    cells: str  # the main pass's temp table (its group columns type the two-stage semi-join)


@dataclass
class _Ctx:
    con: duckdb.DuckDBPyConnection
    plan: Plan
    src: Source
    smp: Sample | None
    step: int | None
    results: dict[GroupKey, dict[str, Any]] = field(default_factory=dict)
    series: dict[CellKey, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    by_hash: dict[tuple[int, int], Any] = field(default_factory=dict)  # (level, hash) -> key


def evaluate(
    con: duckdb.DuckDBPyConnection, plan: Plan, src: Source, smp: Sample | None, tb: bool
) -> Evaluation:
    ctx = _Ctx(con, plan, src, smp, plan.step_ns if tb else None)
    aggs = Aggs()
    aggs.add(Agg("sumw"))  # every pass has a column, and a group exists where any row does
    alias: dict[int, dict[str, str]] = {c.index: _aggs_of(c, aggs) for c in plan.calcs}
    primary = plan.dist_columns[0] if plan.dist_columns else None
    grid = _grid(ctx, primary) if primary else None
    if primary and grid:
        for c in plan.calcs:
            if c.x == primary and c.kind in DIST:
                # x is null exactly where code is: the cells' plain Σw is the weight of x
                alias[c.index]["dw"] = aggs.add(Agg("sumw", None, c.pred))
    code = (lambda p: grid.code_sql(src.e(primary), p)) if primary and grid else None  # type: ignore[union-attr]
    cells = cells_pass(con, src, plan.groups, ctx.step, code, aggs)
    res_vals, ser_vals = _rollups(ctx, cells, aggs)
    ctx.results = {g: {} for g in res_vals}
    ctx.series = {k: {} for k in ser_vals}
    for c in plan.calcs:
        if c.kind in SIMPLE:
            for g, vals in res_vals.items():
                ctx.results[g][c.key] = _simple(c, vals, alias[c.index])
            for k, vals in ser_vals.items():
                ctx.series[k][c.key] = _simple(c, vals, alias[c.index])
        elif c.kind == "rate":
            _rates(ctx, c, ser_vals, alias[c.index])
    for x in plan.dist_columns:
        calcs = [c for c in plan.calcs if c.x == x and c.kind in DIST]
        if x == primary and grid is not None:
            _distribution(ctx, x, grid, cells, calcs, alias)
        else:
            _extra_distribution(ctx, x, calcs)
    _distinct(ctx)
    _concurrency(ctx)
    for target in (*ctx.results.values(), *ctx.series.values()):  # spec order of keys
        ordered = {c.key: target.get(c.key) for c in plan.calcs}
        target.clear()
        target.update(ordered)
    return Evaluation(ctx.results, ctx.series, cells)


def _rollups(ctx: _Ctx, cells: str, aggs: Aggs) -> tuple[dict[GroupKey, Any], dict[CellKey, Any]]:
    for seed in range(8):  # a new seed in the (astronomically rare) event of a hash collision
        res_vals, hashes0 = rollup(ctx.con, cells, ctx.plan.groups, aggs, seed)
        ser_vals: dict[CellKey, Any] = {}
        hashes1: dict[int, CellKey] = {}
        if ctx.step:
            by_key, by_hash = rollup(ctx.con, cells, [*ctx.plan.groups, "tb"], aggs, seed)
            ser_vals = {(k[:-1], k[-1]): v for k, v in by_key.items()}
            hashes1 = {h: (k[:-1], k[-1]) for h, k in by_hash.items()}
        if len(hashes0) == len(res_vals) and len(hashes1) == len(ser_vals):
            ctx.seed = seed
            ctx.by_hash = {(0, h): k for h, k in hashes0.items()}
            ctx.by_hash.update({(1, h): k for h, k in hashes1.items()})
            return res_vals, ser_vals
    raise RuntimeError("group hashes keep colliding")


def _aggs_of(c: CalcPlan, aggs: Aggs) -> dict[str, str]:
    base = c.kind if c.kind in SIMPLE else c.rate_base
    if base == "count":
        return {"n": aggs.add(Agg("sumw", None, c.pred))}
    if base == "sum":
        return {"s": aggs.add(Agg("sumxw", c.x, c.pred))}
    if base == "avg":
        return {"s": aggs.add(Agg("sumxw", c.x, c.pred)), "n": aggs.add(Agg("sumw", c.x, c.pred))}
    if base in ("min", "max"):
        return {"v": aggs.add(Agg(base, c.x, c.pred))}
    return {}


def _simple(c: CalcPlan, vals: dict[str, Any], a: dict[str, str]) -> Any:
    kind = c.kind if c.kind in SIMPLE else c.rate_base
    if kind == "count":
        return int(vals[a["n"]] or 0)
    num: NumExpr = c.num  # type: ignore[assignment]
    plain_int = num.is_int and num.div is None
    if kind == "sum":
        s = vals[a["s"]]
        if s is None:
            return 0 if plain_int else 0.0
        return int(s) if plain_int else float(num.user(s))  # type: ignore[arg-type]
    if kind == "avg":
        n = vals[a["n"]]
        return float(num.user(vals[a["s"]] / n)) if n else None  # type: ignore[arg-type]
    value = vals[a["v"]]
    return num.user(value) if num.div else value


def _rates(ctx: _Ctx, c: CalcPlan, ser_vals: dict[CellKey, Any], a: dict[str, str]) -> None:
    by_group: dict[GroupKey, list[tuple[Any, Any]]] = defaultdict(list)
    for (g, tb), vals in ser_vals.items():
        empty = c.rate_base == "sum" and vals[a["s"]] is None
        value = None if empty else _simple(c, vals, a)
        if value is not None:
            by_group[g].append((tb, value))
    for g, target in ctx.results.items():
        points = sorted(by_group.get(g, []))
        rates = {tb: v - prev for (_, prev), (tb, v) in itertools.pairwise(points)}
        target[c.key] = sum(rates.values()) / len(rates) if rates else None
        for tb, _ in points:
            if (g, tb) in ctx.series:
                ctx.series[(g, tb)][c.key] = rates.get(tb)


# -- histograms -------------------------------------------------------------------------------
def _num(ctx: _Ctx, x: str) -> NumExpr:
    return next(c.num for c in ctx.plan.calcs if c.x == x and c.num is not None)


def _grid(ctx: _Ctx, x: str) -> Grid | None:
    """Buckets from the sample's extremes (exact ones when the sample is the whole
    materialized source), zoomed around its percentile estimates; without a sample, from the
    exact min/max. None when the column has no value at all."""
    num = _num(ctx, x)
    smp = ctx.smp
    stats = smp.stats.get(x) if smp is not None else None
    if not stats:
        return _exact_grid(ctx, x, num, ())
    probs = smp.probs[x]  # type: ignore[union-attr]
    bands = []
    for c in ctx.plan.calcs:
        if c.kind == "percentile" and c.x == x and c.p is not None:
            margin = zoom_margin(c.p)
            i_lo, i_hi = probs.index(c.p - margin), probs.index(c.p + margin)
            bands += [(q[i_lo], q[i_hi]) for *_, q in stats if q]
    lo, hi = min(s[0] for s in stats), max(s[1] for s in stats)
    return make_grid(lo, hi, num.is_int, bands, exact=smp.exact)  # type: ignore[union-attr]


def _exact_grid(ctx: _Ctx, x: str, num: NumExpr, bands: tuple[Band, ...]) -> Grid | None:
    src = ctx.src
    xs = src.e(x)
    sql = f"SELECT min({xs}), max({xs}) FROM {src.from_} WHERE {src.where}"
    lo, hi = execute(ctx.con, sql, src.params_copy()).fetchone()  # type: ignore[misc]
    if lo is None:
        return None
    return dataclasses.replace(make_grid(lo, hi, num.is_int, [], exact=True), bands=bands)


def _dist_cells(ctx: _Ctx, x: str, grid: Grid, calcs: list[CalcPlan]) -> tuple[str, dict]:  # type: ignore[type-arg]
    aggs = Aggs()
    alias = {c.index: {"dw": aggs.add(Agg("sumw", None, c.pred))} for c in calcs}
    code = lambda p: grid.code_sql(ctx.src.e(x), p)  # noqa: E731
    return cells_pass(ctx.con, ctx.src, ctx.plan.groups, ctx.step, code, aggs), alias


def _extra_distribution(ctx: _Ctx, x: str, calcs: list[CalcPlan]) -> None:
    """A histogram column other than the first: its own cells pass."""
    grid = _grid(ctx, x)
    if grid is None:
        _fill_empty(ctx, calcs)
        return
    cells, alias = _dist_cells(ctx, x, grid, calcs)
    _distribution(ctx, x, grid, cells, calcs, alias)


def _distribution(
    ctx: _Ctx,
    x: str,
    grid: Grid,
    cells: str,
    calcs: list[CalcPlan],
    alias: dict[int, dict[str, str]],
) -> None:
    heat = {
        c.index: heatmap_rows(
            ctx.con, cells, ctx.plan.groups, bool(ctx.step), grid, alias[c.index]["dw"], ctx.seed
        )
        for c in calcs
        if c.kind == "heatmap"
    }
    extremes = [int(f(h["hb"])) for h in heat.values() if len(h["hb"]) for f in (np.min, np.max)]
    if grid.needs_redo(extremes):
        # The sample missed the extremes: redo this column's histogram on exact edges.
        exact = _exact_grid(ctx, x, _num(ctx, x), grid.bands)
        assert exact is not None
        cells, alias = _dist_cells(ctx, x, exact, calcs)
        _distribution(ctx, x, exact, cells, calcs, alias)
        return
    for c in calcs:
        if c.kind == "heatmap":
            _heatmap(ctx, c, heat[c.index], grid)
    wanted = [
        Wanted(c.index, c.p, alias[c.index]["dw"], c.pred)
        for c in calcs
        if c.kind == "percentile" and c.p is not None
    ]
    if wanted:
        cell_tb = {h: key[1] for (level, h), key in ctx.by_hash.items() if level == 1}
        values = percentile_values(
            ctx.con, ctx.src, cells, ctx.plan.groups, ctx.step, grid, x, wanted, ctx.seed, cell_tb
        )
        by_index = {c.index: c for c in calcs}
        for (ci, level, h), (v_lo, v_hi, k, n) in values.items():
            c = by_index[ci]
            key = ctx.by_hash.get((level, h))
            target = ctx.results.get(key) if level == 0 else ctx.series.get(key)  # type: ignore[arg-type]
            if target is not None:
                target[c.key] = interpolate(v_lo, v_hi, k, n, c.p, c.num)  # type: ignore[arg-type]
    _fill_empty(ctx, calcs)


def _heatmap(ctx: _Ctx, c: CalcPlan, cols: dict[str, np.ndarray], grid: Grid) -> None:
    """Bucket weights summed per group (dense rows) and per (group, time bucket) (sparse),
    on edges shared by every group and time bucket."""
    if not len(cols["hb"]):
        return
    hb = cols["hb"].astype(np.int64)
    edges = HeatmapEdges.of(int(hb.min()), int(hb.max()), grid, c.num)  # type: ignore[arg-type]
    idx = edges.index(hb)
    n = cols["n"].astype(np.int64)
    levels = [(0, cols["h0"], ctx.results)] + ([(1, cols["h1"], ctx.series)] if ctx.step else [])
    for level, hashes, targets in levels:
        cells, inverse = np.unique(hashes, return_inverse=True)
        counts = np.zeros((len(cells), edges.count), dtype=np.int64)
        np.add.at(counts, (inverse, idx), n)
        for h, row in zip(cells.tolist(), counts, strict=True):
            target = targets.get(ctx.by_hash.get((level, h)))  # type: ignore[arg-type]
            if target is None:
                continue
            if level == 0:
                target[c.key] = edges.render_dense(row)
            else:
                (nz,) = np.nonzero(row)
                target[c.key] = edges.render_sparse(nz.tolist(), row[nz].tolist())


def _fill_empty(ctx: _Ctx, calcs: list[CalcPlan]) -> None:
    for c in calcs:
        empty = {"buckets": []} if c.kind == "heatmap" else None
        for target in (*ctx.results.values(), *ctx.series.values()):
            target.setdefault(c.key, empty)


# -- non-decomposable -------------------------------------------------------------------------
def _distinct(ctx: _Ctx) -> None:
    calcs = [c for c in ctx.plan.calcs if c.kind == "distinct"]
    if not calcs:
        return
    items = [(str(c.y), c.pred) for c in calcs]
    res, ser = distinct_pass(ctx.con, ctx.src, ctx.plan.groups, ctx.step, items)
    for i, c in enumerate(calcs):
        for g, target in ctx.results.items():
            target[c.key] = int(res[g][i]) if g in res else 0
        for k, target in ctx.series.items():
            target[c.key] = int(ser[k][i]) if k in ser else 0


def _concurrency(ctx: _Ctx) -> None:
    by_pred: dict[str | None, list[CalcPlan]] = defaultdict(list)
    for c in ctx.plan.calcs:
        if c.kind == "concurrency":
            by_pred[c.pred].append(c)
    end_ns = ctx.plan.end_s * 1_000_000_000
    for pred, calcs in by_pred.items():
        res, ser = concurrency_pass(ctx.con, ctx.src, ctx.plan.groups, ctx.step, end_ns, pred)
        for c in calcs:
            for g, target in ctx.results.items():
                target[c.key] = int(res[g][0] or 0) if g in res else 0
            for k, target in ctx.series.items():
                target[c.key] = int(ser[k][0] or 0) if k in ser else 0
