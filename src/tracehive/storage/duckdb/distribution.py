"""Histogram grids: one integer code per value, for exact heatmaps and percentiles.

A *grid* cuts a column's values into linear buckets of ``width`` from ``origin`` (the heatmap's
y-axis) and, where the sample says percentiles fall, *zoom bands* of ``BAND_CODES`` narrow
sub-buckets. Each row gets a ``code`` ordered like its value (see ``Grid``); the main pass
groups by (breakdowns, time bucket, code) and sums weights, so

* heatmaps are exact: ``code // K`` is the bucket; buckets merge pairwise until at most
  ``HEATMAP_BUCKETS`` remain, and every group and time bucket shares the same edges;
* percentiles (percentile.py) find from cumulative weights the code holding each rank, then
  read only that code's rows. The zoom keeps those codes small: the 32 sub-buckets around
  P50 of a 10M-row lognormal hold ~0.2% of the rows each, where the heatmap bucket holds 55%.

A grid planned from the sample has slack both ways; when values fall beyond it (the sample
missed an extreme) the caller redoes the histogram on a grid from the exact min/max.
Percentiles are exact whatever the grid: it only decides how much pass 2 reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from tracehive.storage.duckdb.compile import NumExpr, Params
from tracehive.storage.duckdb.source import execute, hash_sql

HEATMAP_BUCKETS = 50
SLACK_BELOW = 64  # grid buckets below the sample's minimum before the heatmap is redone
SLACK_ABOVE = 1024  # and above its maximum
BAND_CODES = 32  # sub-buckets per zoom band
MAX_BANDS = 4
ZOOM_MARGIN = 0.03  # see zoom_margin


@dataclass(frozen=True)
class Band:
    """A zoomed value range [lo, lo + n·step) cut into ``n`` sub-buckets."""

    lo: float | int
    step: float | int
    n: int

    @property
    def hi(self) -> float | int:
        return self.lo + self.n * self.step


@dataclass(frozen=True)
class Grid:
    """Linear buckets of ``width`` from ``origin`` (the heatmap's), plus zoom ``bands``.

    A row's code is ``bucket · K + r`` where ``r`` orders the value within its bucket: 0 below
    the first band, ``base_i + sub-bucket`` inside band i, ``after_i`` between band i and the
    next. Codes are ordered like the values and ``code // K`` is the heatmap bucket.
    """

    origin: float | int
    width: float | int
    bands: tuple[Band, ...]
    nb: int  # buckets a planned grid expects; beyond them the heatmap is redone exactly
    is_int: bool
    exact: bool = False  # from the exact min/max: no value outside [bucket 0, bucket nb)

    @property
    def layout(self) -> list[tuple[Band, int, int]]:
        """(band, base, after) per band. Floats keep a spare code: rounding may put a value
        just below a band's end into sub-bucket n."""
        out, base = [], 1
        for band in self.bands:
            after = base + band.n + (0 if self.is_int else 1)
            out.append((band, base, after))
            base = after + 1
        return out

    @property
    def per_bucket(self) -> int:
        layout = self.layout
        return layout[-1][2] + 1 if layout else 1

    def code_sql(self, x: str, params: Params) -> str:
        """Three arithmetic ops plus one CASE whose branches test ``x < bound`` in value order,
        so most rows leave at the first test (each DuckDB vector op costs ~1.5 ns/row; this
        shape halved the main pass's expression cost). Values below the origin land in bucket
        0 (integer division truncates) or below it (floats); ``needs_redo`` catches both for
        heatmaps, and percentiles stay exact either way (codes still follow values)."""
        o = params(self.origin)
        if self.is_int:
            bucket = f"(({x} - {o}) // {params(self.width)})"
        else:
            bucket = f"CAST(floor(({x} - {o}) / {params(self.width)}) AS BIGINT)"
        if not self.bands:
            return bucket
        whens, last = [], 0
        for band, base, after in self.layout:
            lo, step = params(band.lo), params(band.step)
            sub = (
                f"({x} - {lo}) // {step}"
                if self.is_int
                else f"CAST(floor(({x} - {lo}) / {step}) AS BIGINT)"
            )
            whens += [
                f"WHEN {x} < {lo} THEN {params(last)}",
                f"WHEN {x} < {params(band.hi)} THEN {params(base)} + {sub}",
            ]
            last = after
        case = f"CASE {' '.join(whens)} ELSE {params(last)} END"
        return f"({bucket} * {params(self.per_bucket)} + {case})"

    def bucket_sql(self, code: str, params: Params) -> str:
        if not self.bands:
            return code
        return f"CAST(floor({code} / {params(self.per_bucket)}) AS BIGINT)"

    def edge(self, bucket: int) -> float | int:
        return self.origin + bucket * self.width

    def needs_redo(self, buckets: list[int]) -> bool:
        """True when heatmap buckets fall outside the planned grid (see ``code_sql``)."""
        if self.exact or not buckets:
            return False
        return min(buckets) <= (0 if self.is_int else -1) or max(buckets) >= self.nb

    def code_range(self, code: int) -> tuple[float | None, float | None]:
        """[lo, hi) of the raw values a code holds (None = unbounded); may be wider."""
        bucket, r = divmod(code, self.per_bucket)
        lo: Any = self.edge(bucket)
        hi: Any = self.edge(bucket + 1)
        prev_hi: Any = None
        for band, base, after in self.layout:
            if r < base:  # below this band (after the previous one)
                lo = lo if prev_hi is None else max(lo, prev_hi)
                hi = min(hi, band.lo)
                break
            if r < after:
                sub = r - base
                lo = max(lo, band.lo + sub * band.step)
                hi = min(hi, band.lo + (sub + 1) * band.step)
                break
            prev_hi = band.hi
        else:
            if prev_hi is not None:
                lo = max(lo, prev_hi)
        # the lowest bucket also holds anything below the origin
        return (None if bucket <= 0 else lo), hi


def zoom_margin(p: float) -> float:
    """Sample quantiles at p ± this bound where P(p) may fall (tighter near 0 and 1)."""
    return min(ZOOM_MARGIN, p / 2, (1 - p) / 2)


def make_grid(lo: Any, hi: Any, is_int: bool, bands: list[tuple[Any, Any]], exact: bool) -> Grid:
    """Heatmap buckets over [lo, hi] (exact: ``HEATMAP_BUCKETS`` of them; planned from a
    sample: with slack both ways), zoomed over ``bands`` (value ranges where percentiles may
    fall: per group, the sample's quantiles around each)."""
    if is_int:
        width: Any = max(1, -(-(int(hi) - int(lo) + 1) // HEATMAP_BUCKETS))
        origin: Any = int(lo)
    else:
        width = (hi - lo) / HEATMAP_BUCKETS or _unit(lo)  # hi itself: see HeatmapEdges.of
        origin = float(lo)
    nb = HEATMAP_BUCKETS + 1
    if not exact:
        origin -= SLACK_BELOW * width
        nb += SLACK_BELOW + SLACK_ABOVE
    return Grid(origin, width, _bands(bands, is_int), nb, is_int, exact)


def merge_ranges(ranges: list[tuple[Any, Any]], most: int) -> list[list[Any]]:
    """[lo, hi] ranges (None: unbounded on that side) merged where they overlap, then the
    closest neighbours joined until at most ``most`` remain; ascending."""
    merged: list[list[Any]] = []
    for lo, hi in sorted(ranges, key=lambda r: (r[0] is not None, r[0])):
        if merged and (merged[-1][1] is None or lo is None or lo <= merged[-1][1]):
            merged[-1][1] = None if merged[-1][1] is None or hi is None else max(hi, merged[-1][1])
        else:
            merged.append([lo, hi])
    while len(merged) > most:  # join the closest neighbours
        gaps = [merged[i + 1][0] - merged[i][1] for i in range(len(merged) - 1)]
        i = gaps.index(min(gaps))
        merged[i : i + 2] = [[merged[i][0], merged[i + 1][1]]]
    return merged


def _bands(ranges: list[tuple[Any, Any]], is_int: bool) -> tuple[Band, ...]:
    bounded = [r for r in ranges if r[0] is not None and r[1] is not None]
    merged = merge_ranges(bounded, MAX_BANDS)
    out = []
    for lo, hi in merged:
        if is_int:
            step = max(1, -(-(int(hi) - int(lo) + 1) // BAND_CODES))
            out.append(Band(int(lo), step, -(-(int(hi) - int(lo) + 1) // step)))
        elif hi > lo:
            out.append(Band(float(lo), (hi - lo) / (BAND_CODES - 1e-6), BAND_CODES))
    # integer rounding may make neighbours overlap: keep bands disjoint
    for i in range(1, len(out)):
        if out[i].lo < out[i - 1].hi:
            prev = out[i - 1]
            n = max(0, -(-(out[i].lo - prev.lo) // prev.step))
            out[i - 1] = Band(prev.lo, prev.step, n)
    return tuple(b for b in out if b.n > 0)


def _unit(value: Any) -> float:
    return abs(float(value)) * 1e-9 or 1.0


# -- heatmaps -----------------------------------------------------------------------------------
def heatmap_rows(
    con: duckdb.DuckDBPyConnection,
    cells: str,
    groups: list[str],
    tb: bool,
    grid: Grid,
    weight: str,
    seed: int,
) -> dict[str, np.ndarray]:
    """Per non-empty heatmap bucket: ``h0`` the group's hash, ``h1`` the (group, time bucket)'s
    (with ``tb``), ``hb`` the bucket, ``n`` the weight; columnar (``fetchnumpy``), so shaping
    the ~25k rows of a series heatmap stays in numpy."""
    params = Params()
    keys = [*groups, "tb"] if tb else groups
    hashes = f"{hash_sql(groups, params, seed)} AS h0, " + (
        f"{hash_sql(keys, params, seed)} AS h1, " if tb else ""
    )
    key_sql = "".join(f"{k}, " for k in keys)
    bucket = grid.bucket_sql("code", params)
    return execute(
        con,
        f"SELECT {hashes}{bucket} AS hb, CAST(sum({weight}) AS BIGINT) AS n FROM {cells} "
        f"WHERE {weight} > 0 AND code IS NOT NULL GROUP BY {key_sql}hb",
        params,
    ).fetchnumpy()


@dataclass(frozen=True)
class HeatmapEdges:
    first: int  # first merged bucket index
    count: int
    factor: int
    bounds: tuple[tuple[Any, Any], ...]  # (lower, upper) of each output bucket, user units

    @staticmethod
    def of(lo: int, hi: int, grid: Grid, num: NumExpr) -> HeatmapEdges:
        """Edges covering buckets ``lo``..``hi``, merged pairwise until at most
        ``HEATMAP_BUCKETS``. On an exact float grid the maximum itself computes to bucket 50:
        it belongs to the last."""
        if grid.exact:
            lo, hi = min(lo, HEATMAP_BUCKETS - 1), min(hi, HEATMAP_BUCKETS - 1)
        factor = 1
        while hi // factor - lo // factor + 1 > HEATMAP_BUCKETS:
            factor *= 2
        first, count = lo // factor, hi // factor - lo // factor + 1
        bounds = tuple(
            (
                num.user(grid.edge((first + i) * factor)),
                num.user(grid.edge((first + i + 1) * factor)),
            )
            for i in range(count)
        )
        return HeatmapEdges(first, count, factor, bounds)

    def index(self, buckets: np.ndarray) -> np.ndarray:
        return np.minimum(buckets // self.factor - self.first, self.count - 1)

    def render_dense(self, counts: np.ndarray) -> dict[str, Any]:
        """Every bucket of the shared edges (result rows)."""
        return {
            "buckets": [
                {"lower": lo, "upper": hi, "count": n}
                for (lo, hi), n in zip(self.bounds, counts.tolist(), strict=True)
            ]
        }

    def render_sparse(self, indexes: list[int], counts: list[int]) -> dict[str, Any]:
        """Only the non-empty buckets, ascending (series)."""
        b = self.bounds
        return {
            "buckets": [
                {"lower": b[i][0], "upper": b[i][1], "count": n}
                for i, n in zip(indexes, counts, strict=True)
            ]
        }
