"""A resource's ``service.name`` that is not a valid dataset name (common.py: longer than 255
characters or with a C0/C1 control character, once stripped) rejects that resource's spans or log
records, counted in partial success, while the other resources of the request are kept; the C
decoder, the reference and OTLP/JSON agree, and the rule is the catalog's
(``tenancy.names.validate_dataset_name``). Metrics are not routed by service.name: not checked.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from otlp_requests import to_otlp_json

from tracehive.ingest import otlp
from tracehive.ingest.otlp.common import INVALID_SERVICE_NAME, MAX_ATTR_KEYS, routable
from tracehive.tenancy.names import InvalidName, validate_dataset_name

NOW = 1_700_000_000_000_000_000
IDS_REASON = "invalid trace_id or span_id"


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span(i: int, valid: bool = True, **kw) -> Span:
    return Span(
        trace_id=(i + 1).to_bytes(16, "big"),
        span_id=(i + 1).to_bytes(8, "big") if valid else bytes(8),
        name=f"op{i}",
        start_time_unix_nano=NOW,
        end_time_unix_nano=NOW + 1000,
        **kw,
    )


def _resource_spans(service: str | None, spans: list[Span], extra=()) -> ResourceSpans:
    attrs = [*extra] + ([] if service is None else [_kv("service.name", service)])
    return ResourceSpans(resource=Resource(attributes=attrs), scope_spans=[ScopeSpans(spans=spans)])


def _traces(*resources: ResourceSpans) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=list(resources))


def decode_all(request: ExportTraceServiceRequest) -> otlp.Decoded:
    """Decode with C (when built), the reference and OTLP/JSON; all three must agree."""
    body = request.SerializeToString()
    py = otlp.decode_traces_py(body, "protobuf")
    c = otlp.decode_traces(body, "protobuf")
    js = otlp.decode_traces(orjson.dumps(to_otlp_json(request)), "json")
    for other in (c, js):
        assert (other.accepted, other.rejected, other.error_message) == (
            py.accepted,
            py.rejected,
            py.error_message,
        )
        assert other.events.n == py.events.n
        assert other.events.cols == py.events.cols
        assert other.events.attrs == py.events.attrs
    return py


def test_the_bad_resource_alone_is_rejected():
    request = _traces(
        _resource_spans("checkout", [_span(0), _span(1)], extra=[_kv("host", "a")]),
        _resource_spans("bad\nsvc", [_span(2), _span(3), _span(4)], extra=[_kv("host", "b")]),
        _resource_spans("api", [_span(5)]),
    )
    d = decode_all(request)
    assert (d.accepted, d.rejected) == (3, 3)
    assert d.error_message == f"3 spans rejected: {INVALID_SERVICE_NAME}"
    cols = d.events.cols
    assert cols["dataset"] == ["checkout", "checkout", "api"]
    assert cols["name"] == ["op0", "op1", "op5"]
    assert d.events.attrs[("host", "s")] == ["a", "a", None]


def test_rejected_for_ids_and_for_the_service_name():
    request = _traces(
        _resource_spans("ok", [_span(0), _span(1, valid=False)]),
        _resource_spans("bad\x00", [_span(2), _span(3, valid=False)]),  # both count here
    )
    d = decode_all(request)
    assert (d.accepted, d.rejected) == (1, 3)
    assert d.error_message == (
        f"1 spans rejected: {IDS_REASON}; 2 spans rejected: {INVALID_SERVICE_NAME}"
    )


def test_every_span_of_the_bad_resource_counts_with_its_rows_left_out():
    """Events and links ride along with their span: not counted, not rows; every scope counts."""
    events = [Span.Event(time_unix_nano=NOW, name="e")] * 3
    link = Span.Link(trace_id=b"\x01" * 16, span_id=b"\x01" * 8)
    bad = ResourceSpans(
        resource=Resource(attributes=[_kv("service.name", "x" * 256)]),
        scope_spans=[
            ScopeSpans(spans=[_span(0, events=events, links=[link])]),
            ScopeSpans(spans=[_span(1), _span(2)]),
            ScopeSpans(),
        ],
    )
    d = decode_all(_traces(bad))
    assert (d.events.n, d.accepted, d.rejected) == (0, 0, 3)
    assert d.events.attrs == {}


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("svc", True),
        ("  svc\t", True),  # stripped first
        ("\x85svc\x85", True),  # NEL is whitespace: stripped at the ends
        ("a" * 255, True),
        (" " * 3 + "a" * 255 + " ", True),
        ("\u2003" + "é" * 255, True),  # characters, not bytes
        ("a" * 256, False),
        ("a\x00b", False),
        ("a\tb", False),
        ("a\x1fb", False),
        ("a\x7fb", False),
        ("a\x85b", False),
        ("a\x9fb", False),
        ("a\xa0b", True),  # no-break space: not a control character
        ("", True),  # unknown_service
        ("   ", True),
    ],
)
def test_the_rule(name, valid):
    d = decode_all(_traces(_resource_spans(name, [_span(0)])))
    assert (d.accepted, d.rejected) == ((1, 0) if valid else (0, 1))
    if valid:
        assert d.events.cols["dataset"] == [name.strip() or "unknown_service"]


def test_only_a_string_service_name_routes():
    """A non-string service.name routes to unknown_service (as before); a string made from bytes,
    arrays or kvlists is checked like any other (JSON text escapes C0 but not C1 controls)."""
    kvlist = AnyValue()
    kvlist.kvlist_value.values.add(key="k", value=AnyValue(string_value="\x85"))
    for value, accepted in (
        (AnyValue(int_value=3), True),
        (AnyValue(bytes_value=b"\x00\n"), True),  # base64
        (kvlist, False),  # {"k":"\x85"}
    ):
        rs = ResourceSpans(
            resource=Resource(attributes=[KeyValue(key="service.name", value=value)]),
            scope_spans=[ScopeSpans(spans=[_span(0)])],
        )
        d = decode_all(_traces(rs))
        assert d.accepted == int(accepted), value


def test_the_last_service_name_decides():
    rs = _resource_spans("bad\nname", [_span(0)])
    rs.resource.attributes.append(_kv("service.name", "good"))
    assert decode_all(_traces(rs)).accepted == 1
    rs = _resource_spans("good", [_span(0)])
    rs.resource.attributes.append(_kv("service.name", "bad\nname"))
    assert decode_all(_traces(rs)).rejected == 1


def test_a_rejected_resource_adds_nothing_to_the_limits():
    """Its keys, columns and rows are not counted: 2,001 keys on a rejected resource and 1,000 +
    1,000 on the accepted ones decode."""
    many = [_kv(f"k{i}", "v") for i in range(MAX_ATTR_KEYS + 1)]
    request = _traces(
        _resource_spans("bad\x01", [_span(0, attributes=many)], extra=many),
        _resource_spans("good", [_span(1, attributes=many[:1000])], extra=many[1000:2000]),
    )
    d = decode_all(request)
    assert (d.accepted, d.rejected) == (1, 1)
    assert len(d.events.attrs) == 2000


def test_a_rejected_resource_is_still_parsed():
    """Malformed content under a rejected resource refuses the request, as ParseFromString (and
    the C decoder's validation) would anywhere else."""
    good = _traces(_resource_spans("bad\nname", [_span(0)])).SerializeToString()
    assert good.count(b"op0") == 1
    body = good.replace(b"op0", b"\xff\xfe0")  # the span's name: invalid UTF-8
    assert decode_all(_traces(_resource_spans("bad\nname", [_span(0)]))).rejected == 1
    with pytest.raises(otlp.DecodeError):
        otlp.decode_traces_py(body, "protobuf")
    with pytest.raises(otlp.DecodeError):
        otlp.decode_traces(body, "protobuf")
    doc = to_otlp_json(_traces(_resource_spans("bad\nname", [_span(0)])))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = "soon"
    with pytest.raises(otlp.DecodeError, match="startTimeUnixNano"):
        otlp.decode_traces(orjson.dumps(doc), "json")


def _valid_name(name: str) -> bool:
    try:
        validate_dataset_name(name)
    except InvalidName:
        return False
    return True


_names = st.one_of(
    st.text(max_size=8),
    st.text(st.sampled_from("ab \t\n\x00\x1f\x7f\x80\x85\x9f\xa0\u2003\u2028é"), max_size=8),
    st.integers(250, 260).map(lambda n: "n" * n),
    st.tuples(st.integers(250, 258), st.sampled_from(["", " ", "\x85", "\x00"])).map(
        lambda t: "n" * t[0] + t[1]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_names)
def test_the_rule_is_the_catalogs(name):
    """Every decoder accepts a resource exactly when the catalog accepts its (stripped) name as a
    dataset name."""
    d = decode_all(_traces(_resource_spans(name, [_span(0)])))
    stripped = name.strip()
    assert routable(stripped or "unknown_service") == (not stripped or _valid_name(stripped))
    assert d.accepted == (1 if not stripped or _valid_name(stripped) else 0)


# ---------------------------------------------------------------------------------------------
# logs


def _logs(*resources: tuple[str | None, int]) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(
                    attributes=[] if service is None else [_kv("service.name", service)]
                ),
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(time_unix_nano=NOW, attributes=[_kv("i", i)])
                            for i in range(n)
                        ]
                    )
                ],
            )
            for service, n in resources
        ]
    )


