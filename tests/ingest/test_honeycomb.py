"""ingest.honeycomb: the events API decoder (PROTOCOLS.md §7.2, §7.3)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracehive.ingest.honeycomb import (
    MAX_SLOTS,
    MSG_EMPTY,
    MSG_MALFORMED,
    MSG_STRING_TOO_LONG,
    MSG_TOO_MANY_COLUMNS,
    MSG_TOO_WIDE,
    EventError,
    decode_batch,
    decode_event,
    parse_event_time,
    parse_samplerate,
)
from tracehive.model.batch import EventBatch

NOW = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
S = 10**9


def event(data: Any, *, time: str | None = None, samplerate: str | None = None) -> EventBatch:
    batch = decode_event(orjson.dumps(data), "My Dataset", time, samplerate, NOW)
    batch.check()
    return batch


def row(data: dict, **kw: Any) -> dict:
    batch = event(data, **kw)
    assert batch.n == 1
    return batch.row(0)


# --- single events: mapping ---------------------------------------------------------------------


def test_well_known_fields_go_to_fixed_columns() -> None:
    r = row(
        {
            "duration_ms": 12.5,
            "trace.trace_id": "0af7651916cd43dd8448eb211c80319c",
            "trace.span_id": "b7ad6b7169203331",
            "trace.parent_id": "00f067aa0ba902b7",
            "name": "GET /cart",
            "service.name": "checkout",
            "error": True,
            "status_code": 2,
            "status_message": "boom",
            "span.kind": "server",
            "http.route": "/cart",
        }
    )
    assert r["dataset"] == "My Dataset"
    assert r["signal"] == "event"
    assert r["ts_ns"] == NOW
    assert r["samplerate"] == 1
    assert r["dur_ns"] == 12_500_000
    assert r["trace_id"] == bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    assert r["span_id"] == 0xB7AD6B7169203331
    assert r["parent_id"] == 0x00F067AA0BA902B7
    assert r["name"] == "GET /cart"
    assert r["service"] == "checkout"
    assert r["error"] is True
    assert r["status_code"] == 2
    assert r["status_message"] == "boom"
    assert r["kind"] == "server"
    assert r["attributes"] == {"http.route": "/cart"}


def test_integer_duration_and_xray_trace_id() -> None:
    r = row({"duration_ms": 3, "trace.trace_id": "1-5759e988-bd862e3fe1be46a994272793"})
    assert r["dur_ns"] == 3_000_000
    assert r["trace_id"] == bytes.fromhex("5759e988bd862e3fe1be46a994272793")


def test_zero_parent_id_means_root() -> None:
    r = row({"trace.parent_id": "0000000000000000"})
    assert r["parent_id"] is None
    assert r["attributes"] == {}


@pytest.mark.parametrize("kind", ["span_event", "link"])
def test_annotation_type_sets_signal(kind: str) -> None:
    assert row({"meta.annotation_type": kind})["signal"] == kind


def test_service_name_alias() -> None:
    assert row({"service_name": "billing"})["service"] == "billing"
    r = row({"service_name": "alias", "service.name": "real"})
    assert r["service"] == "real"
    assert r["attributes"] == {"service_name": "alias"}  # nothing is lost


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("duration_ms", "fast"),
        ("duration_ms", True),
        ("duration_ms", 1e300),  # overflows int64 nanoseconds
        ("trace.trace_id", "not-a-trace-id"),
        ("trace.trace_id", 42),
        ("trace.span_id", "xyz"),
        ("trace.parent_id", "123"),
        ("name", 5),
        ("service.name", ["a"]),
        ("error", "NullPointerException"),
        ("status_code", 500),  # HTTP-style, not an OTel status
        ("status_code", True),
        ("span.kind", 1),
        ("meta.annotation_type", "weird"),
    ],
)
def test_unconvertible_well_known_field_stays_attribute(field: str, value: Any) -> None:
    r = row({field: value})
    expected = value if not isinstance(value, list) else json.dumps(value, separators=(",", ":"))
    assert r["attributes"] == {field: expected}
    assert r["signal"] == "event"


def test_attribute_types() -> None:
    r = row(
        {
            "s": "text",
            "i": 7,
            "f": 1.5,
            "b": False,
            "null": None,
            "big": 2**64 - 1,
            "neg": -(2**63),
            "obj": {"a": [1, 2, {"b": None}]},
            "arr": [],
            "": "empty key",
        }
    )
    assert r["attributes"] == {
        "s": "text",
        "i": 7,
        "f": 1.5,
        "b": False,
        "big": str(2**64 - 1),  # outside int64: kept as text
        "neg": -(2**63),
        "obj": '{"a":[1,2,{"b":null}]}',
        "arr": "[]",
        "": "empty key",
    }
    batch = event({"i": 1, "j": "x"})
    assert ("i", "i") in batch.attrs and ("j", "s") in batch.attrs


# --- time and samplerate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T22:13:19.123456789Z", NOW - S + 123_456_789),
        ("2023-11-14T22:13:19.1234567891234Z", NOW - S + 123_456_789),
        ("2023-11-14T22:13:19.5z", NOW - S // 2),
        ("2023-11-15T00:13:20+02:00", NOW),
        ("2023-11-14T21:13:20-0100", NOW),
        ("2023-11-14 22:13:20", NOW),  # lenient: space, no zone = UTC
        ("1700000000", NOW),
        ("1699999999.25", NOW - S + S // 4),
        ("1.7e9", NOW),
        (" 1699999000 ", NOW - 1000 * S),
    ],
)
def test_event_time_header(header: str, expected: int) -> None:
    assert row({}, time=header)["ts_ns"] == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "yesterday",
        "2023-13-01T00:00:00Z",
        "2023-02-30T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "2023-11-14T22:13:20+99:99x",
        "nan",
        "inf",
        "1" * 40,  # far beyond int64 nanoseconds
        "2023-11-14T23:13:21Z",  # just over 1 h ahead: replaced by receive time
        str(NOW // S * 1000),  # epoch *milliseconds* read as seconds: far future -> now
    ],
)
def test_bad_or_future_time_becomes_now(header: str | None) -> None:
    assert row({}, time=header)["ts_ns"] == NOW


def test_time_up_to_one_hour_ahead_is_kept() -> None:
    assert row({}, time="2023-11-14T23:13:20Z")["ts_ns"] == NOW + 3600 * S


def test_parse_event_time_numbers() -> None:
    assert parse_event_time(1_700_000_000, NOW) == NOW
    assert parse_event_time(1_699_999_999.5, NOW) == NOW - S // 2
    assert parse_event_time(True, NOW) == NOW
    assert parse_event_time(0, NOW) == 0
    assert parse_event_time({"x": 1}, NOW) == NOW


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 1),
        ("10", 10),
        (" 10 ", 10),
        ("0", 1),
        ("-5", 1),
        ("abc", 1),
        ("1.5", 1),
        ("٣", 1),  # a non-ASCII digit is not a sample rate
        (10, 10),
        (10.9, 10),
        (0.5, 1),
        (True, 1),
        (2**40, 2**32 - 1),
        (float("inf"), 1),
    ],
)
def test_samplerate(value: Any, expected: int) -> None:
    assert parse_samplerate(value) == expected


def test_samplerate_header() -> None:
    assert row({}, samplerate="20")["samplerate"] == 20
    assert row({}, samplerate="bogus")["samplerate"] == 1


# --- single events: errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", MSG_EMPTY),
        (b"  \n", MSG_EMPTY),
        (b"{", MSG_MALFORMED),
        (b"[]", MSG_MALFORMED),
        (b'"text"', MSG_MALFORMED),
        (b"null", MSG_MALFORMED),
        (b"\xff\xfe", MSG_MALFORMED),
        (b'{"a": NaN}', MSG_MALFORMED),
    ],
)
def test_event_errors(body: bytes, message: str) -> None:
    with pytest.raises(EventError) as info:
        decode_event(body, "ds", None, None, NOW)
    assert info.value.message == message
    assert isinstance(info.value, ValueError)


def test_too_many_columns() -> None:
    ok = {f"f{i}": i for i in range(2000)}
    assert event(ok).n == 1
    with pytest.raises(EventError, match="too many columns") as info:
        event({**ok, "one_more": 1})
    assert info.value.message == MSG_TOO_MANY_COLUMNS


def test_string_limit_is_64_kib_of_utf8() -> None:
    assert event({"s": "a" * 65536}).n == 1
    assert event({"s": "€" * 21845}).n == 1  # 65535 bytes
    for value in ("a" * 65537, "€" * 21846):
        with pytest.raises(EventError) as info:
            event({"s": value})
        assert info.value.message == MSG_STRING_TOO_LONG
    with pytest.raises(EventError):
        event({"name": "n" * 70000})  # fixed columns too
    with pytest.raises(EventError):
        event({"nested": {"s": "x" * 70000}})  # and nested values once turned into JSON text


def test_too_deep_nesting_is_an_event_error() -> None:
    # orjson reads 1024 levels but writes only 254: a value we cannot store as JSON text.
    body = b'{"deep": ' + b"[" * 400 + b"1" + b"]" * 400 + b"}"
    with pytest.raises(EventError):
        decode_event(body, "ds", None, None, NOW)
    body = b'{"deep": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # beyond what orjson reads at all
    with pytest.raises(EventError):
        decode_event(body, "ds", None, None, NOW)


# --- batches ------------------------------------------------------------------------------------


def batch_of(items: Any) -> tuple[EventBatch, list[dict]]:
    batch, statuses = decode_batch(orjson.dumps(items), "ds", NOW)
    batch.check()
    return batch, statuses


def test_batch_statuses_in_input_order() -> None:
    batch, statuses = batch_of(
        [
            {"data": {"name": "a"}, "time": "2023-11-14T22:13:10Z", "samplerate": 5},
            "not an object",
            {"data": {"name": "b"}, "time": 1_699_999_990.5},
            {"time": 1},
            {"data": [1, 2]},
            {"data": {"s": "x" * 70000}},
            {"data": {f"f{i}": i for i in range(2001)}},
            {"data": {"name": "c"}, "samplerate": "bogus"},
            {"data": None},
        ]
    )
    assert statuses == [
        {"status": 202},
        {"status": 400, "error": MSG_MALFORMED},
        {"status": 202},
        {"status": 400, "error": MSG_EMPTY},
        {"status": 400, "error": MSG_MALFORMED},
        {"status": 400, "error": MSG_STRING_TOO_LONG},
        {"status": 400, "error": MSG_TOO_MANY_COLUMNS},
        {"status": 202},
        {"status": 400, "error": MSG_EMPTY},
    ]
    assert batch.n == 3
    assert batch.cols["name"] == ["a", "b", "c"]
    assert batch.cols["ts_ns"] == [NOW - 10 * S, NOW - 10 * S + S // 2, NOW]
    assert batch.cols["samplerate"] == [5, 1, 1]
    assert set(batch.cols["dataset"]) == {"ds"}
    assert all(a == [None] * 3 for (k, _), a in batch.attrs.items() if k.startswith("f"))


def test_batch_rejected_item_leaves_no_partial_row() -> None:
    batch, statuses = batch_of([{"data": {"a": 1, "b": "x" * 70000}}, {"data": {"c": 2}}])
    assert [s["status"] for s in statuses] == [400, 202]
    assert batch.n == 1
    assert batch.row(0)["attributes"] == {"c": 2}


def test_empty_batch() -> None:
    batch, statuses = batch_of([])
    assert batch.n == 0 and statuses == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", MSG_EMPTY),
        (b"{}", MSG_MALFORMED),
        (b'{"data": {}}', MSG_MALFORMED),
        (b"[", MSG_MALFORMED),
    ],
)
def test_batch_whole_body_errors(body: bytes, message: str) -> None:
    with pytest.raises(EventError) as info:
        decode_batch(body, "ds", NOW)
    assert info.value.message == message


# --- fuzzing ------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "duration_ms",
        "trace.trace_id",
        "trace.span_id",
        "trace.parent_id",
        "name",
        "service.name",
        "service_name",
        "error",
        "status_code",
        "status_message",
        "span.kind",
        "meta.annotation_type",
        "severity_number",
        "body",
    ]
) | st.text(max_size=10)
events = st.dictionaries(field_names, json_values, max_size=12)


def _encode(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        # Integers beyond 64 bits: stdlib json writes them; orjson then reads them as floats.
        return json.dumps(value).encode()


def _decodes_or_event_error(call: Any) -> None:
    try:
        result = call()
    except EventError:
        return
    batch = result[0] if isinstance(result, tuple) else result
    batch.check()


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(body=st.binary(max_size=300))
def test_fuzz_bytes(body: bytes) -> None:
    _decodes_or_event_error(lambda: decode_event(body, "ds", None, None, NOW))
    _decodes_or_event_error(lambda: decode_batch(body, "ds", NOW))


@_FUZZ
@given(value=json_values, time=st.none() | st.text(max_size=40), rate=st.none() | st.text())
def test_fuzz_any_json_event(value: Any, time: str | None, rate: str | None) -> None:
    body = _encode(value)
    _decodes_or_event_error(lambda: decode_event(body, "ds", time, rate, NOW))


@_FUZZ
@given(
    data=events,
    time=st.none()
    | st.text(max_size=40)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False),
)
def test_fuzz_event_objects(data: dict, time: Any) -> None:
    batch = decode_event(_encode(data), "ds", None, None, NOW)
    batch.check()
    assert batch.n == 1
    _, statuses = decode_batch(_encode([{"data": data, "time": time}]), "ds", NOW)
    assert statuses == [{"status": 202}]


@_FUZZ
@given(
    items=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "data": events | json_values,
                "time": json_values,
                "samplerate": json_values,
            },
        )
        | json_values,
        max_size=8,
    )
)
def test_fuzz_batches(items: list) -> None:
    try:
        batch, statuses = decode_batch(_encode(items), "ds", NOW)
    except EventError:
        pytest.fail("a JSON array must never fail as a whole")
    batch.check()
    assert len(statuses) == len(items)
    assert batch.n == sum(1 for s in statuses if s["status"] == 202)
    assert all(1 <= r <= 2**32 - 1 for r in batch.cols["samplerate"])
    assert all(-(2**63) <= t <= NOW + 3600 * S for t in batch.cols["ts_ns"])


def test_batch_of_one_off_names_is_refused_before_it_is_materialized() -> None:
    """names x events past MAX_SLOTS: the dense columns would take gigabytes (here 3,000 events
    of 20 names each, 60,000 names: 1.8 * 10^8 slots); refused whole, at once."""
    import time

    events = [{"data": {f"k{i}_{j}": j for j in range(20)}} for i in range(3000)]
    assert len(events) * 20 * len(events) > MAX_SLOTS
    t0 = time.perf_counter()
    with pytest.raises(EventError) as err:
        decode_batch(orjson.dumps(events), "ds", 0)
    assert str(err.value) == MSG_TOO_WIDE
    assert time.perf_counter() - t0 < 5
    # the same events with shared names are a normal batch
    shared = [{"data": {f"k{j}": i for j in range(20)}} for i in range(3000)]
    batch, statuses = decode_batch(orjson.dumps(shared), "ds", 0)
    assert batch.n == 3000 and statuses == [{"status": 202}] * 3000


def test_the_slot_limit_counts_a_column_per_value_type(monkeypatch) -> None:
    """A name whose values change type gets a column per type: the limit counts those columns
    (names x events would let four types through at 4x the memory)."""
    from tracehive.ingest import honeycomb

    monkeypatch.setattr(honeycomb, "MAX_SLOTS", 100)
    rotating = ["s", 1, 1.5, True]
    events = [{"data": {"a": rotating[i % 4], "b": rotating[(i + 1) % 4]}} for i in range(40)]
    with pytest.raises(EventError, match="too many distinct field names"):
        decode_batch(orjson.dumps(events), "ds", 0)
    plain = [{"data": {"a": i, "b": str(i)}} for i in range(40)]  # 2 columns x 40 = 80 slots
    batch, statuses = decode_batch(orjson.dumps(plain), "ds", 0)
    assert batch.n == 40 and statuses == [{"status": 202}] * 40
