"""OTLP/JSON: the same requests decode exactly as their protobuf form (hypothesis, via
``MessageToDict`` with ids turned into hex, which is what OTLP/JSON is); lenient where the spec
says receivers should be, strict with a path everywhere else."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from otlp_requests import (
    attributes,
    attrs_to_pb,
    batch_rows,
    log_request_to_pb,
    log_requests,
    to_otlp_json,
    trace_request_to_pb,
    trace_requests,
)

from tracehive.ingest.otlp import DecodeError, decode_logs, decode_metrics, decode_traces_py

NOW = 1_700_000_000_000_000_000
HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_styles = st.fixed_dictionaries(
    {"snake_case": st.booleans(), "int_enums": st.booleans(), "numbers": st.booleans()}
)
# 64-bit integer fields (both spellings): MessageToDict writes them as strings.
_INT64_FIELDS = {
    "startTimeUnixNano",
    "endTimeUnixNano",
    "timeUnixNano",
    "observedTimeUnixNano",
    "intValue",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "time_unix_nano",
    "observed_time_unix_nano",
    "int_value",
    "asInt",
    "as_int",
    "count",
    "zeroCount",
    "zero_count",
    "bucketCounts",
    "bucket_counts",
}


def _numbers(node):
    """64-bit ints as JSON numbers instead of strings (OTLP/JSON allows both)."""
    if isinstance(node, list):
        return [_numbers(x) for x in node]
    if isinstance(node, dict):
        return {k: _ints(v) if k in _INT64_FIELDS else _numbers(v) for k, v in node.items()}
    return node


def _ints(v):
    return [int(x) for x in v] if isinstance(v, list) else int(v)


def _json_body(message, style) -> bytes:
    doc = to_otlp_json(message, snake_case=style["snake_case"], int_enums=style["int_enums"])
    return orjson.dumps(_numbers(doc) if style["numbers"] else doc)


# ---------------------------------------------------------------------------------------------
# JSON decodes exactly like protobuf


@HYP
@given(trace_requests, json_styles)
def test_traces_json_equals_protobuf(spec, style):
    request = trace_request_to_pb(spec)
    from_pb = decode_traces_py(request.SerializeToString(), "protobuf")
    from_json = decode_traces_py(_json_body(request, style), "json")
    assert batch_rows(from_json.events) == batch_rows(from_pb.events)
    assert from_json == from_pb


@HYP
@given(log_requests, json_styles)
def test_logs_json_equals_protobuf(spec, style):
    request = log_request_to_pb(spec)
    from_pb = decode_logs(request.SerializeToString(), "protobuf", now_ns=NOW)
    from_json = decode_logs(_json_body(request, style), "json", now_ns=NOW)
    assert from_json == from_pb


_u64 = st.integers(0, 2**64 - 1)
_doubles = st.floats(allow_nan=False)
_numbers_dp = st.builds(
    NumberDataPoint,
    attributes=attributes.map(attrs_to_pb),
    start_time_unix_nano=_u64,
    time_unix_nano=_u64,
    as_double=st.one_of(st.none(), _doubles),
)
_metric_kinds = st.one_of(
    st.builds(
        lambda dps: Metric(name="g", gauge=Gauge(data_points=dps)),
        st.lists(_numbers_dp, max_size=2),
    ),
    st.builds(
        lambda dps, t, m: Metric(
            name="s", unit="1", sum=Sum(data_points=dps, aggregation_temporality=t, is_monotonic=m)
        ),
        st.lists(
            st.builds(
                NumberDataPoint, time_unix_nano=_u64, as_int=st.integers(-(2**63), 2**63 - 1)
            ),
            max_size=2,
        ),
        st.integers(0, 2),
        st.booleans(),
    ),
    st.builds(
        lambda dps, t: Metric(
            name="h", histogram=Histogram(data_points=dps, aggregation_temporality=t)
        ),
        st.lists(
            st.builds(
                HistogramDataPoint,
                count=_u64,
                sum=st.one_of(st.none(), _doubles),
                bucket_counts=st.lists(_u64, max_size=3),
                explicit_bounds=st.lists(_doubles, max_size=2),
                min=st.one_of(st.none(), _doubles),
            ),
            max_size=2,
        ),
        st.integers(0, 2),
    ),
    st.builds(
        lambda dps: Metric(name="e", exponential_histogram=ExponentialHistogram(data_points=dps)),
        st.lists(
            st.builds(
                ExponentialHistogramDataPoint,
                count=_u64,
                scale=st.integers(-10, 20),
                zero_count=_u64,
                max=st.one_of(st.none(), _doubles),
                positive=st.builds(
                    ExponentialHistogramDataPoint.Buckets,
                    offset=st.integers(-(2**31), 2**31 - 1),
                    bucket_counts=st.lists(_u64, max_size=3),
                ),
            ),
            max_size=2,
        ),
    ),
    st.builds(
        lambda dps: Metric(name="q", summary=Summary(data_points=dps)),
        st.lists(
            st.builds(
                SummaryDataPoint,
                count=_u64,
                sum=_doubles,
                quantile_values=st.lists(
                    st.builds(SummaryDataPoint.ValueAtQuantile, quantile=_doubles, value=_doubles),
                    max_size=2,
                ),
            ),
            max_size=2,
        ),
    ),
    st.just(Metric(name="nothing")),
)
metric_requests = st.builds(
    lambda res, metrics: ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=attrs_to_pb(res)),
                scope_metrics=[ScopeMetrics(metrics=metrics)],
            )
        ]
    ),
    attributes,
    st.lists(_metric_kinds, max_size=4),
)


@HYP
@given(metric_requests, json_styles)
def test_metrics_json_equals_protobuf(request, style):
    from_pb = decode_metrics(request.SerializeToString(), "protobuf", "ds")
    from_json = decode_metrics(_json_body(request, style), "json", "ds")
    assert [repr(p) for p in from_json.metrics.points] == [repr(p) for p in from_pb.metrics.points]
    assert from_json.accepted == from_pb.accepted


# ---------------------------------------------------------------------------------------------
# what a hand-written OTLP/JSON client sends

TID, SID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"


def _span(**extra):
    return {
        "traceId": TID,
        "spanId": SID,
        "name": "GET",
        "startTimeUnixNano": "10",
        "endTimeUnixNano": 25,
        **extra,
    }


def _traces(*spans, resource=None):
    doc = {"resourceSpans": [{"resource": resource or {}, "scopeSpans": [{"spans": list(spans)}]}]}
    return decode_traces_py(orjson.dumps(doc), "json")


def test_a_curl_style_request():
    decoded = _traces(
        _span(
            kind=2,
            parentSpanId="",
            status={"code": 2, "message": "boom"},
            attributes=[
                {"key": "s", "value": {"stringValue": "x"}},
                {"key": "i", "value": {"intValue": "9007199254740993"}},
                {"key": "i2", "value": {"intValue": 5}},
                {"key": "f", "value": {"doubleValue": 1}},
                {"key": "nan", "value": {"doubleValue": "NaN"}},
                {"key": "inf", "value": {"doubleValue": "-Infinity"}},
                {"key": "b", "value": {"boolValue": False}},
                {"key": "raw", "value": {"bytesValue": "_-8"}},  # URL-safe, unpadded
                {"key": "arr", "value": {"arrayValue": {"values": [{"intValue": "1"}, {}]}}},
                {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "a"}]}}},
                {"key": "null", "value": None},
                {"key": "unknown", "value": {"someFutureValue": 1}},
            ],
            events=[{"timeUnixNano": "12", "name": "exception", "unknownField": [1]}],
        ),
        resource={"attributes": [{"key": "service.name", "value": {"stringValue": "curl"}}]},
    )
    span, event = batch_rows(decoded.events)
    assert span["trace_id"] == bytes.fromhex(TID) and span["span_id"] == int(SID, 16)
    assert (span["ts_ns"], span["dur_ns"], span["kind"], span["dataset"]) == (
        10,
        15,
        "server",
        "curl",
    )
    assert (span["status_code"], span["status_message"], span["error"]) == (2, "boom", True)
    assert span["attributes"] == {
        ("s", "s"): "x",
        ("i", "i"): 9007199254740993,
        ("i2", "i"): 5,
        ("f", "f"): 1.0,
        ("inf", "f"): -math.inf,
        ("b", "b"): False,
        ("raw", "s"): "/+8=",
        ("arr", "s"): "[1,null]",
        ("kv", "s"): '{"a":null}',
    }
    assert (event["ts_ns"], event["error"], event["parent_id"]) == (12, True, int(SID, 16))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([{"intValue": "20"}], 20),
        ([{"intValue": 0}], 1),
        ([{"intValue": "-4"}], 1),
        ([{"stringValue": "20"}], 1),
        ([{"intValue": 5}, {"doubleValue": "NaN"}], 5),
        ([{"intValue": 5}, {"boolValue": True}], 1),
    ],
)
def test_sample_rate(values, expected):
    attrs = [{"key": "SampleRate", "value": v} for v in values]
    (row,) = batch_rows(_traces(_span(attributes=attrs)).events)
    assert row["samplerate"] == expected


def test_snake_case_enum_names_and_upper_hex():
    doc = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "scope": {"name": "lib"},
                        "spans": [
                            {
                                "trace_id": TID.upper(),
                                "span_id": SID,
                                "parent_span_id": SID.upper(),
                                "kind": "SPAN_KIND_CONSUMER",
                                "start_time_unix_nano": 1,
                                "end_time_unix_nano": "3",
                                "status": {"code": "STATUS_CODE_OK"},
                            }
                        ],
                    }
                ]
            }
        ]
    }
    (row,) = batch_rows(decode_traces_py(orjson.dumps(doc), "json").events)
    assert (row["trace_id"], row["parent_id"]) == (bytes.fromhex(TID), int(SID, 16))
    assert (row["kind"], row["status_code"], row["dur_ns"], row["library_name"]) == (
        "consumer",
        1,
        2,
        "lib",
    )


def test_ids_that_are_not_hex():
    decoded = _traces(
        _span(traceId="zz" * 16),  # not hex: rejected like a wrong-length id
        _span(spanId=SID[:-1]),  # odd length
        _span(traceId="AAECAwQFBgcICQoLDA0ODw=="),  # base64 (a common client mistake)
        _span(
            parentSpanId="not hex!",
            links=[{"traceId": "x", "spanId": SID}, {"traceId": TID, "spanId": SID}],
        ),
    )
    assert (decoded.accepted, decoded.rejected) == (1, 3)
    assert decoded.error_message == "3 spans rejected: invalid trace_id or span_id"
    span, link = batch_rows(decoded.events)
    assert span["parent_id"] is None and link["signal"] == "link"


@pytest.mark.parametrize(
    "bad",
    [
        {"events": [{"timeUnixNano": "soon"}]},
        {"links": [{"traceId": TID, "spanId": SID, "attributes": [{"key": 1}]}]},
        {"attributes": [{"key": "a", "value": {"boolValue": "yes"}}]},
    ],
)
def test_a_rejected_span_is_still_checked(bad):
    """Type errors are errors whether or not the span's ids are usable (as in protobuf, where
    the whole payload fails to parse)."""
    with pytest.raises(DecodeError):
        _traces(_span(traceId="", **bad))
    with pytest.raises(DecodeError):
        _traces(_span(**bad))


def test_empty_documents():
    for body in (b"{}", b'{"resourceSpans": null}', b'{"resourceSpans": []}'):
        decoded = decode_traces_py(body, "json")
        assert (decoded.events.n, decoded.accepted, decoded.rejected) == (0, 0, 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "payload is not valid JSON"),
        (b"[]", "payload is not a JSON object"),
        (b'{"resourceSpans": {}}', "resourceSpans: not a list"),
        (b'{"resourceSpans": [1]}', "resourceSpans[0]: not an object"),
        (
            b'{"resourceSpans":[{"scopeSpans":[{},{"spans":[{},{},{},{"startTimeUnixNano":"abc"}]}]}]}',
            "resourceSpans[0].scopeSpans[1].spans[3].startTimeUnixNano: not an unsigned 64-bit",
        ),
        (
            b'{"resourceSpans":[{"scopeSpans":[{"spans":["x"]}]}]}',
            "resourceSpans[0].scopeSpans[0].spans[0]: not an object",
        ),
        (
            b'{"resourceSpans":[{"resource":{"attributes":3}}]}',
            "resourceSpans[0].resource.attributes: not a list",
        ),
        (
            b'{"resourceSpans":[{"scopeSpans":[{"scope":{"name":1}}]}]}',
            "resourceSpans[0].scopeSpans[0].scope.name: not a string",
        ),
        (b'{"resourceSpans":[{"scopeSpans":{}}]}', "resourceSpans[0].scopeSpans: not a list"),
    ],
)
def test_structural_errors_name_the_path(body, message):
    with pytest.raises(DecodeError) as info:
        decode_traces_py(body, "json")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("span", "message"),
    [
        ({"startTimeUnixNano": "-1"}, "startTimeUnixNano: not an unsigned 64-bit integer"),
        ({"startTimeUnixNano": "18446744073709551616"}, "startTimeUnixNano: not an unsigned"),
        ({"startTimeUnixNano": 1.5}, "startTimeUnixNano: not an unsigned"),
        ({"startTimeUnixNano": True}, "startTimeUnixNano: not an unsigned"),
        ({"startTimeUnixNano": "1_000"}, "startTimeUnixNano: not an unsigned"),
        ({"traceId": 5}, "traceId: not a string"),
        ({"name": ["x"]}, "name: not a string"),
        ({"kind": "SPAN_KIND_NOPE"}, "kind: not an enum value"),
        ({"kind": 2**31}, "kind: not an enum value"),
        ({"status": []}, "status: not an object"),
        ({"status": {"message": 3}}, "message: not a string"),
        ({"attributes": [3]}, "attributes[0]: not an object"),
        ({"attributes": [{"key": 3}]}, "attributes[0].key: not a string"),
        ({"attributes": [{"key": "a", "value": 3}]}, "attributes[0].value: not an object"),
        (
            {"attributes": [{"key": "a", "value": {"intValue": "x"}}]},
            "attributes[0].value.intValue: not a 64-bit integer",
        ),
        (
            {"attributes": [{"key": "a", "value": {"intValue": str(2**63)}}]},
            "attributes[0].value.intValue: not a 64-bit integer",
        ),
        (
            {"attributes": [{"key": "a", "value": {"stringValue": 1}}]},
            "attributes[0].value.stringValue: not a string",
        ),
        (
            {"attributes": [{"key": "a", "value": {"doubleValue": "nan"}}]},
            "attributes[0].value.doubleValue: not a number",
        ),
        (
            {"attributes": [{"key": "a", "value": {"bytesValue": "***"}}]},
            "attributes[0].value.bytesValue: not base64",
        ),
        (
            {"attributes": [{"key": "a", "value": {"stringValue": "x", "intValue": 1}}]},
            "attributes[0].value: more than one",
        ),
        (
            {
                "attributes": [
                    {"key": "a", "value": {"arrayValue": {"values": [{}, {"boolValue": 1}]}}}
                ]
            },
            "attributes[0].value.arrayValue.values[1].boolValue: not a boolean",
        ),
        (
            {
                "attributes": [
                    {"key": "a", "value": {"kvlistValue": {"values": [{"key": "k", "value": 2}]}}}
                ]
            },
            "attributes[0].value.kvlistValue.values[0].value: not an object",
        ),
        (
            {"attributes": [{"key": "a", "value": {"arrayValue": []}}]},
            "attributes[0].value.arrayValue: not an object",
        ),
        ({"events": [{"timeUnixNano": "x"}]}, "events[0].timeUnixNano: not an unsigned"),
        ({"events": [{}, {"attributes": {}}]}, "events[1].attributes: not a list"),
        ({"links": [{"spanId": 1}]}, "links[0].spanId: not a string"),
    ],
)
def test_value_errors_name_the_path(span, message):
    prefix = "resourceSpans[0].scopeSpans[0].spans[0]."
    with pytest.raises(DecodeError) as info:
        _traces(_span(**span))
    assert str(info.value).startswith(prefix + message), str(info.value)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {
                "resourceLogs": [
                    {"scopeLogs": [{"logRecords": [{"body": {"kvlistValue": {"values": [1]}}}]}]}
                ]
            },
            "resourceLogs[0].scopeLogs[0].logRecords[0].body.kvlistValue.values[0]: not an object",
        ),
        (
            {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": "LOUD"}]}]}]},
            "resourceLogs[0].scopeLogs[0].logRecords[0].severityNumber: not an enum value",
        ),
        (
            {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"observedTimeUnixNano": []}]}]}]},
            "resourceLogs[0].scopeLogs[0].logRecords[0].observedTimeUnixNano: not an unsigned",
        ),
    ],
)
def test_log_errors_name_the_path(doc, message):
    with pytest.raises(DecodeError) as info:
        decode_logs(orjson.dumps(doc), "json")
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            {"sum": {"dataPoints": [{"asInt": "1.5"}]}},
            "metrics[0].sum.dataPoints[0].asInt: not a 64-bit integer",
        ),
        (
            {"sum": {"dataPoints": [{"asInt": 1, "asDouble": 2}]}},
            "metrics[0].sum.dataPoints[0]: both asDouble",
        ),
        ({"gauge": {}, "sum": {}}, "metrics[0]: more than one of"),
        (
            {"histogram": {"dataPoints": [{"bucketCounts": ["-1"]}]}},
            "metrics[0].histogram.dataPoints[0].bucketCounts[0]: not an unsigned",
        ),
        (
            {"histogram": {"aggregationTemporality": "SOMETIMES"}},
            "metrics[0].histogram.aggregationTemporality: not an enum",
        ),
        (
            {"exponentialHistogram": {"dataPoints": [{"positive": {"offset": 2**31}}]}},
            "metrics[0].exponentialHistogram.dataPoints[0].positive.offset: not a 32-bit",
        ),
        (
            {"summary": {"dataPoints": [{"quantileValues": [{"quantile": "x"}]}]}},
            "metrics[0].summary.dataPoints[0].quantileValues[0].quantile: not a number",
        ),
    ],
)
def test_metric_errors_name_the_path(metric, message):
    doc = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]}
    with pytest.raises(DecodeError) as info:
        decode_metrics(orjson.dumps(doc), "json", "ds")
    assert str(info.value).startswith("resourceMetrics[0].scopeMetrics[0]." + message), str(
        info.value
    )


def test_log_ids_and_times_in_json():
    doc = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "traceId": "nothex",
                                "spanId": SID,
                                "observedTimeUnixNano": "7",
                                "body": {"bytesValue": "aGk="},
                            },
                            {"traceId": TID, "spanId": "00" * 8},
                        ]
                    }
                ]
            }
        ]
    }
    first, second = batch_rows(decode_logs(orjson.dumps(doc), "json", now_ns=NOW).events)
    assert (first["trace_id"], first["span_id"], first["ts_ns"]) == (None, int(SID, 16), 7)
    assert first["body"] == '"aGk="'
    assert (second["trace_id"], second["span_id"], second["ts_ns"]) == (
        bytes.fromhex(TID),
        None,
        NOW,
    )
