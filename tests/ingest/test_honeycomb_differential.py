"""The events-API decoder against its reference: same EventBatch, same per-event errors.

``honeycomb_reference.py`` is the per-field decoder the columnar one replaced; on any input both
must give the same rows, the same typed columns (same Python types, same order), the same batch
statuses and the same ``EventError`` messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

import honeycomb_reference as ref
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracehive.ingest import honeycomb
from tracehive.model.batch import EventBatch

NOW = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z

# --- values -------------------------------------------------------------------------------------

# the header-like fields and every well-known field the decoders map onto a fixed column
WELL_KNOWN = ["time", "samplerate", *honeycomb._FIXED_FIELDS]
COMMON = ["http.route", "user.id", "count", "ratio", "flag", "payload", "", "ключ", "🐝"]

edge_ints = st.sampled_from(
    [
        *(0, 1, 2, 3, -1, 255, 256, 500, 2**31, 2**53 + 1),
        *(2**63 - 1, 2**63, 2**64 - 1, -(2**63)),
        *(9_223_372_036_854, 9_223_372_036_855, -9_223_372_036_855),  # duration_ms x 1e6 vs int64
    ]
)
edge_floats = st.sampled_from(
    [0.0, -0.0, 0.5, 1.5, 12.345, 1e-300, 1e300, 1.7e302, 1.8e302, 1e308, -1e308, 9.2e12, 1e13]
)
hex_chars = "0123456789abcdefABCDEF"
ids = st.one_of(
    st.text(hex_chars, min_size=32, max_size=32),
    st.text(hex_chars, min_size=16, max_size=16),
    st.sampled_from(
        [
            "0" * 32,
            "0" * 16,
            "1-5759e988-bd862e3fe1be46a994272793",
            " 0af7651916cd43dd8448eb211c80319c ",
            "0af7651916cd43dd8448eb211c80319c\n",
            "0af7 651916cd43dd8448eb211c80319c",
            "0af7 6519 16cd43dd8448eb211c8031",  # 32 characters, 15 bytes to fromhex
            "b7ad 6b71 692033",  # 16 characters, 7 bytes
            "b7ad6b71 9203331",
            "b7ad6b716920333g",
            "+7ad6b7169203331",
            "0x7ad6b716920333",
            "b7ad_b7169203331",
            "b7ad6b7169203331".upper(),
            "\u0663" * 16,
            "é" * 32,
        ]
    ),
    st.text(hex_chars + " -_x", min_size=14, max_size=36),
)
words = st.sampled_from(
    [
        "",
        "NaN",
        "nan",
        "inf",
        "-Infinity",
        "null",
        "true",
        "1e400",
        "span_event",
        "link",
        "server",
        "GET /cart",
        "0",
        "\u0663",
        "€",
        "🐝" * 3,
        "\x00",
    ]
)
long_strings = st.sampled_from(
    [
        "a" * 16384,
        "a" * 16385,
        "é" * 16385,  # 32,770 bytes: fine
        "€" * 21845,  # 65,535 bytes: fine
        "€" * 21846,  # 65,538 bytes: too long
        "a" * 65536,
        "a" * 65537,
    ]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(),  # beyond 64 bits: written by json, read back by orjson as floats
    edge_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    edge_floats,
    st.text(max_size=12),
    words,
    ids,
)
nested = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


values = st.one_of(
    scalars,
    scalars,
    scalars,
    nested,
    st.just([]),
    st.just({}),
    st.builds(_deep, st.sampled_from([250, 253, 254, 255, 400])),
    long_strings,
    st.builds(lambda s: {"nested": s}, long_strings),
)
keys = st.one_of(
    st.sampled_from(WELL_KNOWN),
    st.sampled_from(COMMON),
    st.text(max_size=6),
    st.text("ab", max_size=2),
)
events = st.dictionaries(keys, values, max_size=10)

# --- times and sample rates ---------------------------------------------------------------------

digits2 = st.integers(0, 99).map(lambda i: f"{i:02d}")
rfc3339 = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, ws, zone: (
        f"{y:04d}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{ws}{zone}"
    ),
    st.sampled_from([1969, 1970, 2023, 2024, 2262, 2263, 9999, 1]),
    st.sampled_from(["01", "02", "11", "12", "13", "00"]),
    st.sampled_from(["01", "14", "28", "29", "30", "31", "32"]),
    st.sampled_from(["T", "t", " ", "_"]),
    st.sampled_from(["00", "22", "23", "24"]),
    digits2,
    st.sampled_from(["00", "13", "20", "59", "60"]),
    st.sampled_from(
        [
            "",
            ".",
            ",5",
            ".1",
            ".123456",
            ".123456789",
            ".1234567891",
            ".1234567891234",
            ".12\u0663",
            ".x",
        ]
    ),
    st.sampled_from(["", " ", "\t"]),
    st.sampled_from(
        ["", "Z", "z", "+00:00", "-01:00", "+0200", "+99:99", "+1:00", "+02:00x", "Zz"]
    ),
)
times = st.one_of(
    st.none(),
    rfc3339,
    st.builds(lambda t: f" {t}\n", rfc3339),
    st.sampled_from(
        [
            "2023-11-14T22:13:20Z",
            "2023-11-14T23:13:20Z",
            "2023-11-14T23:13:21Z",
            "\uff12\uff10\uff12\uff13-11-14T22:13:20Z",  # fullwidth digits: \\d matches them
            "2023-11-14T22:13:20.\u0661\u0662\u0663Z",  # Arabic-Indic digits
            "1700000000",
            "1699999999.25",
            "1.7e9",
            "-5",
            "nan",
            "",
            "   ",
        ]
    ),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=25),
)
rates = st.one_of(
    st.none(),
    st.integers(min_value=-5, max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["10", " 10 ", "0", "-5", "abc", "1.5", "\u0663", ""]),
)
items = st.one_of(
    st.fixed_dictionaries({"data": events}, optional={"time": times, "samplerate": rates}),
    st.fixed_dictionaries({"data": events}, optional={"time": times, "samplerate": rates}),
    st.fixed_dictionaries({}, optional={"data": values, "time": times}),
    values,
)


def _encode(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        # Integers beyond 64 bits (stdlib json writes them) or nesting orjson will not write.
        return json.dumps(value).encode()


# --- comparison ---------------------------------------------------------------------------------


def _strict(values: list[Any]) -> list[tuple[str, str]]:
    """Values with their exact types (1, 1.0 and True are equal, and so are 0.0 and -0.0)."""
    return [(type(v).__name__, repr(v)) for v in values]


def assert_same_batch(got: EventBatch, want: EventBatch) -> None:
    got.check()
    # EventBatch.extend appends to every column: a list two columns shared would grow twice.
    lists = [*got.cols.values(), *got.attrs.values()]
    assert len({id(v) for v in lists}) == len(lists), "two columns share a list"
    assert got.n == want.n
    assert list(got.cols) == list(want.cols)
    for column, values in want.cols.items():
        assert _strict(got.cols[column]) == _strict(values), column
    assert list(got.attrs) == list(want.attrs)  # same columns, created in the same order
    for key, values in want.attrs.items():
        assert _strict(got.attrs[key]) == _strict(values), key


def run(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except (ref.EventError, honeycomb.EventError) as exc:
        return "error", exc.message


# The decoder's paths, each forced on every input: as configured (small batches event by event,
# larger ones as columns); columns even for one event; columns with every name that is not
# well-known handled event by event (the sparse-name path).
MODES: list[dict[str, int]] = [
    {},
    {"_COLUMNS_MIN": 0},
    {"_COLUMNS_MIN": 0, "_SPARSE_GATE": -1, "_SPARSE_RATIO": 10**9},
]


@contextmanager
def mode(patches: dict[str, int]) -> Iterator[None]:
    with ExitStack() as stack:
        for name, value in patches.items():
            assert hasattr(honeycomb, name), name
            stack.enter_context(mock.patch.object(honeycomb, name, value))
        yield


def assert_same_batch_decode(body: bytes) -> None:
    want = run(lambda: ref.decode_batch(body, "ds", NOW))
    for patches in MODES:
        with mode(patches):
            got = run(lambda: honeycomb.decode_batch(body, "ds", NOW))
        assert got[0] == want[0], (patches, got, want)
        if got[0] == "error":
            assert got[1] == want[1], patches
            continue
        (batch, statuses), (want_batch, want_statuses) = got[1], want[1]
        assert statuses == want_statuses, patches
        assert_same_batch(batch, want_batch)


def assert_same_event_decode(body: bytes, time: str | None, rate: str | None) -> None:
    want = run(lambda: ref.decode_event(body, "ds", time, rate, NOW))
    for patches in MODES:
        with mode(patches):
            got = run(lambda: honeycomb.decode_event(body, "ds", time, rate, NOW))
        assert got[0] == want[0], (patches, got, want)
        if got[0] == "error":
            assert got[1] == want[1], patches
        else:
            assert_same_batch(got[1], want[1])


_DIFF = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- the differential tests ---------------------------------------------------------------------


@_DIFF
@given(batch=st.lists(items, max_size=12))
def test_batch_matches_reference(batch: list) -> None:
    body = _encode(batch)
    assert_same_batch_decode(body)


@_DIFF
@given(
    shapes=st.lists(events, min_size=1, max_size=4),
    picks=st.lists(st.tuples(st.integers(0, 3), values, times, rates), min_size=1, max_size=40),
)
def test_batch_of_few_shapes_matches_reference(shapes: list[dict], picks: list) -> None:
    """Many events built from a few field sets, as real batches are: dense columns whose values
    vary in type from event to event, and names missing from some events."""
    batch = []
    for shape_index, value, time, rate in picks:
        data = dict(shapes[shape_index % len(shapes)])
        if data:  # one field per event takes a fresh value
            data[list(data)[shape_index % len(data)]] = value
        batch.append({"data": data, "time": time, "samplerate": rate})
    body = _encode(batch)
    assert_same_batch_decode(body)


@_DIFF
@given(
    columns=st.dictionaries(keys, st.lists(scalars, min_size=1, max_size=3), max_size=6),
    n=st.integers(1, 60),
)
def test_typed_columns_match_reference(columns: dict[str, list], n: int) -> None:
    """Columns of one field across many events, each cycling through a few values: the one-type
    fast paths, their edges (huge ints, ids, durations) and the mixes that leave them."""
    batch = [
        {"data": {k: vs[i % len(vs)] for k, vs in columns.items()}, "time": NOW // 10**9 - i}
        for i in range(n)
    ]
    assert_same_batch_decode(_encode(batch))


@_DIFF
@given(
    n=st.integers(9, 80),
    extra=st.lists(st.tuples(st.integers(0, 79), keys, values), max_size=30),
)
def test_sparse_names_match_reference(n: int, extra: list) -> None:
    """Mostly distinct names (the per-event path) next to names every event has."""
    batch: list[dict[str, Any]] = [
        {"data": {"name": f"span {i}", "duration_ms": i / 3, f"unique.{i}": i}} for i in range(n)
    ]
    for row, key, value in extra:
        batch[row % n]["data"][key] = value
    assert_same_batch_decode(_encode(batch))


@_DIFF
@given(data=events | values, time=st.none() | st.text(max_size=30) | rfc3339, rate=rates)
def test_single_event_matches_reference(data: Any, time: str | None, rate: Any) -> None:
    rate = rate if rate is None or isinstance(rate, str) else str(rate)
    assert_same_event_decode(_encode(data), time, rate)


@_DIFF
@given(body=st.binary(max_size=200))
def test_any_bytes_match_reference(body: bytes) -> None:
    assert_same_batch_decode(body)
    assert_same_event_decode(body, None, None)


@_DIFF
@given(value=times, now=st.sampled_from([NOW, 0, 2**63 - 1, -(2**62)]))
def test_event_times_match_reference(value: Any, now: int) -> None:
    event_time = honeycomb._event_times(now)
    assert event_time(value) == ref.parse_event_time(value, now)
    assert event_time(value) == ref.parse_event_time(value, now)  # cached the second time


valid_heads = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format,
    st.sampled_from([1970, 2023, 2262, 2263, 9999]) | st.integers(1, 9999),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
ZONES = ["", "Z", "z", "+00:00", "-01:00", "+0200", " Z", "+99:99", "Z ", " ", "+1:00", "x"]


@st.composite
def times_of_one_layout(draw: st.DrawFn) -> list[str]:
    """Times as one client writes them: the same layout, fraction widths fixed or not (Go cuts
    trailing zeros); now and then one that breaks the layout."""
    heads = draw(st.lists(valid_heads | rfc3339.map(lambda t: t[:19]), min_size=1, max_size=3))
    separator = draw(st.sampled_from([".", ".", ",", ""]))
    zone = draw(st.sampled_from(["Z", "+00:00"]) | st.sampled_from(ZONES))
    width = draw(st.none() | st.integers(0, 12))  # None: each its own width
    values = []
    for _ in range(draw(st.integers(2, 12))):
        w = draw(st.integers(0, 12)) if width is None else width
        digits = draw(st.text("0123456789", min_size=w, max_size=w))
        value = draw(st.sampled_from(heads)) + (separator + digits if separator else "") + zone
        if draw(st.integers(0, 10)) == 0:  # one character replaced, inserted or dropped
            at = draw(st.integers(0, len(value)))
            cut = draw(st.integers(0, 1))
            char = draw(st.sampled_from([" ", "\u0663", "5", "Z", ".", ",", "+", ""]))
            value = value[:at] + char + value[at + cut :]
        values.append(value)
    return values


@_DIFF
@given(values=times_of_one_layout(), now=st.sampled_from([NOW, 0, 2**63 - 1, -(2**62)]))
def test_batch_times_match_reference(values: list[str], now: int) -> None:
    assert honeycomb._batch_times(values, now) == [ref.parse_event_time(v, now) for v in values]


def test_batch_times_read_client_layouts_by_column() -> None:
    layouts = [
        "2023-11-14T22:13:19.{:06d}+00:00",  # libhoney-py
        "2023-11-14T22:13:19.{:03d}Z",  # libhoney-js
        "2023-11-14 22:13:19,{:d}",
        "2023-11-14T22:13:{:02d}Z",
        "2023-11-14T23:13:19.{:03d}+01:00",
        "2023-11-14T23:13:19.{:03d}-0100",
    ]
    for layout in layouts:
        values = [layout.format(i) for i in range(1, 60)]
        assert honeycomb._uniform_times(values, NOW) is not None, layout
        assert honeycomb._batch_times(values, NOW) == [ref.parse_event_time(v, NOW) for v in values]


@pytest.mark.parametrize(
    "values",
    [
        ["2023-11-14T22:13:20Z", "2023-11-14T22:13:205Z"],
        ["2023-11-14T22:13:20.1Z", "2023-11-14T22:13:20.\u0663Z"],
        ["2023-11-14T22:13:20.1Z", "2023-11-14T22:13:20.\u00b2Z"],  # a digit int() refuses
        ["2023-11-14T22:13:20.1Z", "2023-11-14T22:13:20.12"],
        ["2023-11-14T22:13:20.1Z", "2023-11-14T22:13:20.1Z "],
        ["2023-11-14T22:13:20.1Z ", "2023-11-14T22:13:20.1Z "],
        ["2023-11-14T22:13:20.1 Z", "2023-11-14T22:13:20.1 Z"],
        ["2023-11-14T22:13:20.1", "2023-11-14T22:13:20.1 "],
        ["2023-11-14T22:13:20.1", "2023-11-14T22:13:20x1"],
        ["2023-11-14T22:13:20", "2023-11-14T22:13:20", "2023-11-14T22:13:2"],
        ["2023-11-14T23:13:21.5Z", "2023-11-14T22:13:20.5Z"],  # past now + 1 h: now
        ["2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z"],  # int64 edge
    ],
)
def test_batch_times_edges_match_reference(values: list[str]) -> None:
    for now in (NOW, 2**63 - 1):
        want = [ref.parse_event_time(v, now) for v in values]
        assert honeycomb._batch_times(values, now) == want


# --- examples the strategies may miss -------------------------------------------------------------


@pytest.mark.parametrize(
    "batch",
    [
        [],
        [{"data": {}}],
        [{"data": {f"f{i}": i for i in range(2000)}}, {"data": {f"f{i}": i for i in range(2001)}}],
        [{"data": {"a": 1, "b": "x" * 70000}}, {"data": {"c": 2}}],
        # the first bad field in field order names the error
        [{"data": {"deep": _deep(300), "long": "x" * 70000}}],
        [{"data": {"long": "x" * 70000, "deep": _deep(300)}}],
        [{"data": {"long": "x" * 70000, "deep": _deep(300)}}, {"data": {"long": 1}}],
        # a column only rejected events had is not created
        [{"data": {"only_bad": 1, "s": "x" * 70000}}, {"data": {"other": 1}}],
        # service.name wins over service_name where it is a string
        [
            {"data": {"service_name": "a", "service.name": "b"}},
            {"data": {"service_name": "c", "service.name": 5}},
            {"data": {"service_name": "d"}},
            {"data": {"service_name": 7, "service.name": None}},
            {"data": {"service.name": "e", "service_name": 8}},
        ],
        [{"data": {"service_name": "a", "service.name": "b"}}] * 3,
        [{"data": {"service.name": "b"}}, {"data": {"service_name": "a"}}],
        # ids: zero, padded, X-Ray, missing in some events
        [
            {"data": {"trace.parent_id": "0" * 16, "trace.trace_id": "0" * 32}},
            {"data": {"trace.parent_id": "00f067aa0ba902b7"}},
            {"data": {"trace.trace_id": "1-5759e988-bd862e3fe1be46a994272793"}},
            {"data": {"trace.trace_id": " 0af7651916cd43dd8448eb211c80319c"}},
        ],
        # right length, but whitespace in place of hex digits (bytes.fromhex skips it)
        [{"data": {"trace.trace_id": "0af7 6519 16cd43dd8448eb211c8031"}}] * 2,
        [{"data": {"trace.span_id": "b7ad 6b71 692033", "trace.parent_id": "b7ad6b716920333 "}}],
        [{"data": {"trace.parent_id": p}} for p in ["b7ad 6b71 692033", None, "0" * 16]],
        # durations past int64 nanoseconds, as ints and floats
        [{"data": {"duration_ms": 9_223_372_036_855}}, {"data": {"duration_ms": 1.5}}],
        [{"data": {"duration_ms": 1.8e302}}, {"data": {"duration_ms": 1e13}}],
        [{"data": {"duration_ms": 2}}, {"data": {"duration_ms": 2.5}}, {"data": {}}],
        # status_code: an HTTP status is an attribute
        [{"data": {"status_code": 2}}, {"data": {"status_code": 500}}],
        [{"data": {"meta.annotation_type": "link"}}, {"data": {"meta.annotation_type": "x"}}],
        [{"data": {"x": 2**64 - 1}}, {"data": {"x": 1}}, {"data": {"x": "1"}}],
        [{"data": {"x": True}}, {"data": {"x": 1}}, {"data": {"x": 1.0}}, {"data": {"x": None}}],
        # sample rates: int64 ones past the store's UINTEGER, zero, none at all
        [{"data": {}, "samplerate": r} for r in (5, 2**32 - 1, 2**32, 2**40)],
        [{"data": {}, "samplerate": r} for r in (5, 0)],
        [{"data": {}, "samplerate": None}, {"data": {}}],
        [{"data": {}, "samplerate": r} for r in (True, 7.5, "8")],
    ],
)
def test_examples_match_reference(batch: list) -> None:
    assert_same_batch_decode(_encode(batch))
