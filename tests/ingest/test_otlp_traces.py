"""OTLP traces (protobuf): spans from the real OpenTelemetry SDK, hand-built edge cases, and a
hypothesis round trip against an independent model of the mapping (otlp_requests.py)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PB2Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.trace import Status as SdkStatus
from otlp_requests import (
    attrs_to_pb,
    batch_rows,
    expected_traces,
    trace_request_to_pb,
    trace_requests,
)

from tracehive.ingest import otlp
from tracehive.ingest.otlp import DecodeError, decode_traces, decode_traces_py


def _decode(request: ExportTraceServiceRequest) -> otlp.Decoded:
    decoded = decode_traces_py(request.SerializeToString(), "protobuf")
    assert decoded.metrics is None and decoded.events is not None
    decoded.events.check()
    return decoded


def _rows(request: ExportTraceServiceRequest) -> list[dict]:
    return batch_rows(_decode(request).events)


# ---------------------------------------------------------------------------------------------
# the real SDK


@pytest.fixture(scope="module")
def sdk_spans():
    exporter = InMemorySpanExporter()
    resource = Resource.create({"service.name": "checkout", "host.name": "web-1"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otlp", "1.2.3")
    with tracer.start_as_current_span("enqueue") as other:
        pass
    every_type = {
        "http.method": "GET",
        "http.status_code": 500,
        "retry": True,
        "ratio": 0.25,
        "tags": ["a", "b"],
        "ports": [80, 443],
        "flags": [True, False],
        "weights": [1.5, 2.0],
    }
    with tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER, attributes=every_type):
        link = Link(other.get_span_context(), {"link.kind": "follows"})
        with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, links=[link]) as child:
            child.add_event("cache miss", {"cache.key": "k1", "attempt": 2})
            try:
                raise ValueError("bad order id")
            except ValueError as exc:
                child.record_exception(exc)
            child.set_status(SdkStatus(StatusCode.ERROR, "db down"))
    provider.shutdown()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["enqueue", "SELECT", "GET /orders"]
    return spans


def test_sdk_spans_map_every_field(sdk_spans):
    request = encode_spans(sdk_spans)
    decoded = _decode(request)
    assert (decoded.accepted, decoded.rejected, decoded.error_message) == (3, 0, "")
    rows = batch_rows(decoded.events)
    assert [(r["signal"], r["name"]) for r in rows] == [
        ("span", "enqueue"),
        ("span", "SELECT"),
        ("span_event", "cache miss"),
        ("span_event", "exception"),
        ("link", None),
        ("span", "GET /orders"),
    ]
    enqueue, select, cache_miss, exception, link, root = rows
    resource = dict(sdk_spans[0].resource.attributes)
    assert resource["telemetry.sdk.language"] == "python"
    res_attrs = {(k, "s"): v for k, v in resource.items() if k != "service.name"}

    for row, span in ((enqueue, sdk_spans[0]), (select, sdk_spans[1]), (root, sdk_spans[2])):
        ctx = span.get_span_context()
        assert row["dataset"] == row["service"] == "checkout"
        assert row["trace_id"] == ctx.trace_id.to_bytes(16, "big")
        assert row["span_id"] == ctx.span_id
        assert row["parent_id"] == (span.parent.span_id if span.parent else None)
        assert row["ts_ns"] == span.start_time
        assert row["dur_ns"] == span.end_time - span.start_time > 0
        assert (row["library_name"], row["library_version"]) == ("tests.otlp", "1.2.3")
        assert row["samplerate"] == 1
        assert row["body"] is row["severity_text"] is row["severity_number"] is None
    assert root["parent_id"] is None and enqueue["parent_id"] is None
    assert select["parent_id"] == root["span_id"]
    assert select["trace_id"] == root["trace_id"] != enqueue["trace_id"]
    assert (root["kind"], select["kind"], enqueue["kind"]) == ("server", "client", "internal")
    assert (root["status_code"], root["status_message"], root["error"]) == (0, None, False)
    assert (select["status_code"], select["status_message"], select["error"]) == (
        2,
        "db down",
        True,
    )
    assert root["attributes"] == {
        **res_attrs,
        ("http.method", "s"): "GET",
        ("http.status_code", "i"): 500,
        ("retry", "b"): True,
        ("ratio", "f"): 0.25,
        ("tags", "s"): '["a","b"]',
        ("ports", "s"): "[80,443]",
        ("flags", "s"): "[true,false]",
        ("weights", "s"): "[1.5,2.0]",
    }

    sdk_events = sdk_spans[1].events
    for row, event in ((cache_miss, sdk_events[0]), (exception, sdk_events[1])):
        assert row["ts_ns"] == event.timestamp
        assert row["trace_id"] == select["trace_id"]
        assert row["parent_id"] == select["span_id"]
        assert row["span_id"] is row["dur_ns"] is row["kind"] is row["status_code"] is None
        assert (row["dataset"], row["service"], row["library_name"]) == (
            "checkout",
            "checkout",
            "tests.otlp",
        )
    assert cache_miss["error"] is None and exception["error"] is True
    assert cache_miss["attributes"] == {
        **res_attrs,
        ("cache.key", "s"): "k1",
        ("attempt", "i"): 2,
    }
    assert exception["attributes"][("exception.type", "s")] == "ValueError"
    assert exception["attributes"][("exception.message", "s")] == "bad order id"
    assert "ValueError: bad order id" in exception["attributes"][("exception.stacktrace", "s")]

    other = sdk_spans[0].get_span_context()
    assert link["ts_ns"] == select["ts_ns"] and link["dur_ns"] is None
    assert (link["trace_id"], link["parent_id"]) == (select["trace_id"], select["span_id"])
    assert link["attributes"] == {
        **res_attrs,
        ("trace.link.trace_id", "s"): f"{other.trace_id:032x}",
        ("trace.link.span_id", "s"): f"{other.span_id:016x}",
        ("link.kind", "s"): "follows",
    }


def test_active_decoder_matches_reference(sdk_spans):
    """decode_traces (the C accelerator when built) gives exactly the reference's result."""
    body = encode_spans(sdk_spans).SerializeToString()
    assert decode_traces(body, "protobuf") == decode_traces_py(body, "protobuf")


