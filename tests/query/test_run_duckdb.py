"""Every calculation and filter op on DuckDB, against answers computed independently in Python
and numpy from the same rows."""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict

import numpy as np
import pytest
from query_fixtures import NS, T0_S, Fixture

from tracehive.query.spec import PERCENTILES, SpecError
from tracehive.storage.api import Scope
from tracehive.storage.duckdb.backend import DuckDBStore

WINDOW = {"start_time": T0_S, "end_time": T0_S + 3600}


def _rows(n: int = 3000, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        log = i % 17 == 0
        attrs: dict = {
            "user.id": f"u{rng.randrange(40)}",
            "http.status_code": rng.choice([200, 200, 404, 500]),
        }
        if i % 3 == 0:
            attrs["mixed"] = rng.randrange(100)
        elif i % 3 == 1:
            attrs["mixed"] = f"s{rng.randrange(100)}"
        if i % 5:
            attrs["ratio"] = round(rng.random() * 10, 3)
        if i % 7 == 0:
            attrs["cache.hit"] = rng.random() < 0.5
        rows.append(
            {
                "ts_ns": (T0_S + rng.randrange(3600)) * NS + rng.randrange(NS),
                "dur_ns": None if log else int(rng.lognormvariate(16, 1.2)) + 1,
                "service": rng.choice(["api", "db", "web"]),
                "name": rng.choice(["GET /", "POST /x", "query"]),
                "samplerate": rng.choice([1, 1, 1, 2, 5]),
                "error": rng.random() < 0.1,
                "trace_id": bytes([i % 251]) * 16,
                "span_id": i + 1,
                "parent_id": None if i % 4 == 0 else i,
                "signal": "log" if log else "span",
                "attributes": attrs,
            }
        )
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    store = DuckDBStore(tmp_path_factory.mktemp("q") / "store.duckdb")
    fx = Fixture(store)
    fx.add(_rows())
    fx.add(
        [{"ts_ns": T0_S * NS + 5, "dur_ns": 10**9, "service": "api", "attributes": {}}], env_id=2
    )  # another environment: never visible
    fx.add(
        [
            {"ts_ns": (T0_S - 10) * NS, "dur_ns": 1, "service": "api", "attributes": {}},
            {"ts_ns": (T0_S + 3600) * NS, "dur_ns": 1, "service": "api", "attributes": {}},
        ]
    )
    yield fx
    store.close()


def visible(fx: Fixture) -> list[dict]:
    lo, hi = T0_S * NS, (T0_S + 3600) * NS
    return [r for r in fx.rows if r["env_id"] == 1 and lo <= r["ts_ns"] < hi]


def run(fx: Fixture, **spec):
    return fx.run({**WINDOW, **spec})


def by(rows: list[dict], key) -> dict:
    out = defaultdict(list)
    for r in rows:
        out[key(r)].append(r)
    return out


def ms(r):
    return None if r["dur_ns"] is None else r["dur_ns"] / 1e6


def wpercentile(values, weights, p):
    return float(np.percentile(np.repeat(values, weights), p * 100))


# -- calculations ---------------------------------------------------------------------------
def test_count_is_weighted_by_samplerate_and_scoped(data):
    out = run(data, breakdowns=["service.name"])
    expect = {
        s: sum(r["samplerate"] for r in rows)
        for s, rows in by(visible(data), lambda r: r["service"]).items()
    }
    assert {r["service.name"]: r["COUNT"] for r in out.results} == expect
    unweighted = run(data, breakdowns=["service.name"], usage_mode=True)
    assert {r["service.name"]: r["COUNT"] for r in unweighted.results} == {
        s: len(rows) for s, rows in by(visible(data), lambda r: r["service"]).items()
    }


def test_sum_avg_min_max(data):
    calcs = [
        {"op": op, "column": c}
        for op in ("SUM", "AVG", "MIN", "MAX")
        for c in ("duration_ms", "http.status_code", "ratio")
    ]
    (row,) = run(data, calculations=calcs).results
    rows = visible(data)
    for column, get in (
        ("duration_ms", ms),
        ("http.status_code", lambda r: r["attributes"].get("http.status_code")),
        ("ratio", lambda r: r["attributes"].get("ratio")),
    ):
        pairs = [(get(r), r["samplerate"]) for r in rows if get(r) is not None]
        values = [v for v, _ in pairs]
        total = sum(v * w for v, w in pairs)
        assert row[f"SUM({column})"] == pytest.approx(total, rel=1e-9)
        assert row[f"AVG({column})"] == pytest.approx(total / sum(w for _, w in pairs), rel=1e-9)
        assert row[f"MIN({column})"] == min(values)
        assert row[f"MAX({column})"] == max(values)
    assert isinstance(row["SUM(http.status_code)"], int)


@pytest.mark.parametrize("op", sorted(PERCENTILES))
def test_percentiles_match_numpy_on_weighted_values(data, op):
    out = run(data, calculations=[{"op": op, "column": "duration_ms"}], breakdowns=["name"])
    for name, rows in by(visible(data), lambda r: r["name"]).items():
        spans = [r for r in rows if r["dur_ns"] is not None]
        expect = wpercentile(
            [ms(r) for r in spans], [r["samplerate"] for r in spans], PERCENTILES[op]
        )
        (got,) = [r[f"{op}(duration_ms)"] for r in out.results if r["name"] == name]
        assert got == pytest.approx(expect, rel=1e-12)


def test_percentiles_equal_numpy_when_unsampled(data):
    out = run(
        data,
        calculations=[{"op": "P50", "column": "ratio"}, {"op": "P999", "column": "ratio"}],
        usage_mode=True,
    )
    values = [r["attributes"]["ratio"] for r in visible(data) if "ratio" in r["attributes"]]
    assert out.results[0]["P50(ratio)"] == pytest.approx(np.percentile(values, 50), rel=1e-12)
    assert out.results[0]["P999(ratio)"] == pytest.approx(np.percentile(values, 99.9), rel=1e-12)


def test_heatmap_buckets_sum_to_the_weighted_count_and_cover_the_range(data):
    out = run(
        data,
        calculations=[{"op": "HEATMAP", "column": "duration_ms"}, {"op": "COUNT"}],
        breakdowns=["service.name"],
        filters=[{"column": "duration_ms", "op": "exists"}],
    )
    edges = None
    for row in out.results:
        buckets = row["HEATMAP(duration_ms)"]["buckets"]
        assert 1 <= len(buckets) <= 50
        assert sum(b["count"] for b in buckets) == row["COUNT"]
        for a, b in itertools.pairwise(buckets):
            assert a["upper"] == pytest.approx(b["lower"])
        edges = edges or [b["lower"] for b in buckets]
        assert [b["lower"] for b in buckets] == edges  # shared edges across groups
    spans = [ms(r) for r in visible(data) if r["dur_ns"] is not None]
    assert edges[0] <= min(spans) and out.results[0]["HEATMAP(duration_ms)"]["buckets"][-1][
        "upper"
    ] >= max(spans)
    for s in out.series:
        assert sum(b["count"] for b in s["HEATMAP(duration_ms)"]["buckets"]) == s["COUNT"]


def test_series_buckets_sum_to_results_and_percentiles_hold_per_bucket(data):
    out = run(
        data,
        calculations=[{"op": "COUNT"}, {"op": "P90", "column": "duration_ms"}],
        breakdowns=["service.name"],
        granularity=300,
    )
    assert out.granularity == 300
    totals = defaultdict(int)
    for s in out.series:
        assert s["time"] % 300 == 0
        totals[s["service.name"]] += s["COUNT"]
        rows = [
            r
            for r in visible(data)
            if r["service"] == s["service.name"]
            and s["time"] * NS <= r["ts_ns"] < (s["time"] + 300) * NS
            and r["dur_ns"]
        ]
        expect = wpercentile([ms(r) for r in rows], [r["samplerate"] for r in rows], 0.9)
        assert s["P90(duration_ms)"] == pytest.approx(expect, rel=1e-12)
    assert totals == {r["service.name"]: r["COUNT"] for r in out.results}
    assert [s["time"] for s in out.series] == sorted(s["time"] for s in out.series)


def test_count_distinct_is_exact_and_unweighted(data):
    out = run(
        data,
        calculations=[
            {"op": "COUNT_DISTINCT", "column": "user.id"},
            {"op": "COUNT_DISTINCT", "column": "mixed"},
            {"op": "COUNT_DISTINCT", "column": "trace.trace_id"},
            {"op": "COUNT_DISTINCT", "column": "trace.parent_id"},
        ],
        breakdowns=["service.name"],
    )
    for s, rows in by(visible(data), lambda r: r["service"]).items():
        (got,) = [r for r in out.results if r["service.name"] == s]
        assert got["COUNT_DISTINCT(user.id)"] == len({r["attributes"]["user.id"] for r in rows})
        mixed = {str(r["attributes"]["mixed"]) for r in rows if "mixed" in r["attributes"]}
        assert got["COUNT_DISTINCT(mixed)"] == len(mixed)
        # id columns count their stored values (no hex formatting): same answer
        assert got["COUNT_DISTINCT(trace.trace_id)"] == len({r["trace_id"] for r in rows})
        parents = {r["parent_id"] for r in rows if r["parent_id"] is not None}
        assert got["COUNT_DISTINCT(trace.parent_id)"] == len(parents)


def _max_overlap(spans: list[tuple[int, int]], end: int) -> int:
    events = [(s, 1) for s, _ in spans] + [(s + d, -1) for s, d in spans if s + d < end]
    level = best = 0
    for _, d in sorted(events):
        level += d
        best = max(best, level)
    return best


def test_concurrency_is_the_most_spans_in_progress(data):
    out = run(
        data, calculations=[{"op": "CONCURRENCY"}], breakdowns=["service.name"], granularity=600
    )
    end = (T0_S + 3600) * NS
    for s, rows in by(visible(data), lambda r: r["service"]).items():
        spans = [(r["ts_ns"], r["dur_ns"]) for r in rows if r["dur_ns"] is not None]
        (got,) = [r["CONCURRENCY"] for r in out.results if r["service.name"] == s]
        assert got == _max_overlap(spans, end)
    assert all(s["CONCURRENCY"] >= 1 for s in out.series)


def test_rates_difference_consecutive_buckets(data):
    out = run(
        data,
        calculations=[{"op": "RATE_MAX", "column": "ratio"}, {"op": "RATE_SUM", "column": "ratio"}],
        granularity=600,
    )
    buckets = by(
        [r for r in visible(data) if "ratio" in r["attributes"]],
        lambda r: r["ts_ns"] // (600 * NS) * 600,
    )
    times = sorted(buckets)
    mx = [max(r["attributes"]["ratio"] for r in buckets[t]) for t in times]
    sm = [sum(r["attributes"]["ratio"] * r["samplerate"] for r in buckets[t]) for t in times]
    series = {s["time"]: s for s in out.series}
    assert series[times[0]]["RATE_MAX(ratio)"] is None
    for i in range(1, len(times)):
        assert series[times[i]]["RATE_MAX(ratio)"] == pytest.approx(mx[i] - mx[i - 1])
        assert series[times[i]]["RATE_SUM(ratio)"] == pytest.approx(sm[i] - sm[i - 1])
    rates = [mx[i] - mx[i - 1] for i in range(1, len(times))]
    assert out.results[0]["RATE_MAX(ratio)"] == pytest.approx(sum(rates) / len(rates))


def test_calculation_local_filters(data):
    calcs = [
        {
            "op": "COUNT",
            "name": "errors",
            "filters": [{"column": "error", "op": "=", "value": True}],
        },
        {
            "op": "P50",
            "column": "duration_ms",
            "name": "p50 5xx",
            "filters": [{"column": "http.status_code", "op": ">=", "value": 500}],
        },
        {"op": "COUNT"},
    ]
    (row,) = run(data, calculations=calcs).results
    rows = visible(data)
    assert row["errors"] == sum(r["samplerate"] for r in rows if r["error"])
    five = [r for r in rows if r["dur_ns"] and r["attributes"]["http.status_code"] >= 500]
    expect = wpercentile([ms(r) for r in five], [r["samplerate"] for r in five], 0.5)
    assert row["p50 5xx"] == pytest.approx(expect, rel=1e-12)
    assert row["COUNT"] == sum(r["samplerate"] for r in rows)


# -- filters --------------------------------------------------------------------------------
def _count(fx, filters, combination="AND"):
    out = fx.run(
        {**WINDOW, "filters": filters, "filter_combination": combination, "usage_mode": True}
    )
    return out.results[0]["COUNT"] if out.results else 0


def _attr(name):
    return lambda r: r["attributes"].get(name)


FILTER_CASES = [
    ("service.name", "=", "api", lambda v: v == "api", lambda r: r["service"]),
    ("service.name", "!=", "api", lambda v: v != "api", lambda r: r["service"]),
    ("http.status_code", ">", 200, lambda v: v is not None and v > 200, _attr("http.status_code")),
    (
        "http.status_code",
        ">=",
        "404",
        lambda v: v is not None and v >= 404,
        _attr("http.status_code"),
    ),
    ("http.status_code", "<", 404, lambda v: v is not None and v < 404, _attr("http.status_code")),
    ("ratio", "<=", 2.5, lambda v: v is not None and v <= 2.5, _attr("ratio")),
    ("user.id", "starts-with", "u1", lambda v: v.startswith("u1"), _attr("user.id")),
    ("user.id", "does-not-start-with", "u1", lambda v: not v.startswith("u1"), _attr("user.id")),
    ("user.id", "ends-with", "7", lambda v: v.endswith("7"), _attr("user.id")),
    ("user.id", "does-not-end-with", "7", lambda v: not v.endswith("7"), _attr("user.id")),
    ("user.id", "contains", "3", lambda v: "3" in v, _attr("user.id")),
    ("user.id", "does-not-contain", "3", lambda v: "3" not in v, _attr("user.id")),
    ("user.id", "in", ["u1", "u2", "nobody"], lambda v: v in ("u1", "u2"), _attr("user.id")),
    ("user.id", "not-in", ["u1", "u2"], lambda v: v not in ("u1", "u2"), _attr("user.id")),
    ("cache.hit", "exists", None, lambda v: v is not None, _attr("cache.hit")),
    ("cache.hit", "does-not-exist", None, lambda v: v is None, _attr("cache.hit")),
    ("cache.hit", "=", "true", lambda v: v is True, _attr("cache.hit")),
    # negations match rows without the column (Honeycomb)
    ("cache.hit", "!=", True, lambda v: v is not True, _attr("cache.hit")),
    ("ratio", "not-in", [1.5], lambda v: v != 1.5, _attr("ratio")),
    # a key with two types: each typed column takes the literal it can hold
    ("mixed", "=", 5, lambda v: v == 5 or v == "5", _attr("mixed")),
    ("mixed", "=", "s5", lambda v: v == "s5", _attr("mixed")),
    ("mixed", ">=", 50, lambda v: isinstance(v, int) and v >= 50, _attr("mixed")),
    ("mixed", "in", [3, "s3"], lambda v: v in (3, "s3"), _attr("mixed")),
    ("mixed", "starts-with", "s1", lambda v: str(v).startswith("s1"), _attr("mixed")),
    ("duration_ms", ">", 8.5, lambda v: v is not None and v > 8.5, ms),
    ("duration_ms", "<=", 3, lambda v: v is not None and v <= 3, ms),
    ("name", "=", "GET /", lambda v: v == "GET /", lambda r: r["name"]),
    ("error", "=", True, lambda v: v is True, lambda r: r["error"]),
    ("meta.signal_type", "=", "log", lambda v: v == "log", lambda r: r["signal"]),
]


@pytest.mark.parametrize(
    ("column", "op", "value", "test", "get"),
    FILTER_CASES,
    ids=[f"{c[0]} {c[1]}" for c in FILTER_CASES],
)
def test_filter_ops(data, column, op, value, test, get):
    f = {"column": column, "op": op} | ({} if value is None else {"value": value})
    expect = sum(
        1
        for r in visible(data)
        if (
            get(r) is None
            and op
            in (
                "!=",
                "does-not-start-with",
                "does-not-end-with",
                "does-not-contain",
                "not-in",
                "does-not-exist",
            )
        )
        or (get(r) is not None and test(get(r)))
    )
    assert _count(data, [f]) == expect


def test_filter_or_combination(data):
    filters = [
        {"column": "service.name", "op": "=", "value": "db"},
        {"column": "http.status_code", "op": "=", "value": 500},
    ]
    expect = sum(
        1
        for r in visible(data)
        if r["service"] == "db" or r["attributes"]["http.status_code"] == 500
    )
    assert _count(data, filters, "OR") == expect
    both = sum(
        1
        for r in visible(data)
        if r["service"] == "db" and r["attributes"]["http.status_code"] == 500
    )
    assert _count(data, filters) == both


def test_trace_and_span_id_filters(data):
    tid = bytes([3]) * 16
    expect = sum(1 for r in visible(data) if r["trace_id"] == tid)
    assert _count(data, [{"column": "trace.trace_id", "op": "=", "value": tid.hex()}]) == expect
    xray = "1-" + tid.hex()[:8] + "-" + tid.hex()[8:]
    assert _count(data, [{"column": "trace.trace_id", "op": "=", "value": xray}]) == expect
    assert _count(data, [{"column": "trace.span_id", "op": "=", "value": f"{7:016x}"}]) == 1
    with pytest.raises(SpecError) as info:
        _count(data, [{"column": "trace.trace_id", "op": "=", "value": "zz"}])
    assert info.value.field == "filters[0].value"


def test_unknown_columns(data):
    assert _count(data, [{"column": "nope", "op": "does-not-exist"}]) == len(visible(data))
    assert _count(data, [{"column": "nope", "op": "exists"}]) == 0
    for spec, field in (
        ({"filters": [{"column": "nope", "op": "=", "value": 1}]}, "filters[0].column"),
        ({"breakdowns": ["nope"]}, "breakdowns[0]"),
        ({"calculations": [{"op": "AVG", "column": "nope"}]}, "calculations[0].column"),
        ({"calculations": [{"op": "P90", "column": "user.id"}]}, "calculations[0].column"),
        ({"calculations": [{"op": "SUM", "column": "service.name"}]}, "calculations[0].column"),
        ({"filters": [{"column": "duration_ms", "op": ">", "value": "slow"}]}, "filters[0].value"),
    ):
        with pytest.raises(SpecError) as info:
            run(data, **spec)
        assert info.value.field == field


# -- havings, orders, limit, scope ----------------------------------------------------------
def test_havings_orders_and_limit(data):
    counts = {
        u: sum(r["samplerate"] for r in rows)
        for u, rows in by(visible(data), lambda r: r["attributes"]["user.id"]).items()
    }
    out = run(
        data, breakdowns=["user.id"], havings=[{"calculate_op": "COUNT", "op": ">", "value": 100}]
    )
    assert {r["user.id"]: r["COUNT"] for r in out.results} == {
        u: c for u, c in counts.items() if c > 100
    }
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    out = run(data, breakdowns=["user.id"], limit=5)  # default: first calculation descending
    assert [(r["user.id"], r["COUNT"]) for r in out.results] == ordered[:5]
    assert {s["user.id"] for s in out.series} == {u for u, _ in ordered[:5]}
    out = run(
        data, breakdowns=["user.id"], orders=[{"column": "user.id", "order": "descending"}], limit=3
    )
    assert [r["user.id"] for r in out.results] == sorted(counts, reverse=True)[:3]
    out = run(data, breakdowns=["user.id"], orders=[{"op": "COUNT"}], limit=2)
    assert [r["COUNT"] for r in out.results] == sorted(counts.values())[:2]


@pytest.mark.parametrize("op", ["COUNT_DISTINCT", "CONCURRENCY", "HEATMAP", "MIN"])
def test_a_lone_calculation_without_breakdowns_or_series(data, op):
    calc = {"op": op} if op == "CONCURRENCY" else {"op": op, "column": "duration_ms"}
    out = data.run({**WINDOW, "calculations": [calc]}, include_series=False)
    assert len(out.results) == 1 and out.series == []
    assert list(out.results[0]) == [calc["op"] if op == "CONCURRENCY" else f"{op}(duration_ms)"]


def test_limit_override_and_no_series(data):
    out = data.run({**WINDOW, "breakdowns": ["user.id"]}, include_series=False, limit=7)
    assert len(out.results) == 7 and out.series == []


def test_dataset_scope(tmp_path):
    fx = Fixture(DuckDBStore(tmp_path / "s.duckdb"))
    fx.add([{"ts_ns": (T0_S + 1) * NS, "dur_ns": 5, "attributes": {}}] * 3, dataset_id=1)
    fx.add([{"ts_ns": (T0_S + 1) * NS, "dur_ns": 5, "attributes": {}}] * 2, dataset_id=2)
    assert fx.run(WINDOW, scope=Scope(1, (2,))).results[0]["COUNT"] == 2
    assert fx.run(WINDOW, scope=Scope(1, None)).results[0]["COUNT"] == 5
    assert fx.run(WINDOW, scope=Scope(1, ())).results == []
    fx.store.close()


def test_empty_window_has_no_rows(data):
    out = data.run({"start_time": 1, "end_time": 100, "breakdowns": ["service.name"]})
    assert out.results == [] and out.series == []


def test_null_breakdown_values_form_a_group(data):
    out = run(data, breakdowns=["cache.hit"])
    groups = {r["cache.hit"]: r["COUNT"] for r in out.results}
    rows = visible(data)
    assert groups[None] == sum(r["samplerate"] for r in rows if "cache.hit" not in r["attributes"])
    assert sum(groups.values()) == sum(r["samplerate"] for r in rows)
    assert not any(isinstance(k, float) and math.isnan(k) for k in groups)


def test_unit_weight_scope_counts_rows_and_mixed_scope_stays_weighted(tmp_path, monkeypatch):
    """Where no row in the query's scope is sampled the engine counts instead of summing
    weights (a zone-map probe of the scope decides, filters left out); the answers must not
    change either way."""
    from tracehive.storage.duckdb import query as query_mod

    decided: list[bool] = []
    probe = query_mod._unit_weights

    def spy(con, plan):
        decided.append(probe(con, plan))
        return decided[-1]

    monkeypatch.setattr(query_mod, "_unit_weights", spy)
    store = DuckDBStore(tmp_path / "store.duckdb")
    fx = Fixture(store)
    rows = _rows(1500, seed=11)
    unit = [{**r, "samplerate": 1} for r in rows[:700]]
    fx.add(unit, dataset_id=1)
    fx.add(rows[700:], dataset_id=2)  # samplerates 1, 2 and 5
    calcs = [
        {"op": "COUNT"},
        {"op": "SUM", "column": "duration_ms"},
        {"op": "AVG", "column": "ratio"},
        {"op": "P90", "column": "duration_ms"},
        {"op": "HEATMAP", "column": "duration_ms"},
    ]
    sampled_only = [{"column": "samplerate", "op": ">", "value": 1}]
    cases = [
        (Scope(1, (1,)), [], True, unit),
        (Scope(1, None), [], False, fx.rows),
        (Scope(1, (2,)), [{"column": "samplerate", "op": "=", "value": 1}], False, None),
        (Scope(1, (1,)), sampled_only, True, []),
    ]
    try:
        for scope, flt, unit_path, expect_rows in cases:
            out = fx.run({**WINDOW, "calculations": calcs, "filters": flt}, scope=scope)
            assert decided[-1] is unit_path
            if expect_rows is None:
                expect_rows = [r for r in fx.rows if r["dataset_id"] == 2 and r["samplerate"] == 1]
            lo, hi = T0_S * NS, (T0_S + 3600) * NS
            expect_rows = [r for r in expect_rows if lo <= r["ts_ns"] < hi]
            if not expect_rows:
                assert out.results == []
                continue
            (row,) = out.results
            spans = [r for r in expect_rows if r["dur_ns"] is not None]
            weights = [r["samplerate"] for r in spans]
            assert row["COUNT"] == sum(r["samplerate"] for r in expect_rows)
            assert row["SUM(duration_ms)"] == pytest.approx(
                sum(ms(r) * r["samplerate"] for r in spans), rel=1e-9
            )
            ratios = [
                (r["attributes"]["ratio"], r["samplerate"])
                for r in expect_rows
                if "ratio" in r["attributes"]
            ]
            assert row["AVG(ratio)"] == pytest.approx(
                sum(v * w for v, w in ratios) / sum(w for _, w in ratios), rel=1e-9
            )
            assert row["P90(duration_ms)"] == pytest.approx(
                wpercentile([ms(r) for r in spans], weights, 0.9), rel=1e-12
            )
            buckets = row["HEATMAP(duration_ms)"]["buckets"]
            assert sum(b["count"] for b in buckets) == sum(weights)
    finally:
        store.close()
