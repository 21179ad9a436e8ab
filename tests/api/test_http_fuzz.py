"""Hypothesis against a live server: arbitrary bytes, arbitrary JSON, structured-but-hostile and
mutated valid payloads on every ingest and query route. Whatever comes in, the answer is never a
5xx other than 503 (backpressure, with Retry-After), the server stays up, and valid requests
still work afterwards."""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid
import zlib
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

#: Derandomized (the same examples every run) unless TRACEHIVE_FUZZ_RANDOM=1 asks to explore.
FUZZ = settings(
    max_examples=80,
    deadline=None,
    database=None,  # no .hypothesis directory in the tree
    derandomize=os.environ.get("TRACEHIVE_FUZZ_RANDOM") != "1",
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
SMALL = settings(FUZZ, max_examples=50)

PB = "application/x-protobuf"
JSON = "application/json"
OTLP_PATHS = ("/v1/traces", "/v1/logs", "/v1/metrics")
U64 = 2**64 - 1


@pytest.fixture(scope="module")
def client(server):
    with server.client(server.create_key("ingest,query")) as c:
        yield c


def check(r, *allowed: int):
    """No server error except backpressure; optionally only ``allowed`` statuses."""
    if r.status_code == 503:
        assert r.headers.get("retry-after"), r.text
        return
    assert r.status_code < 500, (r.status_code, r.request.url, r.text[:500])
    if allowed:
        assert r.status_code in allowed, (r.status_code, r.request.url, r.text[:500])


def post(client, path, body: bytes, ctype: str | None = None, encoding: str | None = None):
    headers = {}
    if ctype:
        headers["content-type"] = ctype
    if encoding:
        headers["content-encoding"] = encoding
    return client.post(path, content=body, headers=headers)


# -- strategies -------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=12), kids, max_size=5)
    ),
    max_leaves=25,
)
ENCODINGS = ("gzip", "deflate", "zstd", "identity", "br", "x-bogus")


def _kv(key, value):
    return common_pb2.KeyValue(key=key, value=value)


any_values = st.deferred(
    lambda: st.one_of(
        st.just(common_pb2.AnyValue()),
        st.text(max_size=20).map(lambda s: common_pb2.AnyValue(string_value=s)),
        st.booleans().map(lambda b: common_pb2.AnyValue(bool_value=b)),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: common_pb2.AnyValue(int_value=i)),
        st.floats().map(lambda f: common_pb2.AnyValue(double_value=f)),
        st.binary(max_size=12).map(lambda b: common_pb2.AnyValue(bytes_value=b)),
        st.lists(any_values, max_size=3).map(
            lambda vs: common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=vs))
        ),
        st.lists(st.tuples(st.text(max_size=6), any_values), max_size=3).map(
            lambda kvs: common_pb2.AnyValue(
                kvlist_value=common_pb2.KeyValueList(values=[_kv(k, v) for k, v in kvs])
            )
        ),
    )
)
attributes = st.lists(
    st.tuples(
        st.sampled_from(["service.name", "SampleRate", "", "http.route", "error", "duration_ms"])
        | st.text(max_size=10),
        any_values,
    ),
    max_size=5,
).map(lambda kvs: [_kv(k, v) for k, v in kvs])
ids16 = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))
ids8 = st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10))
times = st.one_of(st.integers(0, U64), st.just(time.time_ns()), st.just(0))


@st.composite
def pb_traces(draw) -> bytes:
    spans = []
    for _ in range(draw(st.integers(0, 4))):
        span = trace_pb2.Span(
            trace_id=draw(ids16),
            span_id=draw(ids8),
            parent_span_id=draw(ids8),
            name=draw(st.text(max_size=20)),
            kind=draw(st.integers(0, 7)),
            start_time_unix_nano=draw(times),
            end_time_unix_nano=draw(times),
            attributes=draw(attributes),
            status=trace_pb2.Status(
                code=draw(st.integers(0, 5)), message=draw(st.text(max_size=8))
            ),
        )
        for _ in range(draw(st.integers(0, 2))):
            span.events.add(
                time_unix_nano=draw(times),
                name=draw(st.text(max_size=10)),
                attributes=draw(attributes),
            )
        for _ in range(draw(st.integers(0, 2))):
            span.links.add(trace_id=draw(ids16), span_id=draw(ids8), attributes=draw(attributes))
        spans.append(span)
    rs = trace_pb2.ResourceSpans(
        scope_spans=[
            trace_pb2.ScopeSpans(
                spans=spans,
                scope=common_pb2.InstrumentationScope(
                    name=draw(st.text(max_size=8)), version=draw(st.text(max_size=8))
                ),
            )
        ]
    )
    rs.resource.attributes.extend(draw(attributes))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