# ---------------------------------------------------------------------------------------------
# hand-built edge cases


def _request(spans, resource=(), scope_attrs=(), scope_name="lib") -> ExportTraceServiceRequest:
    scope = InstrumentationScope(name=scope_name, attributes=attrs_to_pb(list(scope_attrs)))
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=PB2Resource(attributes=attrs_to_pb(list(resource))),
                scope_spans=[ScopeSpans(scope=scope, spans=spans)],
            )
        ]
    )


TID, SID = bytes(range(1, 17)), bytes(range(1, 9))


def _span(**kw) -> Span:
    kw.setdefault("trace_id", TID)
    kw.setdefault("span_id", SID)
    kw["attributes"] = attrs_to_pb(kw.get("attributes", []))
    return Span(**kw)


def test_value_kinds_nested_bytes_and_dropped():
    nested = (
        "arr",
        [
            ("s", "x"),
            ("i", 1),
            ("f", math.inf),
            ("empty", None),
            ("bytes", b"\x00\xff"),
            ("kv", [("k", ("b", True)), ("k2", ("arr", [])), ("k", ("s", "last"))]),
        ],
    )
    rows = _rows(
        _request(
            [
                _span(
                    attributes=[
                        ("nested", nested),
                        ("map", ("kv", [("a", ("i", -5)), ("é", ("s", "ü"))])),
                        ("raw", ("bytes", b"hi")),
                        ("empty", ("empty", None)),
                        ("nan", ("f", math.nan)),
                        ("inf", ("f", -math.inf)),
                        ("", ("s", "no key")),
                        ("big", ("i", -(2**63))),
                    ]
                )
            ]
        )
    )
    assert rows[0]["attributes"] == {
        ("nested", "s"): '["x",1,Infinity,null,"AP8=",{"k":"last","k2":[]}]',
        ("map", "s"): '{"a":-5,"é":"ü"}',
        ("raw", "s"): "aGk=",
        ("inf", "f"): -math.inf,
        ("big", "i"): -(2**63),
    }
    assert json.loads('{"a":-5,"é":"ü"}') == {"a": -5, "é": "ü"}


def test_later_attributes_override_earlier_across_types():
    request = _request(
        [
            _span(
                attributes=[("x", ("b", True)), ("d", ("s", "1")), ("d", ("i", 2))],
                events=[Span.Event(name="e", attributes=attrs_to_pb([("y", ("i", 1))]))],
            )
        ],
        resource=[("x", ("s", "res")), ("y", ("s", "res")), ("z", ("s", "res"))],
        scope_attrs=[("x", ("i", 1)), ("z", ("f", 2.5))],
    )
    span, event = _rows(request)
    assert span["attributes"] == {
        ("x", "b"): True,
        ("y", "s"): "res",
        ("z", "f"): 2.5,
        ("d", "i"): 2,
    }
    # events carry the resource's attributes (not the scope's) and their own
    assert event["attributes"] == {("x", "s"): "res", ("y", "i"): 1, ("z", "s"): "res"}