def test_logs_of_the_bad_resource_alone_are_rejected():
    request = _logs(("checkout", 2), ("bad\x1bsvc", 3), (None, 1))
    pb = otlp.decode_logs(request.SerializeToString(), "protobuf", NOW)
    js = otlp.decode_logs(orjson.dumps(to_otlp_json(request)), "json", NOW)
    assert pb == js
    assert (pb.accepted, pb.rejected) == (3, 3)
    assert pb.error_message == f"3 log records rejected: {INVALID_SERVICE_NAME}"
    assert pb.events.cols["dataset"] == ["checkout", "checkout", "unknown_service"]
    assert pb.events.attrs[("i", "i")] == [0, 1, 0]


def test_logs_of_a_rejected_resource_are_still_parsed():
    doc = to_otlp_json(_logs(("bad\nname", 1)))
    doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["severityNumber"] = "loud"
    with pytest.raises(otlp.DecodeError, match="severityNumber"):
        otlp.decode_logs(orjson.dumps(doc), "json", NOW)


# ---------------------------------------------------------------------------------------------
# metrics: routed by the request's dataset, so service.name is kept as sent


def test_metrics_keep_any_service_name():
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=[_kv("service.name", "bad\nsvc")]),
                scope_metrics=[
                    ScopeMetrics(
                        metrics=[
                            Metric(name="m", gauge=Gauge(data_points=[NumberDataPoint(as_int=1)]))
                        ]
                    )
                ],
            )
        ]
    )
    for decoded in (
        otlp.decode_metrics(request.SerializeToString(), "protobuf", "ds"),
        otlp.decode_metrics(orjson.dumps(to_otlp_json(request)), "json", "ds"),
    ):
        assert (decoded.accepted, decoded.rejected, decoded.error_message) == (1, 0, "")
        (point,) = decoded.metrics.points
        assert (point.dataset, point.service) == ("ds", "bad\nsvc")