@st.composite
def pb_logs(draw) -> bytes:
    records = [
        logs_pb2.LogRecord(
            time_unix_nano=draw(times),
            observed_time_unix_nano=draw(times),
            severity_number=draw(st.integers(0, 30)),
            severity_text=draw(st.text(max_size=8)),
            body=draw(any_values),
            attributes=draw(attributes),
            trace_id=draw(ids16),
            span_id=draw(ids8),
        )
        for _ in range(draw(st.integers(0, 4)))
    ]
    rl = logs_pb2.ResourceLogs(scope_logs=[logs_pb2.ScopeLogs(log_records=records)])
    rl.resource.attributes.extend(draw(attributes))
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[rl]).SerializeToString()


@st.composite
def pb_metrics(draw) -> bytes:
    metrics = []
    floats = st.floats()
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["gauge", "sum", "histogram", "exp", "summary", "none"]))
        m = metrics_pb2.Metric(name=draw(st.text(max_size=10)), unit=draw(st.text(max_size=4)))
        point = {
            "time_unix_nano": draw(times),
            "start_time_unix_nano": draw(times),
            "attributes": draw(attributes),
        }
        if kind == "gauge":
            m.gauge.data_points.add(as_double=draw(floats), **point)
        elif kind == "sum":
            m.sum.aggregation_temporality = draw(st.integers(0, 3))
            m.sum.is_monotonic = draw(st.booleans())
            m.sum.data_points.add(as_int=draw(st.integers(-(2**63), 2**63 - 1)), **point)
        elif kind == "histogram":
            m.histogram.data_points.add(
                count=draw(st.integers(0, U64)),
                sum=draw(floats),
                bucket_counts=draw(st.lists(st.integers(0, U64), max_size=4)),
                explicit_bounds=draw(st.lists(floats, max_size=4)),
                **point,
            )
        elif kind == "exp":
            dp = m.exponential_histogram.data_points.add(
                count=draw(st.integers(0, U64)),
                scale=draw(st.integers(-(2**31), 2**31 - 1)),
                zero_count=draw(st.integers(0, U64)),
                **point,
            )
            dp.positive.offset = draw(st.integers(-(2**31), 2**31 - 1))
            dp.positive.bucket_counts.extend(draw(st.lists(st.integers(0, U64), max_size=4)))
        elif kind == "summary":
            dp = m.summary.data_points.add(
                count=draw(st.integers(0, U64)), sum=draw(floats), **point
            )
            dp.quantile_values.add(quantile=draw(floats), value=draw(floats))
        metrics.append(m)
    rm = metrics_pb2.ResourceMetrics(scope_metrics=[metrics_pb2.ScopeMetrics(metrics=metrics)])
    rm.resource.attributes.extend(draw(attributes))
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[rm]
    ).SerializeToString()


PB_BODIES = {"/v1/traces": pb_traces(), "/v1/logs": pb_logs(), "/v1/metrics": pb_metrics()}


def _seed_trace(trace_id: bytes = bytes(range(1, 17)), name: str = "seed") -> bytes:
    now = time.time_ns()
    span = trace_pb2.Span(
        trace_id=trace_id,
        span_id=bytes(range(1, 9)),
        parent_span_id=bytes(range(2, 10)),
        name=name,
        kind=2,
        start_time_unix_nano=now - 10**6,
        end_time_unix_nano=now,
        attributes=[
            _kv("s", common_pb2.AnyValue(string_value="v")),
            _kv("i", common_pb2.AnyValue(int_value=7)),
            _kv("d", common_pb2.AnyValue(double_value=1.5)),
        ],
    )
    span.events.add(time_unix_nano=now, name="ev")
    span.links.add(trace_id=bytes(range(3, 19)), span_id=bytes(range(3, 11)))
    rs = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[span])])
    rs.resource.attributes.append(_kv("service.name", common_pb2.AnyValue(string_value="fuzz")))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


