"""Exact weighted percentiles: locate the ranks in the cells, then read only those codes' rows.

Definition: a row with samplerate ``w`` stands for ``w`` identical events; for the N = Σw values
sorted ascending, P(p) is numpy's default ("linear") percentile: h = (N-1)·p, k = ⌊h⌋, the value
at rank k plus (h-k) times the step to rank k+1 (numpy's ``_lerp``, exact at both ends). With
every samplerate 1 this is ``numpy.percentile(values, 100·p)`` and DuckDB's ``quantile_cont``.

Cumulative sums run in numpy on columns fetched with ``fetchnumpy``: DuckDB's window operator
costs 30-60 ms on the ~50k cells of a per-minute query, numpy ~2 ms. Cells and candidate rows are
keyed by ``hash(group columns, [time bucket], seed)``; the caller checks the hashes are distinct
(and changes the seed if not), so a hash stands for its group exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from tracehive.storage.duckdb.compile import NumExpr, Params
from tracehive.storage.duckdb.distribution import Grid, merge_ranges
from tracehive.storage.duckdb.source import Source, execute, hash_sql, temp_name

MAX_PREFILTER_RANGES = 16
WIDE_CODE_ROWS = 100_000  # a code with more rows than this is read per time bucket
Key = tuple[int, int, int]  # (calculation index, level 0 group / 1 group+bucket, cell hash)


@dataclass(frozen=True)
class Wanted:
    """One percentile: calculation index, quantile, cell weight column, calculation predicate."""

    calc: int
    p: float
    weight: str
    pred: str | None


def percentile_values(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    cells: str,
    groups: list[str],
    tb_step_ns: int | None,
    grid: Grid,
    x: str,
    wanted: list[Wanted],
    seed: int,
    cell_tb: dict[int, int],
) -> dict[Key, tuple[Any, Any, int, int]]:
    """(calc, level, cell hash) -> (value at rank k, value at rank k+1 or None, k, N).
    ``cell_tb``: time bucket of each level-1 cell hash (to read a wide code of one bucket)."""
    targets: list[tuple[int, ...]] = []  # (calc, level, hash, code, rank in code, rank in cell)
    ranks: dict[Key, tuple[int, int]] = {}
    levels = [(0, groups)] + ([(1, [*groups, "tb"])] if tb_step_ns else [])
    code_rows: dict[int, int] = {}
    for level, keys in levels:
        weights = sorted({w.weight for w in wanted})
        cols = _level_cells(con, cells, groups, keys, weights, seed)
        if level == 0 and len(cols["code"]):  # rows per code over all groups: the read cost
            codes, inverse = np.unique(cols["code"], return_inverse=True)
            sums = np.bincount(inverse, weights=cols[weights[0]].astype(np.float64))
            code_rows = dict(zip(codes.tolist(), sums.tolist(), strict=True))
        for want in wanted:
            _locate(cols, want, level, targets, ranks)
    if not targets:
        return {}
    plan = _ReadPlan(grid, tb_step_ns, code_rows, cell_tb)
    found = _refine(con, src, groups, plan, x, wanted, targets, seed)
    out: dict[Key, tuple[Any, Any, int, int]] = {}
    for key, (k, total) in ranks.items():
        out[key] = (found.get((*key, k)), found.get((*key, k + 1)), k, total)
    return out


def _level_cells(
    con: duckdb.DuckDBPyConnection,
    cells: str,
    groups: list[str],
    keys: list[str],
    weights: list[str],
    seed: int,
) -> dict[str, np.ndarray]:
    params = Params()
    sums = ", ".join(f"CAST(COALESCE(sum({w}), 0) AS BIGINT) AS {w}" for w in weights)
    group_by = ", ".join([*keys, "code"])
    sql = (
        f"SELECT {hash_sql(keys, params, seed)} AS h, code, {sums} FROM {cells} "
        f"WHERE code IS NOT NULL GROUP BY {group_by} ORDER BY h, code"
    )
    return execute(con, sql, params).fetchnumpy()


def _locate(
    cols: dict[str, np.ndarray],
    want: Wanted,
    level: int,
    targets: list[tuple[int, ...]],
    ranks: dict[Key, tuple[int, int]],
) -> None:
    """Per cell, the code rows holding ranks k and k+1: one global cumulative sum over the
    cells sorted by (hash, code), and a binary search per cell."""
    h, code = cols["h"], cols["code"]
    n = np.asarray(cols[want.weight], dtype=np.int64)
    if len(h) == 0:
        return
    starts = np.flatnonzero(np.concatenate(([True], h[1:] != h[:-1])))
    totals = np.add.reduceat(n, starts)
    cum = np.cumsum(n)
    base = cum[starts] - n[starts]
    keep = totals > 0
    cell, totals, base = h[starts[keep]], totals[keep], base[keep]
    k = np.floor((totals - 1).astype(np.float64) * want.p).astype(np.int64)
    for hh, kk, tt in zip(cell.tolist(), k.tolist(), totals.tolist(), strict=True):
        ranks[(want.calc, level, hh)] = (kk, tt)
    for offset in (0, 1):
        rank = k + offset
        ok = rank < totals
        pos = np.searchsorted(cum, base[ok] + rank[ok], side="right")
        local = base[ok] + rank[ok] - (cum[pos] - n[pos])
        for row in zip(
            cell[ok].tolist(), code[pos].tolist(), local.tolist(), rank[ok].tolist(), strict=True
        ):
            targets.append((want.calc, level, *row))


@dataclass
class _ReadPlan:
    grid: Grid
    tb_step_ns: int | None
    code_rows: dict[int, float]
    cell_tb: dict[int, int]


def _refine(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    groups: list[str],
    plan: _ReadPlan,
    x: str,
    wanted: list[Wanted],
    targets: list[tuple[int, ...]],
    seed: int,
) -> dict[tuple[int, int, int, int], Any]:
    """Pass 2: rows of the target codes, prefiltered on value (and for a wide code of one
    time bucket, time) ranges, joined to the targets; sorted by value per target in numpy,
    the exact rank read off the cumulative weights."""
    grid, tb_step_ns = plan.grid, plan.tb_step_ns
    ci, lvl, hs, codes, local, rank = (list(c) for c in zip(*targets, strict=True))
    table = pa.table(
        {
            "tid": pa.array(range(len(targets)), pa.int64()),
            "lvl": pa.array(lvl, pa.int8()),
            "h": pa.array(hs, pa.uint64()),
            "code": pa.array(codes, pa.int64()),
            "ci": pa.array(ci, pa.int32()),
        }
    )
    name = temp_name("tg")
    params = src.params_copy()
    xs = src.e(x)
    g_sql = [src.e(g) for g in groups]
    cand = [f"{hash_sql(g_sql, params, seed)} AS h0"]
    if tb_step_ns:
        tb = f"{src.e('ts')} // {params(tb_step_ns)}"
        cand.append(f"{hash_sql([*g_sql, tb], params, seed)} AS h1")
    cand += [f"{grid.code_sql(xs, params)} AS code", f"{xs} AS x", f"{src.e('w')} AS w"]
    preds = sorted({w.pred for w in wanted if w.pred})
    cand += [f"COALESCE({src.e(p)}, FALSE) AS {p}" for p in preds]
    pred_case = ""
    if preds:
        whens = " ".join(f"WHEN {params(w.calc)} THEN c.{w.pred}" for w in wanted if w.pred)
        pred_case = f" AND (CASE t.ci {whens} ELSE TRUE END)"
    joins = [
        f"SELECT t.tid, c.x, c.w FROM cand c JOIN {name} t ON t.lvl = {level} "
        f"AND c.h{level} = t.h AND c.code = t.code{pred_case}"
        for level in sorted(set(lvl))
    ]
    # One branch per read, each with plain range filters DuckDB pushes into the scan (and
    # zone maps prune on time); the join on the exact code decides.
    branches = [
        f"SELECT {', '.join(cand)} FROM {src.from_} WHERE {src.where} AND ({cond})"
        for cond in _reads(src, plan, targets, params, xs)
    ]
    # sorted by DuckDB (parallel, ~3x faster than numpy's lexsort on the fetched columns)
    sql = (
        f"WITH cand AS ({' UNION ALL '.join(branches)}) SELECT * FROM ("
        + " UNION ALL ".join(joins)
        + ") ORDER BY tid, x"
    )
    con.register(name, table)
    try:
        res = execute(con, sql, params).fetchnumpy()
    finally:
        con.unregister(name)
    tid_s = np.asarray(res["tid"], dtype=np.int64)
    x_s = np.asarray(res["x"])
    w_s = np.asarray(res["w"], dtype=np.int64)
    cum = np.cumsum(w_s)
    wanted_ids = np.arange(len(targets))
    start = np.searchsorted(tid_s, wanted_ids, side="left")
    end = np.searchsorted(tid_s, wanted_ids, side="right")
    if np.any(start >= end):
        raise RuntimeError("percentile refinement lost rows of a target code")
    base = cum[start] - w_s[start]
    pos = np.searchsorted(cum, base + np.asarray(local, dtype=np.int64), side="right")
    if np.any(pos >= end):
        raise RuntimeError("percentile refinement: rank beyond its code's rows")
    values = x_s[pos].tolist()
    return {(c, lv, hh, r): v for c, lv, hh, r, v in zip(ci, lvl, hs, rank, values, strict=True)}


def _reads(
    src: Source, plan: _ReadPlan, targets: list[tuple[int, ...]], params: Params, xs: str
) -> list[str]:
    """What pass 2 scans, one range condition per read: the value ranges of the target codes;
    a code holding many rows (a bucket's percentile fell outside the zoom bands) only within
    that time bucket, which zone maps make cheap."""
    narrow: set[int] = set()
    wide: dict[int, set[int]] = {}
    for _ci, level, h, code, *_ in targets:
        if plan.code_rows.get(code, 0) <= WIDE_CODE_ROWS or level == 0 or not plan.tb_step_ns:
            narrow.add(code)
        else:
            wide.setdefault(code, set()).add(plan.cell_tb[h])
    reads = [_prefilter(xs, plan.grid, sorted(narrow), params)] if narrow else []
    ts, step = src.e("ts"), int(plan.tb_step_ns or 0)
    for code, tbs in sorted(wide.items()):
        if code in narrow:
            continue
        lo, hi = plan.grid.code_range(code)
        value = ([f"{xs} >= {params(lo)}"] if lo is not None else []) + (
            [f"{xs} < {params(hi)}"] if hi is not None else []
        )
        for first, last in _runs(sorted(tbs)):
            conds = [f"{ts} >= {params(first * step)}", f"{ts} < {params((last + 1) * step)}"]
            reads.append(" AND ".join(conds + value))
    return reads


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Consecutive integers as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def _prefilter(xs: str, grid: Grid, codes: list[int], params: Params) -> str:
    """The target codes' value ranges, merged, as a predicate the scan can evaluate cheaply;
    the join on the exact code decides. Float ranges are widened against rounding."""
    merged = merge_ranges([grid.code_range(c) for c in codes], MAX_PREFILTER_RANGES)
    eps = 0 if grid.is_int else abs(grid.width) * 1e-6
    preds = []
    for lo, hi in merged:
        conds = []
        if lo is not None:
            conds.append(f"{xs} >= {params(lo - eps)}")
        if hi is not None:
            conds.append(f"{xs} < {params(hi + eps)}")
        preds.append("(" + " AND ".join(conds or ["TRUE"]) + ")")
    return " OR ".join(preds)


def interpolate(v_lo: Any, v_hi: Any, k: int, total: int, p: float, num: NumExpr) -> Any:
    """numpy's linear interpolation between ranks k and k+1, on user values (so that the
    result equals numpy's on the same user values, e.g. duration in ms)."""
    a = num.user(v_lo)
    if a is None:
        return None
    t = (total - 1) * p - k
    if t == 0 or v_hi is None:
        return float(a)
    b = num.user(v_hi)
    diff = b - a  # type: ignore[operator]
    return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)  # type: ignore[operator]