def test_the_same_key_changing_value_kind_from_span_to_span():
    """The decoder remembers each key's last member to skip WhichOneof (common.put_pb); default
    values, NaN and kind changes must still come out right."""
    values = [("f", 1.5), ("f", math.nan), ("f", 0.0), ("s", "a"), ("s", ""), ("i", 5), ("i", 0),
              ("b", True), ("b", False), ("bytes", b"\x01"), ("empty", None), ("s", "b"),
              ("arr", [("i", 1)]), ("f", -0.0), ("i", 7)]  # fmt: skip
    rows = _rows(_request([_span(attributes=[("x", v)]) for v in values]))
    assert [r["attributes"] for r in rows] == [
        {("x", "f"): 1.5}, {}, {("x", "f"): 0.0}, {("x", "s"): "a"}, {("x", "s"): ""},
        {("x", "i"): 5}, {("x", "i"): 0}, {("x", "b"): True}, {("x", "b"): False},
        {("x", "s"): "AQ=="}, {}, {("x", "s"): "b"}, {("x", "s"): "[1]"}, {("x", "f"): -0.0},
        {("x", "i"): 7},
    ]  # fmt: skip


def test_dropped_values_do_not_override():
    request = _request(
        [_span(attributes=[("x", ("f", math.nan)), ("y", ("empty", None))])],
        resource=[("x", ("s", "kept")), ("y", ("i", 7))],
    )
    assert _rows(request)[0]["attributes"] == {("x", "s"): "kept", ("y", "i"): 7}


@pytest.mark.parametrize(
    ("attrs", "resource", "expected"),
    [
        ([("SampleRate", ("i", 20))], [], 20),
        ([("SampleRate", ("i", 2**63 - 1))], [], 2**63 - 1),
        ([("SampleRate", ("s", "20"))], [], 1),
        ([("SampleRate", ("i", 0))], [], 1),
        ([("SampleRate", ("i", -4))], [], 1),
        ([("SampleRate", ("f", 4.0))], [], 1),
        ([("SampleRate", ("i", 5)), ("SampleRate", ("s", "x"))], [], 1),
        ([("SampleRate", ("i", 5)), ("SampleRate", ("f", math.nan))], [], 5),
        ([], [("SampleRate", ("i", 9))], 1),  # the span's own attribute only
        ([("samplerate", ("i", 9))], [], 1),
    ],
)
def test_sample_rate(attrs, resource, expected):
    request = _request(
        [
            _span(
                attributes=attrs,
                events=[Span.Event(name="e")],
                links=[Span.Link(trace_id=TID, span_id=SID)],
            )
        ],
        resource=resource,
    )
    rows = _rows(request)
    assert [r["samplerate"] for r in rows] == [expected] * 3
    key, (t, value) = attrs[-1] if attrs else resource[-1]
    if t == "i":
        assert rows[0]["attributes"][(key, "i")] == value  # the attribute is kept too


@pytest.mark.parametrize(
    ("trace_id", "span_id"),
    [
        (b"", SID),
        (bytes(16), SID),
        (TID[:15], SID),
        (TID + b"\x01", SID),
        (TID, b""),
        (TID, bytes(8)),
        (TID, SID[:7]),
        (TID, SID + b"\x01"),
    ],
)
def test_invalid_ids_reject_the_span_and_its_events(trace_id, span_id):
    bad = _span(trace_id=trace_id, span_id=span_id, name="bad", events=[Span.Event(name="e")])
    request = _request([bad, _span(name="good"), bad])
    decoded = _decode(request)
    assert (decoded.accepted, decoded.rejected) == (1, 2)
    assert decoded.error_message == "2 spans rejected: invalid trace_id or span_id"
    assert [r["name"] for r in batch_rows(decoded.events)] == ["good"]


def test_parent_kind_status_and_times():
    rows = _rows(
        _request(
            [
                _span(
                    parent_span_id=bytes(8),
                    kind=9,
                    start_time_unix_nano=10,
                    end_time_unix_nano=5,
                    status=Status(code=7, message=""),
                ),
                _span(parent_span_id=b"\x01\x02\x03\x04", kind=4, start_time_unix_nano=10),
                _span(
                    parent_span_id=b"\xff" * 8,
                    kind=5,
                    start_time_unix_nano=2**64 - 1,
                    end_time_unix_nano=2**63,
                    status=Status(code=1, message="fine"),
                ),
                _span(
                    start_time_unix_nano=2**63 - 10,
                    end_time_unix_nano=2**64 - 1,
                    events=[Span.Event(time_unix_nano=2**64 - 1, name="late")],
                ),
            ]
        )
    )
    first, second, third, fourth, late = rows
    assert (first["parent_id"], first["kind"], first["dur_ns"]) == (None, "unspecified", 0)
    assert (first["status_code"], first["status_message"], first["error"]) == (7, None, False)
    assert (second["parent_id"], second["kind"], second["dur_ns"]) == (None, "producer", 0)
    assert (third["parent_id"], third["kind"]) == (2**64 - 1, "consumer")
    assert (third["ts_ns"], third["dur_ns"]) == (2**63 - 1, 0)  # clamped to the store's int64
    assert (third["status_code"], third["status_message"]) == (1, "fine")
    assert (fourth["ts_ns"], fourth["dur_ns"]) == (2**63 - 10, 9)
    assert late["ts_ns"] == 2**63 - 1


