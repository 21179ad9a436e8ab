"""The planned paths at a size where they kick in: sample-planned zoomed grids, the exact redo
when the sample misses an extreme, materialized selective filters, two-stage high-cardinality
breakdowns. Expected values come from numpy on the rows fetched back."""

from __future__ import annotations

import numpy as np
import pytest
from query_fixtures import NS, T0_S, Fixture

import tracehive.storage.duckdb.evaluate as evaluate_mod
import tracehive.storage.duckdb.query as query_mod
from tracehive.storage.duckdb.backend import DuckDBStore

N = 300_000
WINDOW = {"start_time": T0_S, "end_time": T0_S + 3600}


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    store = DuckDBStore(tmp_path_factory.mktemp("big") / "store.duckdb")
    fx = Fixture(store)
    fx.add(
        [
            {
                "ts_ns": T0_S * NS,
                "dur_ns": 1000,
                "service": "svc0",
                "signal": "span",
                "attributes": {"hc": "h", "level": 1.5},
            }
        ]
    )
    hc, level = store.resolve("hc")[0].physical, store.resolve("level")[0].physical
    u1 = "((hash(i) % 1000003) + 1) / 1000004.0"
    u2 = "((hash(i * 7 + 1) % 1000003) + 1) / 1000004.0"
    normal = f"sqrt(-2 * ln({u1})) * cos(2 * pi() * {u2})"
    store._con.execute(f"""
        INSERT INTO events (env_id, dataset_id, seq, ts_ns, dur_ns, service, name, signal,
                            samplerate, {hc}, {level})
        SELECT 1, 1, 99, {T0_S * NS} + i * {3600 * NS // N} + 1,
               CASE WHEN i = {N // 2} THEN 10 ** 15 ELSE CAST(exp(16 + 1.1 * {normal}) AS BIGINT)
                    + 1 END,
               'svc' || (hash(i * 3) % 3), 'op', 'span', 1 + (hash(i * 5) % 3),
               'h' || (i % 100000), 20 + 5 * {normal}
        FROM range({N}) t(i)
    """)
    store._con.execute("CHECKPOINT")
    cols = store._con.execute(
        f"SELECT service, dur_ns, samplerate, ts_ns, {hc}, {level} FROM events "
        f"WHERE ts_ns >= {T0_S * NS} AND ts_ns < {(T0_S + 3600) * NS}"
    ).fetchnumpy()
    yield fx, cols
    store.close()


def wpct(values, weights, p):
    return float(np.percentile(np.repeat(values, weights), p * 100))


@pytest.fixture
def spy(monkeypatch):
    seen: dict[str, list] = {"grids": [], "materialized": [], "two_stage": []}
    planned, materialize, evaluate = (
        evaluate_mod.make_grid,
        query_mod.try_materialize,
        query_mod.evaluate,
    )

    def grid(*a, **k):
        g = planned(*a, **k)
        seen["grids"].append(g)
        return g

    def mat(*a, **k):
        m = materialize(*a, **k)
        seen["materialized"].append(m is not None)
        return m

    def ev(con, plan, src, smp, tb):
        seen["two_stage"].append(src.where.endswith(")") and "EXISTS" in src.where)
        return evaluate(con, plan, src, smp, tb)

    monkeypatch.setattr(evaluate_mod, "make_grid", grid)
    monkeypatch.setattr(query_mod, "try_materialize", mat)
    monkeypatch.setattr(query_mod, "evaluate", ev)
    return seen


def test_zoomed_percentiles_and_heatmap_redo(big, spy):
    fx, cols = big
    out = fx.run(
        {
            **WINDOW,
            "calculations": [
                {"op": "P50", "column": "duration_ms"},
                {"op": "P99", "column": "duration_ms"},
                {"op": "HEATMAP", "column": "duration_ms"},
                {"op": "COUNT"},
            ],
            "breakdowns": ["service.name"],
            "granularity": 600,
        }
    )
    assert spy["grids"] and spy["grids"][0].bands  # the sample planned a zoomed grid
    ms = cols["dur_ns"] / 1e6
    for row in out.results:
        sel = cols["service"] == row["service.name"]
        for op, p in (("P50", 0.5), ("P99", 0.99)):
            expect = wpct(ms[sel], cols["samplerate"][sel], p)
            assert row[f"{op}(duration_ms)"] == pytest.approx(expect, rel=1e-12)
        buckets = row["HEATMAP(duration_ms)"]["buckets"]
        assert sum(b["count"] for b in buckets) == row["COUNT"]
        assert len(buckets) <= 50
    # the 10^15 ns outlier was outside the planned grid: the heatmap was redone on exact edges
    top = max(b["upper"] for r in out.results for b in r["HEATMAP(duration_ms)"]["buckets"])
    assert top >= 1e9
    for s in out.series[:40]:
        sel = (
            (cols["service"] == s["service.name"])
            & (cols["ts_ns"] >= s["time"] * NS)
            & (cols["ts_ns"] < (s["time"] + 600) * NS)
        )
        expect = wpct(ms[sel], cols["samplerate"][sel], 0.5)
        assert s["P50(duration_ms)"] == pytest.approx(expect, rel=1e-12)


def test_float_column_percentiles(big):
    fx, cols = big
    out = fx.run(
        {
            **WINDOW,
            "calculations": [{"op": "P05", "column": "level"}, {"op": "P95", "column": "level"}],
        }
    )
    sel = ~np.isnan(cols[list(cols)[-1]].astype(float))
    values, weights = cols[list(cols)[-1]][sel].astype(float), cols["samplerate"][sel]
    assert out.results[0]["P05(level)"] == pytest.approx(wpct(values, weights, 0.05), rel=1e-12)
    assert out.results[0]["P95(level)"] == pytest.approx(wpct(values, weights, 0.95), rel=1e-12)


def test_selective_filter_is_materialized(big, spy):
    fx, cols = big
    out = fx.run(
        {
            **WINDOW,
            "calculations": [
                {"op": "P90", "column": "duration_ms"},
                {"op": "COUNT_DISTINCT", "column": "hc"},
            ],
            "filters": [{"column": "service.name", "op": "=", "value": "svc1"}],
        }
    )
    assert spy["materialized"] == [True]
    sel = cols["service"] == "svc1"
    expect = wpct(cols["dur_ns"][sel] / 1e6, cols["samplerate"][sel], 0.9)
    assert out.results[0]["P90(duration_ms)"] == pytest.approx(expect, rel=1e-12)
    assert out.results[0]["COUNT_DISTINCT(hc)"] == len(set(cols[list(cols)[4]][sel].tolist()))


def test_high_cardinality_breakdown_runs_in_two_stages(big, spy):
    fx, cols = big
    out = fx.run(
        {
            **WINDOW,
            "breakdowns": ["hc"],
            "limit": 5,
            "calculations": [{"op": "COUNT"}, {"op": "MAX", "column": "duration_ms"}],
        }
    )
    assert spy["two_stage"] == [False, True]
    hc = cols[list(cols)[4]]
    counts: dict[str, int] = {}
    for key, w in zip(hc.tolist(), cols["samplerate"].tolist(), strict=True):
        counts[key] = counts.get(key, 0) + w
    expect = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(r["hc"], r["COUNT"]) for r in out.results] == expect
    assert {s["hc"] for s in out.series} == {k for k, _ in expect}
    assert sum(s["COUNT"] for s in out.series) == sum(c for _, c in expect)
