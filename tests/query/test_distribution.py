"""The histogram grid: codes follow values, code ranges hold their values, heatmap buckets."""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracehive.storage.duckdb.compile import NumExpr, Params
from tracehive.storage.duckdb.distribution import HeatmapEdges, make_grid


def _codes(grid, values, sql_type):
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t (x {sql_type})")
    con.executemany("INSERT INTO t VALUES (?)", [[v] for v in values])
    params = Params()
    code, bucket = grid.code_sql("x", params), grid.bucket_sql("c", params)
    used = {k: v for k, v in params.values.items() if f"${k}" in code + bucket}
    rows = con.execute(
        f"SELECT x, c, {bucket} FROM (SELECT x, {code} AS c FROM t) ORDER BY x", used
    ).fetchall()
    con.close()
    return rows


def _check(grid, rows):
    codes = [c for _, c, _ in rows]
    assert codes == sorted(codes)  # ordered like the values
    for x, code, bucket in rows:
        lo, hi = grid.code_range(code)
        eps = 0 if grid.is_int else abs(grid.width) * 1e-6
        assert lo is None or x >= lo - eps
        assert hi is None or x < hi + eps
        assert bucket == code // grid.per_bucket


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-(10**9), 10**9), min_size=2, max_size=60),
    st.lists(st.tuples(st.integers(-(10**9), 10**9), st.integers(0, 10**8)), max_size=5),
    st.booleans(),
)
def test_integer_codes(values, bands, exact):
    lo, hi = min(values), max(values)
    grid = make_grid(lo, hi, True, [(a, a + d) for a, d in bands], exact=exact)
    _check(grid, _codes(grid, values, "BIGINT"))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=60),
    st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1e5)), max_size=5),
    st.booleans(),
)
def test_float_codes(values, bands, exact):
    lo, hi = min(values), max(values)
    grid = make_grid(lo, hi, False, [(a, a + d) for a, d in bands], exact=exact)
    _check(grid, _codes(grid, values, "DOUBLE"))


def test_exact_grid_has_fifty_buckets_over_the_range():
    grid = make_grid(0.0, 10.0, False, [], exact=True)
    rows = _codes(grid, [0.0, 5.0, 9.999, 10.0], "DOUBLE")
    assert [b for *_, b in rows] == [0, 25, 49, 50]  # the maximum: folded into the last
    edges = HeatmapEdges.of(0, 50, grid, NumExpr("x", None, False))
    assert edges.count == 50 and edges.bounds[0][0] == 0.0
    assert edges.index(np.array([0, 25, 49, 50])).tolist() == [0, 25, 49, 49]
    assert edges.bounds[-1][1] == pytest.approx(10.0)


def test_planned_grid_flags_values_beyond_its_slack():
    grid = make_grid(100, 200, True, [], exact=False)
    buckets = [b for *_, b in _codes(grid, [150, 10**9], "BIGINT")]
    assert grid.needs_redo(buckets) and not grid.needs_redo(buckets[:1])
    merged = HeatmapEdges.of(64, 199, grid, NumExpr("x", None, True))
    assert merged.count <= 50 and merged.factor == 4
    assert merged.index(np.array([64, 67, 68, 199])).tolist() == [0, 0, 1, 33]


@given(
    st.lists(
        st.tuples(st.integers(-50, 50), st.integers(0, 30)).map(lambda t: (t[0], t[0] + t[1])),
        max_size=30,
    ),
    st.integers(1, 6),
    st.booleans(),
    st.booleans(),
)
def test_merged_ranges_are_few_disjoint_and_cover_every_input(ranges, most, open_lo, open_hi):
    from tracehive.storage.duckdb.distribution import merge_ranges

    if open_lo and ranges:
        ranges = [(None, ranges[0][1]), *ranges[1:]]
    if open_hi and ranges:
        ranges = [*ranges[:-1], (ranges[-1][0], None)]
    merged = merge_ranges(ranges, most)
    assert len(merged) <= max(most, 0) and bool(merged) == bool(ranges)
    for (_, hi), (lo, _) in itertools.pairwise(merged):
        assert hi is not None and lo is not None and hi < lo  # ascending, disjoint
    for lo, hi in ranges:
        assert any(
            (m_lo is None or (lo is not None and m_lo <= lo))
            and (m_hi is None or (hi is not None and hi <= m_hi))
            for m_lo, m_hi in merged
        )