SEED_PB = _seed_trace()


def _seed_json(now_ns: int) -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "fuzz"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "s", "version": "1"},
                        "spans": [
                            {
                                "traceId": "0102030405060708090a0b0c0d0e0f10",
                                "spanId": "0102030405060708",
                                "parentSpanId": "",
                                "name": "seed-json",
                                "kind": 1,
                                "startTimeUnixNano": str(now_ns - 10**6),
                                "endTimeUnixNano": str(now_ns),
                                "attributes": [
                                    {"key": "n", "value": {"intValue": "5"}},
                                    {
                                        "key": "arr",
                                        "value": {"arrayValue": {"values": [{"boolValue": True}]}},
                                    },
                                ],
                                "events": [{"timeUnixNano": str(now_ns), "name": "e"}],
                                "status": {"code": 2, "message": "m"},
                            }
                        ],
                    }
                ],
            }
        ]
    }


@st.composite
def mutated_bytes(draw, seed: bytes) -> bytes:
    b = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and b:
            b[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            b[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del b[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del b[pos:]
        elif op == "dup":
            b[pos:pos] = b[pos : pos + draw(st.integers(1, 16))]
    return bytes(b)


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


@st.composite
def mutated_json(draw, seed):
    """Replace (or delete) a few randomly chosen nodes of ``seed`` with arbitrary JSON."""
    doc = json.loads(json.dumps(seed))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths[1:] or paths))
        if not path:
            return draw(json_values)
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(
                json_values
                | st.sampled_from(["", "zz", "0" * 32, "f" * 33, "-1", "1e999", "NaN", 2**64])
            )
    return doc


# -- OTLP ingest ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", OTLP_PATHS)
@pytest.mark.parametrize("ctype", [PB, JSON])
@SMALL
@given(body=st.binary(max_size=1024), encoding=st.sampled_from([None, "gzip"]))
def test_otlp_arbitrary_bytes(client, path, ctype, body, encoding):
    r = post(client, path, body, ctype, encoding)
    check(r, 200, 400)
    assert r.headers["content-type"].startswith(ctype)


@pytest.mark.parametrize("path", OTLP_PATHS)
@SMALL
@given(body=st.binary(max_size=1024), encoding=st.sampled_from(["gzip", "deflate", "zstd"]))
def test_otlp_arbitrary_bytes_validly_compressed(client, path, body, encoding):
    import zstandard

    packed = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "zstd": zstandard.ZstdCompressor().compress,
    }[encoding](body)
    check(post(client, path, packed, PB, encoding), 200, 400)


@pytest.mark.parametrize("path", OTLP_PATHS)
@SMALL
@given(value=json_values)
def test_otlp_arbitrary_json(client, path, value):
    check(post(client, path, json.dumps(value).encode(), JSON), 200, 400)


@pytest.mark.parametrize("path", OTLP_PATHS)
@FUZZ
@given(data=st.data(), encoding=st.sampled_from([None, "gzip"]))
def test_otlp_structured_protobuf(client, path, data, encoding):
    body = data.draw(PB_BODIES[path])
    if encoding:
        body = gzip.compress(body)
    r = post(client, path, body, PB, encoding)
    # well-formed OTLP is never refused whole: a resource whose service.name is not a valid
    # dataset name (control characters, > 255 characters) is rejected alone, in partial_success
    check(r, 200)


@FUZZ
@given(body=mutated_bytes(SEED_PB), encoding=st.sampled_from([None, "gzip"]))
def test_traces_mutated_protobuf(client, body, encoding):
    if encoding:
        body = gzip.compress(body)
    check(post(client, "/v1/traces", body, PB, encoding), 200, 400)


@FUZZ
@given(doc=mutated_json(_seed_json(time.time_ns())), encoding=st.sampled_from([None, "gzip"]))
def test_traces_mutated_json(client, doc, encoding):
    body = json.dumps(doc).encode()
    if encoding:
        body = gzip.compress(body)
    check(post(client, "/v1/traces", body, JSON, encoding), 200, 400)


