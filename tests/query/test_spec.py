"""Query Specification parsing: valid specs, each rejection naming its field, echo round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracehive.query.spec import (
    CALC_OPS,
    FILTER_OPS,
    Calculation,
    QuerySpec,
    SpecError,
    parse_spec,
)

EXAMPLE = {  # PROTOCOLS.md §7.5
    "calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}],
    "filters": [{"column": "http.status_code", "op": ">=", "value": 500}],
    "breakdowns": ["http.route"],
    "orders": [{"op": "COUNT", "order": "descending"}],
    "havings": [{"calculate_op": "COUNT", "op": ">", "value": 10}],
    "time_range": 3600,
    "granularity": 60,
    "limit": 100,
}


def test_example_parses_and_echoes_unchanged():
    spec = parse_spec(EXAMPLE)
    assert spec.calculations[1] == Calculation("P99", "duration_ms")
    assert spec.to_json() == EXAMPLE
    assert parse_spec(spec.to_json()) == spec


def test_empty_spec_defaults_to_count_over_two_hours():
    spec = parse_spec({})
    assert spec.calculations == (Calculation("COUNT"),)
    assert spec.window(10_000) == (10_000 - 7200, 10_000)
    assert spec.to_json() == {"calculations": [{"op": "COUNT"}], "time_range": 7200}


def test_filter_combination_and_is_omitted_or_is_kept():
    assert "filter_combination" not in parse_spec({"filter_combination": "AND"}).to_json()
    assert parse_spec({"filter_combination": "OR"}).to_json()["filter_combination"] == "OR"


@pytest.mark.parametrize("op", CALC_OPS)
def test_every_calculation_op(op):
    calc = {"op": op} if op in ("COUNT", "CONCURRENCY") else {"op": op, "column": "x"}
    spec = parse_spec({"calculations": [calc]})
    assert spec.calculations[0].key == (op if "column" not in calc else f"{op}(x)")


@pytest.mark.parametrize("op", FILTER_OPS)
def test_every_filter_op(op):
    value = {"exists": None, "does-not-exist": None, "in": ["a", 1], "not-in": ["b"]}.get(op, "v")
    f = {"column": "c", "op": op}
    if value is not None:
        f["value"] = value
    spec = parse_spec({"filters": [f]})
    assert spec.to_json()["filters"] == [f]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], None),
        ({"nope": 1}, "nope"),
        ({"calculations": {}}, "calculations"),
        ({"calculations": [{"op": "P42", "column": "x"}]}, "calculations[0].op"),
        ({"calculations": [{"op": "COUNT"}, {"op": "SUM"}]}, "calculations[1].column"),
        ({"calculations": [{"op": "COUNT", "column": "x"}]}, "calculations[0].column"),
        ({"calculations": [{"op": "COUNT"}, {"op": "COUNT"}]}, "calculations[1]"),
        (
            {"calculations": [{"op": "COUNT", "name": "a"}], "breakdowns": ["a"]},
            "calculations[0].name",
        ),
        ({"calculations": [{"op": "COUNT", "extra": 1}]}, "calculations[0].extra"),
        ({"filters": [{"column": "c", "op": "=="}]}, "filters[0].op"),
        ({"filters": [{"column": "c", "op": "="}]}, "filters[0].value"),
        ({"filters": [{"column": "c", "op": "exists", "value": 1}]}, "filters[0].value"),
        ({"filters": [{"column": "c", "op": "in", "value": "a,b"}]}, "filters[0].value"),
        ({"filters": [{"column": "c", "op": "in", "value": [[1]]}]}, "filters[0].value[0]"),
        ({"filters": [{"column": "", "op": "exists"}]}, "filters[0].column"),
        ({"filters": [{"column": "c", "op": "=", "value": {"a": 1}}]}, "filters[0].value"),
        ({"filter_combination": "XOR"}, "filter_combination"),
        ({"breakdowns": ["a", "a"]}, "breakdowns[1]"),
        ({"breakdowns": [1]}, "breakdowns[0]"),
        ({"breakdowns": ["b"] * 101}, "breakdowns"),
        ({"orders": [{"op": "P90", "column": "d"}]}, "orders[0]"),
        ({"orders": [{"column": "nope"}]}, "orders[0]"),
        ({"orders": [{"op": "COUNT", "order": "up"}]}, "orders[0].order"),
        ({"orders": [{}]}, "orders[0]"),
        (
            {
                "calculations": [{"op": "HEATMAP", "column": "d"}],
                "orders": [{"op": "HEATMAP", "column": "d"}],
            },
            "orders[0].op",
        ),
        ({"havings": [{"calculate_op": "COUNT", "op": ">", "value": "1"}]}, "havings[0].value"),
        (
            {"havings": [{"calculate_op": "AVG", "column": "d", "op": ">", "value": 1}]},
            "havings[0]",
        ),
        ({"havings": [{"calculate_op": "COUNT", "op": "~", "value": 1}]}, "havings[0].op"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": True}, "limit"),
        ({"time_range": 0}, "time_range"),
        ({"time_range": 10, "start_time": 5, "end_time": 100}, "time_range"),
        ({"start_time": 100, "end_time": 100}, "end_time"),
        ({"time_range": 7200, "granularity": 7}, "granularity"),
        ({"time_range": 7200, "granularity": 7201}, "granularity"),
        ({"calculated_fields": [{"name": "a", "expression": "1"}]}, "calculated_fields"),
        ({"formulas": [{"name": "a", "expression": "1"}]}, "formulas"),
        ({"compare_time_offset_seconds": 5}, "compare_time_offset_seconds"),
        ({"usage_mode": "yes"}, "usage_mode"),
    ],
)
def test_rejections_name_the_field(body, field):
    with pytest.raises(SpecError) as info:
        parse_spec(body)
    assert info.value.field == field
    if field:
        assert str(info.value).startswith(field)


def test_orders_and_havings_resolve_against_calculations():
    spec = parse_spec(
        {
            "calculations": [{"op": "P90", "column": "d", "name": "p"}, {"op": "COUNT"}],
            "breakdowns": ["svc"],
            "orders": [
                {"column": "p", "order": "descending"},
                {"column": "svc"},
                {"op": "P90", "column": "d"},
            ],
            "havings": [{"calculate_op": "P90", "column": "d", "op": "<", "value": 2.5}],
        }
    )
    assert [o.descending for o in spec.orders] == [True, False, False]
    assert parse_spec(spec.to_json()) == spec


def test_time_combinations():
    assert parse_spec({"start_time": 100, "time_range": 50}).window(0) == (100, 150)
    assert parse_spec({"end_time": 1000, "time_range": 50}).window(0) == (950, 1000)
    spec = parse_spec({"start_time": 100, "end_time": 400})
    assert spec.window(0) == (100, 400) and spec.time_range is None
    assert "time_range" not in spec.to_json()
    assert parse_spec(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("time_range", "step"), [(600, 5), (7200, 60), (86400, 900), (604800, 7200)]
)
def test_automatic_granularity_is_a_nice_step_near_a_hundredth(time_range, step):
    assert parse_spec({"time_range": time_range}).step_s() == step


def test_calculation_local_filters_round_trip():
    body = {
        "calculations": [
            {
                "op": "COUNT",
                "name": "errors",
                "filters": [{"column": "error", "op": "=", "value": True}],
            }
        ]
    }
    spec = parse_spec(body)
    assert spec.calculations[0].filters[0].value is True
    assert spec.to_json()["calculations"] == body["calculations"]


def test_echoed_spec_with_id_is_accepted():
    spec = parse_spec({**EXAMPLE, "id": "abc"})
    assert "id" not in spec.to_json()


# -- fuzz -------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "calculations",
        "filters",
        "filter_combination",
        "breakdowns",
        "orders",
        "havings",
        "limit",
        "time_range",
        "start_time",
        "end_time",
        "granularity",
        "usage_mode",
        "formulas",
    ]
)
op_values = st.sampled_from([*CALC_OPS, *FILTER_OPS, "AND", "OR", "ascending", "descending"])
plausible = st.dictionaries(
    field_names,
    st.recursive(
        json_values | op_values,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["op", "column", "value", "order", "calculate_op", "name"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    ),
    max_size=6,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, plausible))
def test_fuzz_parse_spec_returns_a_spec_or_a_spec_error(value):
    try:
        spec = parse_spec(value)
    except SpecError as exc:
        assert str(exc)
        return
    assert isinstance(spec, QuerySpec)
    echoed = spec.to_json()
    json.dumps(echoed)  # serializable
    assert parse_spec(echoed) == spec