@pytest.mark.parametrize(
    ("resource", "dataset", "service"),
    [
        ([("service.name", ("s", "api"))], "api", "api"),
        ([("service.name", ("s", "  api \n"))], "api", "api"),
        ([("service.name", ("s", "  "))], "unknown_service", None),
        ([("service.name", ("i", 3))], "unknown_service", None),
        ([("service.name", ("s", "a")), ("service.name", ("s", "b"))], "b", "b"),
        ([], "unknown_service", None),
    ],
)
def test_dataset_from_service_name(resource, dataset, service):
    (row,) = _rows(_request([_span()], resource=[*resource, ("host", ("s", "h"))]))
    assert (row["dataset"], row["service"]) == (dataset, service)
    assert row["attributes"] == {("host", "s"): "h"}  # service.name never becomes an attribute


def test_invalid_links_are_left_out():
    links = [
        Span.Link(trace_id=bytes(16), span_id=SID),
        Span.Link(trace_id=TID, span_id=b"\x01"),
        Span.Link(trace_id=TID[::-1], span_id=SID[::-1], trace_state="x=1"),
    ]
    rows = _rows(_request([_span(links=links)]))
    assert [r["signal"] for r in rows] == ["span", "link"]
    assert rows[1]["attributes"][("trace.link.trace_id", "s")] == TID[::-1].hex()


def test_several_resources_and_scopes():
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=PB2Resource(attributes=attrs_to_pb([("service.name", ("s", n))])),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name=f"{n}-{i}"), spans=[_span(name=f"{n}{i}")]
                    )
                    for i in range(2)
                ],
            )
            for n in ("a", "b")
        ]
    )
    rows = _rows(request)
    assert [(r["dataset"], r["library_name"], r["name"]) for r in rows] == [
        ("a", "a-0", "a0"),
        ("a", "a-1", "a1"),
        ("b", "b-0", "b0"),
        ("b", "b-1", "b1"),
    ]
    assert all(r["library_version"] is None for r in rows)


def test_empty_and_invalid_payloads():
    decoded = decode_traces_py(b"", "protobuf")
    assert (decoded.events.n, decoded.accepted, decoded.rejected) == (0, 0, 0)
    decoded.events.check()
    for body in (
        b"\xff\xff\xff",
        b"\x0a\x05\x01",
        ExportTraceServiceRequest().SerializeToString() + b"\x0b",
    ):
        with pytest.raises(DecodeError, match="payload is not a valid ExportTraceServiceRequest"):
            decode_traces_py(body, "protobuf")
        with pytest.raises(DecodeError):
            decode_traces(body, "protobuf")


# ---------------------------------------------------------------------------------------------
# round trip against the independent model


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace_requests)
def test_round_trip_matches_the_model(spec):
    request = trace_request_to_pb(spec)
    decoded = _decode(request)
    rows, rejected, message = expected_traces(spec)
    assert batch_rows(decoded.events) == rows
    assert decoded.rejected == rejected
    assert decoded.accepted == sum(r["signal"] == "span" for r in rows)
    assert decoded.error_message == message
    assert all(col.count(None) < decoded.events.n for col in decoded.events.attrs.values())


# ---------------------------------------------------------------------------------------------
# responses


@pytest.mark.parametrize(
    ("signal", "message_type", "field", "json_field"),
    [
        ("traces", ExportTraceServiceResponse, "rejected_spans", "rejectedSpans"),
        ("logs", ExportLogsServiceResponse, "rejected_log_records", "rejectedLogRecords"),
        ("metrics", ExportMetricsServiceResponse, "rejected_data_points", "rejectedDataPoints"),
    ],
)
def test_export_responses(signal, message_type, field, json_field):
    assert otlp.encode_export_response(signal, 0, "", "protobuf") == b""
    assert otlp.encode_export_response(signal, 0, "", "json") == b"{}"
    body = otlp.encode_export_response(signal, 3, "3 rejected", "protobuf")
    response = message_type.FromString(body)
    assert getattr(response.partial_success, field) == 3
    assert response.partial_success.error_message == "3 rejected"
    assert json.loads(otlp.encode_export_response(signal, 3, "3 rejected", "json")) == {
        "partialSuccess": {json_field: "3", "errorMessage": "3 rejected"}
    }
    warning = message_type.FromString(otlp.encode_export_response(signal, 0, "note", "protobuf"))
    assert warning.HasField("partial_success") and warning.partial_success.error_message == "note"
    assert json.loads(otlp.encode_export_response(signal, 0, "note", "json")) == {
        "partialSuccess": {"errorMessage": "note"}
    }