@SMALL
@given(
    encoding=st.sampled_from(ENCODINGS) | st.text(max_size=12),
    ctype=st.sampled_from([PB, JSON, "text/plain", "", "application/x-protobuf; charset=x"])
    | st.text(max_size=20),
)
def test_otlp_odd_headers(client, encoding, ctype):
    try:
        r = post(client, "/v1/traces", SEED_PB, ctype or None, encoding or None)
    except Exception as exc:  # httpx refuses some header values itself: not the server's fault
        if "header" in str(exc).lower() or isinstance(exc, UnicodeEncodeError | ValueError):
            return
        raise
    check(r)


# -- Honeycomb ingest -------------------------------------------------------------------------

#: Field names for Honeycomb events, the empty one included (it once dead-lettered whole
#: requests; test_honeycomb_api.py::test_empty_field_name_does_not_lose_acknowledged_events).
field_names = st.text(max_size=20)


# printable ASCII without surrounding spaces (h11 refuses those itself)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30
).map(str.strip)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=512),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(field_names, json_values, max_size=8).map(lambda v: json.dumps(v).encode()),
    ),
    event_time=st.none() | header_text | st.integers(-(2**70), 2**70).map(str),
    samplerate=st.none() | header_text | st.integers(-(2**70), 2**70).map(str),
    encoding=st.sampled_from([None, "gzip", "zstd"]),
)
def test_events_route(client, body, event_time, samplerate, encoding):
    headers = {}
    if event_time is not None:
        headers["x-honeycomb-event-time"] = event_time
    if samplerate is not None:
        headers["x-honeycomb-samplerate"] = samplerate
    if encoding == "gzip":
        body = gzip.compress(body)
        headers["content-encoding"] = encoding
    elif encoding == "zstd":
        headers["content-encoding"] = encoding  # usually not zstd data: a 400
    r = client.post("/1/events/fuzz-events", content=body, headers=headers)
    check(r, 200, 400)
    if r.status_code == 200:
        assert r.content == b""
    else:
        assert r.json()["error"]


batch_items = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"data": st.dictionaries(field_names, json_values, max_size=6)},
        optional={
            "time": json_scalars
            | st.sampled_from(["2024-02-30T00:00:00Z", "2024-01-01T00:00:60Z", "1e30"]),
            "samplerate": json_scalars,
        },
    ),
)


@FUZZ
@given(body=st.one_of(st.binary(max_size=256), st.lists(batch_items, max_size=8)))
def test_batch_route(client, body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post("/1/batch/fuzz-batch", content=raw)
    check(r, 200, 400)
    if r.status_code == 200:
        statuses = r.json()
        assert isinstance(body, list) and len(statuses) == len(body)
        for item, status in zip(body, statuses, strict=True):
            assert status["status"] in (202, 400), status
            if status["status"] == 400:
                assert status["error"]
            else:
                assert isinstance(item, dict) and isinstance(item.get("data"), dict)


# -- queries ----------------------------------------------------------------------------------

COLUMNS = ["duration_ms", "name", "service.name", "a", "trace.trace_id", "error", "body", "x"]
OPS = ["=", "!=", ">", ">=", "<", "<=", "starts-with", "contains", "exists", "in", "not-in"]
CALC = ["COUNT", "SUM", "AVG", "MAX", "MIN", "P50", "P99", "HEATMAP", "COUNT_DISTINCT"]
CALC += ["CONCURRENCY", "RATE_SUM", "RATE_AVG", "P001"]
filters = st.fixed_dictionaries(
    {"column": st.sampled_from(COLUMNS), "op": st.sampled_from(OPS)},
    optional={"value": json_scalars | st.lists(json_scalars, max_size=3)},
)
calculations = st.fixed_dictionaries(
    {"op": st.sampled_from(CALC)}, optional={"column": st.sampled_from(COLUMNS)}
)
spec_like = st.fixed_dictionaries(
    {},
    optional={
        "calculations": st.lists(calculations, max_size=3),
        "filters": st.lists(filters, max_size=3),
        "filter_combination": st.sampled_from(["AND", "OR", "XOR"]),
        "breakdowns": st.lists(st.sampled_from(COLUMNS), max_size=2),
        "orders": st.lists(
            st.fixed_dictionaries(
                {"order": st.sampled_from(["ascending", "descending"])},
                optional={"op": st.sampled_from(CALC), "column": st.sampled_from(COLUMNS)},
            ),
            max_size=2,
        ),
        "havings": st.lists(
            st.fixed_dictionaries(
                {
                    "calculate_op": st.sampled_from(CALC),
                    "op": st.sampled_from(["=", ">", "<"]),
                    "value": json_scalars,
                },
                optional={"column": st.sampled_from(COLUMNS)},
            ),
            max_size=2,
        ),
        "limit": st.integers(-5, 20_000),
        "time_range": st.integers(-5, 10**10) | st.sampled_from([60, 3600, 86400]),
        "start_time": st.integers(-5, 10**10) | st.just(int(time.time()) - 3600),
        "end_time": st.integers(-5, 10**10) | st.just(int(time.time())),
        "granularity": st.integers(-1, 10**6),
        "usage_mode": json_scalars,
    },
)


def _run_query(client, body: bytes) -> None:
    r = client.post("/1/queries/__all__", content=body)
    check(r, 200, 400)
    if r.status_code != 200:
        assert r.json()["error"]
        return
    qid = r.json()["id"]
    assert client.get(f"/1/queries/__all__/{qid}").status_code == 200
    r = client.post("/1/query_results/__all__", json={"query_id": qid})
    check(r, 201, 400)
    if r.status_code != 201:
        assert r.json()["error"]
        return
    result = r.json()
    deadline = time.monotonic() + 30
    while not result["complete"]:
        assert time.monotonic() < deadline, "query did not complete"
        time.sleep(0.02)
        r = client.get(f"/1/query_results/__all__/{result['id']}")
        check(r, 200)
        result = r.json()
    assert "data" in result or result.get("error"), result


@FUZZ
@given(body=st.one_of(st.binary(max_size=256), json_values.map(lambda v: json.dumps(v).encode())))
def test_queries_arbitrary(client, body):
    _run_query(client, body)


@FUZZ
@given(spec=spec_like)
def test_queries_spec_like(client, spec):
    _run_query(client, json.dumps(spec).encode())


@SMALL
@given(body=json_values)
def test_query_results_arbitrary_options(client, body):
    qid = client.post("/1/queries/__all__", json={}).json()["id"]
    if isinstance(body, dict):
        body = {**body, "query_id": qid}
    r = client.post("/1/query_results/__all__", content=json.dumps(body).encode())
    check(r, 201, 400)


# -- trace API --------------------------------------------------------------------------------

trace_filters = st.fixed_dictionaries(
    {
        "column": st.sampled_from(
            [
                "duration_ms",
                "span_count",
                "error",
                "root.name",
                "root.service.name",
                "service.name",
                "bogus",
            ]
        ),
        "op": st.sampled_from([*OPS, "does-not-exist", "ends-with", "does-not-contain"]),
    },
    optional={"value": json_scalars | st.lists(json_scalars, max_size=3)},
)
search_like = st.fixed_dictionaries(
    {},
    optional={
        "dataset": st.sampled_from(["__all__", "fuzz", "nope", ""]) | json_scalars,
        "filters": st.lists(filters, max_size=2),
        "filter_combination": st.sampled_from(["AND", "OR"]) | json_scalars,
        "trace_filters": st.lists(trace_filters, max_size=3) | json_values,
        "time_range": st.integers(-5, 10**10),
        "start_time": st.integers(-5, 10**10),
        "end_time": st.integers(-5, 10**10),
        "limit": json_scalars,
    },
)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=256),
        json_values.map(lambda v: json.dumps(v).encode()),
        search_like.map(lambda v: json.dumps(v).encode()),
    )
)
def test_trace_search(client, body):
    r = client.post("/api/v1/traces/search", content=body)
    check(r, 200, 400, 404)
    if r.status_code == 200:
        for t in r.json()["traces"]:
            assert len(t["trace_id"]) == 32
    else:
        assert r.json()["error"]


@FUZZ
@given(
    trace_id=st.one_of(
        st.text(max_size=40),
        st.text(alphabet="0123456789abcdefABCDEF-", max_size=40),
        st.from_regex(r"1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}", fullmatch=True),
        st.from_regex(r"[0-9a-fA-F]{32}", fullmatch=True),
        st.sampled_from(["0" * 32, "1-00000000-000000000000000000000000", "search", "%00"]),
    )
)
def test_get_trace_arbitrary_ids(client, trace_id):
    if not trace_id:
        return
    r = client.get(f"/api/v1/traces/{quote(trace_id, safe='')}")
    if "/" in trace_id:  # %2F is decoded before routing: another route, a redirect or a 404
        check(r)
        return
    check(r, 200, 400, 404)
    if r.status_code != 200:
        assert r.json()["error"]


# -- mutated valid Honeycomb and trace-search bodies -----------------------------------------

_NOW_S = int(time.time())
VALID_BODIES = {
    "/1/events/fuzz-events": {"endpoint": "/a", "bytes": 10, "ok": True, "nested": {"x": [1]}},
    "/1/batch/fuzz-batch": [
        {"data": {"endpoint": "/a", "bytes": 10}, "time": _NOW_S, "samplerate": 2},
        {"data": {"endpoint": "/b", "latency": 1.5}, "time": "2024-01-01T00:00:00Z"},
    ],
    "/1/queries/__all__": {
        "calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}],
        "filters": [{"column": "name", "op": "in", "value": ["a", "b"]}],
        "breakdowns": ["service.name"],
        "orders": [{"op": "COUNT", "order": "descending"}],
        "havings": [{"calculate_op": "COUNT", "op": ">", "value": 0}],
        "time_range": 3600,
        "granularity": 60,
        "limit": 10,
    },
    "/api/v1/traces/search": {
        "filters": [{"column": "name", "op": "starts-with", "value": "seed"}],
        "trace_filters": [
            {"column": "duration_ms", "op": ">", "value": 0},
            {"column": "service.name", "op": "in", "value": ["fuzz"]},
        ],
        "time_range": 3600,
        "limit": 5,
    },
}


@pytest.mark.parametrize("path", list(VALID_BODIES))
@FUZZ
@given(data=st.data(), encoding=st.sampled_from([None, "gzip"]))
def test_mutated_valid_bodies(client, path, data, encoding):
    body = json.dumps(data.draw(mutated_json(VALID_BODIES[path]))).encode()
    headers = {"content-type": JSON}
    if encoding and path.startswith(("/1/events", "/1/batch")):  # the ingest routes decompress
        body = gzip.compress(body)
        headers["content-encoding"] = encoding
    if path == "/1/queries/__all__":
        _run_query(client, body)
        return
    r = client.post(path, content=body, headers=headers)
    check(r, 200, 400, 404)
    if r.status_code != 200:
        assert r.json()["error"]
    elif path.startswith("/1/batch"):
        assert all(s["status"] in (202, 400) for s in r.json())


# -- afterwards -------------------------------------------------------------------------------


def test_server_still_healthy_and_serving(server, client):
    assert server.proc.poll() is None
    assert client.get("/healthz").status_code == 200
    # a valid OTLP request and a valid event are stored and read back
    trace_id = uuid.uuid4().bytes
    r = post(client, "/v1/traces", _seed_trace(trace_id, "after-fuzz"), PB)
    assert r.status_code == 200
    r = client.post("/1/events/after-fuzz", json={"ok": 1})
    assert r.status_code == 200
    deadline = time.monotonic() + 30
    while client.get("/healthz").json()["pending_rows"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = client.get(f"/api/v1/traces/{trace_id.hex()}")
    assert r.status_code == 200
    assert [s["name"] for s in r.json()["spans"]] == ["after-fuzz"]
    qid = client.post("/1/queries/after-fuzz", json={"time_range": 600}).json()["id"]
    r = client.post("/1/query_results/after-fuzz", json={"query_id": qid})
    result = r.json()
    while not result["complete"]:
        time.sleep(0.05)
        result = client.get(f"/1/query_results/after-fuzz/{result['id']}").json()
    assert result["data"]["results"] == [{"data": {"COUNT": 1}}]
    _run_query(client, b'{"calculations": [{"op": "COUNT"}], "time_range": 600}')
    # nothing acknowledged was lost on the way to the store, and no handler crashed
    deadletters = server.data_dir / "deadletter"
    assert not deadletters.exists() or not any(deadletters.iterdir())
    log = "".join(server.output)
    for bad in ("Traceback", "store write failed", "dead letters"):
        assert bad not in log, log[-3000:]
