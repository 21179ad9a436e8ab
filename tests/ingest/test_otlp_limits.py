"""Per-request limits of the OTLP decoders (``otlp/common.py``: MAX_ROWS, MAX_ATTR_KEYS, MAX_CELLS,
MAX_SLOTS).

* the hostile body that motivated them (one resource with 50k attributes over 20k minimal spans,
  ~10^9 cells once copied onto every row) is refused by the C decoder and the pure-Python one,
  fast and without large memory growth (measured in a fresh subprocess);
* just under / just over each limit, for traces (C, Python, OTLP/JSON) and logs (protobuf,
  OTLP/JSON): every decoder accepts or refuses alike, with the same message, and what is accepted
  decodes identically in C and Python and holds exactly the limit (rows, keys, values counted
  from the output);
* what counts: rejected spans, links left out, dropped values, empty keys, a resource's
  service.name and overrides of one key do not; trace.link.* keys do;
* metrics: points capped at MAX_ROWS, values at MAX_CELLS (checked before points are built);
* MAX_SLOTS (attribute columns x rows of the dense output): the amplification body that motivated
  it (one span with 200k events and 2,000 one-off keys, ~2 MB, ~3 GB decoded) is refused by every
  decoder, fast and small; exactly at / one over the limit at its real size; what makes a column
  (a key per value type, overridden values too) at a small limit, C (a tiny build) = reference =
  OTLP/JSON;
* the order of the checks (which limit a request is refused for, where several are passed), on
  hypothesis-built requests: a copy of the C decoder built with tiny limits (-DMAX_ROWS=...)
  against the reference and OTLP/JSON with the same limits patched in; logs protobuf vs JSON.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
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
from otlp_requests import (
    log_request_to_pb,
    log_requests,
    to_otlp_json,
    trace_request_to_pb,
    trace_requests,
)

from tracehive.ingest import otlp
from tracehive.ingest.otlp import common
from tracehive.ingest.otlp.common import (
    LIMIT_PREFIX,
    MAX_ATTR_KEYS,
    MAX_CELLS,
    MAX_ROWS,
    MAX_SLOTS,
    TOO_MANY_CELLS,
    TOO_MANY_KEYS,
    TOO_MANY_LOG_RECORDS,
    TOO_MANY_POINTS,
    TOO_MANY_SLOTS,
    TOO_MANY_SPAN_ROWS,
)

try:
    from tracehive.ingest import _otlp_fast as fast  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - CI builds it; then "c" below is the Python path
    fast = None
needs_c = pytest.mark.skipif(not otlp.ACCELERATED, reason="the C decoder is not built")

NOW = 1_700_000_000_000_000_000

# ---------------------------------------------------------------------------------------------
# Requests as small specs, built both as protobuf and as OTLP/JSON.
#
# A value is ("s", str) | ("i", int) | ("f", float) | ("empty", None). Traces: resource and scope
# attributes, then spans: {"attrs": [...], "events": [[attrs], ...], "links": [(ok, attrs)],
# "ok": bool (False: an all-zero span_id, the span is rejected)}. Logs: records as attribute lists.

Attrs = list[tuple[str, tuple[str, Any]]]


def _any_pb(v: tuple[str, Any]) -> AnyValue:
    t, x = v
    if t == "s":
        return AnyValue(string_value=x)
    if t == "i":
        return AnyValue(int_value=x)
    if t == "f":
        return AnyValue(double_value=x)
    return AnyValue()


def _any_json(v: tuple[str, Any]) -> dict[str, Any]:
    t, x = v
    if t == "s":
        return {"stringValue": x}
    if t == "i":
        return {"intValue": str(x)}
    if t == "f":
        return {"doubleValue": "NaN" if x != x else x}
    return {}


def _kvs_pb(attrs: Attrs) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any_pb(v)) for k, v in attrs]


def _kvs_json(attrs: Attrs) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any_json(v)} for k, v in attrs]


def _ids(i: int) -> tuple[bytes, bytes]:
    return (i + 1).to_bytes(16, "big"), (i + 1).to_bytes(8, "big")


def span(attrs: Attrs = (), events: list[Attrs] = (), links=(), ok: bool = True) -> dict:
    return {"attrs": list(attrs), "events": list(events), "links": list(links), "ok": ok}


def traces_pb(resource: Attrs, scope: Attrs, spans: list[dict]) -> bytes:
    pb_spans = []
    for i, s in enumerate(spans):
        tid, sid = _ids(i)
        link_tid, link_sid = _ids(i + 10**6)
        pb_spans.append(
            Span(
                trace_id=tid,
                span_id=sid if s["ok"] else bytes(8),
                name="op",
                start_time_unix_nano=NOW,
                end_time_unix_nano=NOW + 1000,
                attributes=_kvs_pb(s["attrs"]),
                events=[
                    Span.Event(time_unix_nano=NOW, attributes=_kvs_pb(ev)) for ev in s["events"]
                ],
                links=[
                    Span.Link(
                        trace_id=link_tid, span_id=link_sid if ok else b"", attributes=_kvs_pb(a)
                    )
                    for ok, a in s["links"]
                ],
            )
        )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=_kvs_pb(resource)),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name="lib", attributes=_kvs_pb(scope)),
                        spans=pb_spans,
                    )
                ],
            )
        ]
    )
    return request.SerializeToString()


def traces_json(resource: Attrs, scope: Attrs, spans: list[dict]) -> bytes:
    js_spans = []
    for i, s in enumerate(spans):
        tid, sid = _ids(i)
        link_tid, link_sid = _ids(i + 10**6)
        js_spans.append(
            {
                "traceId": tid.hex(),
                "spanId": (sid if s["ok"] else bytes(8)).hex(),
                "name": "op",
                "startTimeUnixNano": str(NOW),
                "endTimeUnixNano": str(NOW + 1000),
                "attributes": _kvs_json(s["attrs"]),
                "events": [
                    {"timeUnixNano": str(NOW), "attributes": _kvs_json(ev)} for ev in s["events"]
                ],
                "links": [
                    {
                        "traceId": link_tid.hex(),
                        "spanId": link_sid.hex() if ok else "",
                        "attributes": _kvs_json(a),
                    }
                    for ok, a in s["links"]
                ],
            }
        )
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": _kvs_json(resource)},
                "scopeSpans": [
                    {"scope": {"name": "lib", "attributes": _kvs_json(scope)}, "spans": js_spans}
                ],
            }
        ]
    }
    return json.dumps(doc).encode()


def logs_pb(resource: Attrs, scope: Attrs, records: list[Attrs]) -> bytes:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=_kvs_pb(resource)),
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(name="lib", attributes=_kvs_pb(scope)),
                        log_records=[
                            LogRecord(time_unix_nano=NOW, attributes=_kvs_pb(r)) for r in records
                        ],
                    )
                ],
            )
        ]
    )
    return request.SerializeToString()


def logs_json(resource: Attrs, scope: Attrs, records: list[Attrs]) -> bytes:
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": _kvs_json(resource)},
                "scopeLogs": [
                    {
                        "scope": {"name": "lib", "attributes": _kvs_json(scope)},
                        "logRecords": [
                            {"timeUnixNano": str(NOW), "attributes": _kvs_json(r)} for r in records
                        ],
                    }
                ],
            }
        ]
    }
    return json.dumps(doc).encode()


def keys(prefix: str, n: int, value: tuple[str, Any] = ("s", "v")) -> Attrs:
    return [(f"{prefix}{i}", value) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Decoding with every decoder


def _outcome(decode, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode(body)
    except otlp.DecodeError as exc:
        return "refused", str(exc)


def _cells(batch) -> int:
    return sum(len(col) - col.count(None) for col in batch.attrs.values())


def _same_batch(a, b) -> None:
    assert a.n == b.n
    assert a.cols == b.cols
    assert a.attrs.keys() == b.attrs.keys()
    for key, col in a.attrs.items():
        assert col == b.attrs[key], key


def check_traces(
    resource: Attrs, scope: Attrs, spans: list[dict], refused: str | None, *, with_json=True
):
    """C, Python and OTLP/JSON decode the request alike: all refuse with ``refused``, or all
    accept (and C and Python give the same batch). Returns the accepted batch."""
    body = traces_pb(resource, scope, spans)
    results = {
        "c": _outcome(lambda b: otlp.decode_traces(b, "protobuf"), body),
        "py": _outcome(lambda b: otlp.decode_traces_py(b, "protobuf"), body),
    }
    if refused is not None and not with_json:  # (the slowest decoder, where it adds nothing)
        assert results == {k: ("refused", refused) for k in results}
        return None
    results["json"] = _outcome(
        lambda b: otlp.decode_traces(b, "json"), traces_json(resource, scope, spans)
    )
    if refused is not None:
        assert results == {k: ("refused", refused) for k in results}
        return None
    assert {k: r[0] for k, r in results.items()} == {"c": "ok", "py": "ok", "json": "ok"}
    c, py, js = (results[k][1] for k in ("c", "py", "json"))
    _same_batch(c.events, py.events)
    _same_batch(py.events, js.events)
    assert (c.accepted, c.rejected) == (py.accepted, py.rejected) == (js.accepted, js.rejected)
    return c.events


def check_logs(resource: Attrs, scope: Attrs, records: list[Attrs], refused: str | None):
    pb = _outcome(lambda b: otlp.decode_logs(b, "protobuf", NOW), logs_pb(resource, scope, records))
    js = _outcome(lambda b: otlp.decode_logs(b, "json", NOW), logs_json(resource, scope, records))
    if refused is not None:
        assert pb == js == ("refused", refused)
        return None
    assert pb[0] == js[0] == "ok"
    _same_batch(pb[1].events, js[1].events)
    return pb[1].events


# ---------------------------------------------------------------------------------------------
# The constants


@needs_c
def test_limits_are_the_documented_numbers_in_python_and_c():
    assert (MAX_ROWS, MAX_ATTR_KEYS, MAX_CELLS, MAX_SLOTS) == (
        200_000,
        2_000,
        10_000_000,
        20_000_000,
    )
    assert (fast.MAX_ROWS, fast.MAX_ATTR_KEYS, fast.MAX_CELLS, fast.MAX_SLOTS) == (
        MAX_ROWS,
        MAX_ATTR_KEYS,
        MAX_CELLS,
        MAX_SLOTS,
    )
    assert TOO_MANY_KEYS == "request has more than 2000 distinct attribute keys"
    for message in (
        TOO_MANY_SPAN_ROWS,
        TOO_MANY_LOG_RECORDS,
        TOO_MANY_POINTS,
        TOO_MANY_CELLS,
        TOO_MANY_SLOTS,
    ):
        assert message.startswith(common.LIMIT_PREFIX)


# ---------------------------------------------------------------------------------------------
# The hostile body

HOSTILE_RESOURCE_ATTRS = 50_000
HOSTILE_SPANS = 20_000


def hostile_traces() -> bytes:
    resource = Resource(
        attributes=[
            KeyValue(key=f"k{i}", value=AnyValue(string_value="v"))
            for i in range(HOSTILE_RESOURCE_ATTRS)
        ]
    )
    spans = [Span(trace_id=_ids(i)[0], span_id=_ids(i)[1]) for i in range(HOSTILE_SPANS)]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


_PROBE = textwrap.dedent(
    """
    import resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a regression fails, not the box
    from tracehive.ingest import otlp
    which, path = sys.argv[1], sys.argv[2]
    body = open(path, "rb").read()
    decode = {
        "c": lambda: otlp.decode_traces(body, "protobuf"),
        "py": lambda: otlp.decode_traces_py(body, "protobuf"),
        "json": lambda: otlp.decode_traces(body, "json"),
        "logs": lambda: otlp.decode_logs(body, "protobuf", 0),
        "metrics": lambda: otlp.decode_metrics(body, "protobuf", "m"),
    }[which]
    assert which != "c" or otlp.ACCELERATED
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        decode()
        outcome = "accepted"
    except otlp.DecodeError as exc:
        outcome = str(exc)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(repr((outcome, elapsed, (after - before) * 1024)))
    """
)


def _probe(tmp_path, which: str, body: bytes) -> tuple[str, float, int]:
    """Decode ``body`` in a fresh interpreter: (outcome, seconds, peak RSS growth in bytes)."""
    path = tmp_path / f"{which}.bin"
    path.write_bytes(body)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, which, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hostile_body() -> bytes:
    body = hostile_traces()
    assert 1_000_000 < len(body) < 2_000_000
    return body


@pytest.mark.parametrize("which", [pytest.param("c", marks=needs_c), "py"])
def test_hostile_body_is_refused_fast_and_small(tmp_path, hostile_body, which):
    outcome, elapsed, rss_growth = _probe(tmp_path, which, hostile_body)
    assert outcome == TOO_MANY_KEYS
    assert elapsed < 2.0
    assert rss_growth < 300 << 20


def test_hostile_body_in_process(hostile_body):
    for decode in (
        lambda: otlp.decode_traces(hostile_body, "protobuf"),
        lambda: otlp.decode_traces_py(hostile_body, "protobuf"),
    ):
        t0 = time.perf_counter()
        with pytest.raises(otlp.DecodeError) as info:
            decode()
        assert time.perf_counter() - t0 < 2.0
        assert str(info.value) == TOO_MANY_KEYS


@needs_c
def test_hostile_body_under_the_key_limit_is_refused_for_its_cells(tmp_path):
    """1,999 resource attributes over 20k spans: every key allowed, 4*10^7 cells. Refused at the
    first row past MAX_CELLS (~5,000 rows in), memory bounded by what was written until then."""
    resource = keys("k", MAX_ATTR_KEYS - 1)
    spans = [Span(trace_id=_ids(i)[0], span_id=_ids(i)[1]) for i in range(HOSTILE_SPANS)]
    body = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=_kvs_pb(resource)),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    ).SerializeToString()
    for which in ("c", "py"):
        outcome, elapsed, rss_growth = _probe(tmp_path, which, body)
        assert outcome == TOO_MANY_CELLS, which
        assert elapsed < 5.0, which
        assert rss_growth < 400 << 20, which


def test_hostile_logs_and_metrics_are_refused_fast_and_small(tmp_path):
    resource = Resource(attributes=_kvs_pb(keys("k", HOSTILE_RESOURCE_ATTRS)))
    logs = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=resource,
                scope_logs=[ScopeLogs(log_records=[LogRecord()] * HOSTILE_SPANS)],
            )
        ]
    ).SerializeToString()
    metrics = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=resource,
                scope_metrics=[
                    ScopeMetrics(
                        metrics=[
                            Metric(
                                name="m",
                                gauge=Gauge(data_points=[NumberDataPoint()] * HOSTILE_SPANS),
                            )
                        ]
                    )
                ],
            )
        ]
    ).SerializeToString()
    for which, body, message in (
        ("logs", logs, TOO_MANY_KEYS),
        ("metrics", metrics, TOO_MANY_CELLS),
    ):
        outcome, elapsed, rss_growth = _probe(tmp_path, which, body)
        assert outcome == message, which
        assert elapsed < 2.0, which
        assert rss_growth < 300 << 20, which


# ---------------------------------------------------------------------------------------------
# MAX_ROWS (traces: span + event + link rows)


def _rows_spans(extra: str | None) -> list[dict]:
    """Exactly MAX_ROWS rows (1,000 spans x (span + 198 events + 1 link)), with rejected spans
    and links left out (neither counts) mixed in; ``extra`` adds one more row of that kind."""
    spans = []
    for i in range(1000):
        spans.append(span(events=[[]] * 198, links=[(True, []), (False, [])]))
        if i % 100 == 0:
            spans.append(span(events=[[]] * 5, links=[(True, [])], ok=False))
    assert sum(1 + len(s["events"]) + 1 for s in spans if s["ok"]) == MAX_ROWS
    if extra == "span":
        spans.append(span())
    elif extra == "event":
        spans[-1]["events"].append([])
    elif extra == "link":
        spans[-1]["links"].append((True, []))
    return spans


def test_rows_exactly_at_the_limit_are_accepted():
    batch = check_traces([("service.name", ("s", "svc"))], [], _rows_spans(None), None)
    assert batch.n == MAX_ROWS


@pytest.mark.parametrize("extra", ["span", "event", "link"])
def test_one_row_over_the_limit_is_refused(extra):
    check_traces([], [], _rows_spans(extra), TOO_MANY_SPAN_ROWS, with_json=extra == "event")


# ---------------------------------------------------------------------------------------------
# MAX_ATTR_KEYS

NOT_COUNTED: Attrs = [("", ("s", "empty key")), ("dropped.empty", ("empty", None))]
NOT_COUNTED_F: Attrs = [("dropped.nan", ("f", math.nan))]


def _keys_request(extra: str | None) -> tuple[Attrs, Attrs, list[dict]]:
    """Exactly MAX_ATTR_KEYS keys spread over every level, with attributes that do not count
    (empty keys, dropped values, service.name of the resource, a rejected span's attributes, a
    key seen again with another type); ``extra`` adds one more key at that level."""
    resource = [("service.name", ("s", "svc")), *keys("r", 500), *NOT_COUNTED, *NOT_COUNTED_F]
    scope = [*keys("sc", 300), ("r0", ("i", 1)), *NOT_COUNTED]
    spans = [
        span(attrs=[*keys("sp", 700), ("sc0", ("i", 2)), *NOT_COUNTED]),
        span(attrs=keys("rejected", 50), ok=False),
        span(events=[[*keys("ev", 300), *NOT_COUNTED_F]]),
        # trace.link.trace_id and trace.link.span_id are keys too
        span(links=[(True, keys("ln", 198)), (False, keys("gone", 10))]),
    ]
    assert MAX_ATTR_KEYS == 500 + 300 + 700 + 300 + 2 + 198
    if extra == "resource":
        resource.append(("new", ("s", "x")))
    elif extra == "scope":
        scope.append(("new", ("s", "x")))
    elif extra == "span":
        spans[0]["attrs"].append(("new", ("i", 3)))
    elif extra == "event":
        spans[2]["events"][0].append(("new", ("s", "x")))
    elif extra == "link":
        spans[3]["links"][0][1].append(("new", ("s", "x")))
    elif extra == "late span":  # the last row
        spans.append(span(attrs=[("new", ("s", "x"))]))
    return resource, scope, spans


def test_keys_exactly_at_the_limit_are_accepted():
    batch = check_traces(*_keys_request(None), None)
    assert len({key for key, _t in batch.attrs}) == MAX_ATTR_KEYS


@pytest.mark.parametrize("extra", ["resource", "scope", "span", "event", "link", "late span"])
def test_one_key_over_the_limit_is_refused(extra):
    check_traces(*_keys_request(extra), TOO_MANY_KEYS)


def test_resource_keys_count_without_rows():
    """A resource's keys count even when none of its spans makes a row (the reference gives them
    columns up front): 2,001 keys over two resources, one of them all rejected spans."""
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=_kvs_pb(keys("a", 1000))),
                scope_spans=[ScopeSpans(spans=[Span(trace_id=b"x", span_id=b"y")])],
            ),
            ResourceSpans(resource=Resource(attributes=_kvs_pb(keys("b", 1001)))),
        ]
    )
    body = request.SerializeToString()
    for decode in (otlp.decode_traces, otlp.decode_traces_py):
        with pytest.raises(otlp.DecodeError, match="more than 2000 distinct attribute keys"):
            decode(body, "protobuf")


# ---------------------------------------------------------------------------------------------
# MAX_CELLS: every value placed into a row, resource/scope values once per row


def _cells_request(extra: str | None) -> tuple[Attrs, Attrs, list[dict]]:
    """Exactly MAX_CELLS values: 999 resource + 1 scope attribute on 9,999 span rows (10^3
    each), and a last event row with the 999 resource values and one of its own (10^3). Span
    attributes that override a resource/scope key (also with another type) and dropped values
    add nothing. ``extra`` adds one value."""
    resource = [("service.name", ("s", "svc")), *keys("r", 999)]
    scope = [("s0", ("s", "scope"))]
    spans = [span() for _ in range(9_997)]
    spans.append(span(attrs=[("r1", ("i", 1)), ("s0", ("s", "again")), *NOT_COUNTED]))
    spans.append(span(events=[[("s0", ("i", 7)), *NOT_COUNTED_F]]))
    if extra == "event":  # one more value in the last row
        spans[-1]["events"][0].append(("e1", ("s", "x")))
    elif extra == "span":  # the first row has one value of its own: the last row passes
        spans[0]["attrs"].append(("x", ("s", "x")))
    elif extra == "link":  # a row after the last: the resource's values and trace.link.*
        spans[-1]["links"].append((True, []))
    return resource, scope, spans


def test_cells_exactly_at_the_limit_are_accepted():
    batch = check_traces(*_cells_request(None), None)
    assert _cells(batch) == MAX_CELLS


@pytest.mark.parametrize("extra", ["event", "span", "link"])
def test_one_cell_over_the_limit_is_refused(extra):
    check_traces(*_cells_request(extra), TOO_MANY_CELLS)


def test_the_first_limit_passed_names_the_error():
    """The first row past any limit decides; within one row rows go before keys and slots (in
    the order columns are made) before cells."""
    resource, scope, spans = _cells_request("span")  # cells pass at the last row...
    spans.append(span(attrs=keys("k", MAX_ATTR_KEYS)))  # ...keys one row later
    check_traces(resource, scope, spans, TOO_MANY_CELLS)
    resource, scope, spans = _cells_request("span")  # one row past cells, keys and slots:
    spans[-1]["events"][0].extend(keys("k", MAX_ATTR_KEYS))
    # ~1,000 columns over 10,000 rows: the 2,001st column passes MAX_SLOTS before the 2,001st
    # key (two keys have two columns) passes MAX_ATTR_KEYS
    check_traces(resource, scope, spans, TOO_MANY_SLOTS)
    # keys before slots and cells, rows before all: test_tiny_limits_* (at MAX_ROWS that takes
    # 200,000 rows, and keys past 2,000 pass MAX_SLOTS first from 10,000 rows on)


@needs_c
def test_c_stops_at_the_limit_before_reading_the_rest():
    """Past a limit the C decoder does not read on, so a body malformed after that point is
    refused for the limit (the reference parses everything first); both are DecodeErrors."""
    body = traces_pb(keys("r", MAX_ATTR_KEYS + 1), [], [span()]) + b"\x0a\x05ab"
    with pytest.raises(otlp.DecodeError, match="distinct attribute keys"):
        otlp.decode_traces(body, "protobuf")
    with pytest.raises(otlp.DecodeError, match="not a valid ExportTraceServiceRequest"):
        otlp.decode_traces_py(body, "protobuf")


@needs_c
def test_c_limit_errors_are_not_reported_as_malformed():
    with pytest.raises(ValueError) as info:
        fast.decode_traces(traces_pb(keys("r", MAX_ATTR_KEYS + 1), [], []))
    assert str(info.value) == TOO_MANY_KEYS


@needs_c
def test_the_scratch_state_is_clean_after_a_refusal():
    """A refused request leaves nothing behind for the next call (key counts, cells, rows)."""
    small = traces_pb([("service.name", ("s", "svc")), ("a", ("i", 1))], [], [span()])
    expected = otlp.decode_traces_py(small, "protobuf").events
    for body in (
        traces_pb(keys("r", MAX_ATTR_KEYS + 1), [], [span()]),
        traces_pb(*_cells_request("event")),
    ):
        with pytest.raises(otlp.DecodeError):
            otlp.decode_traces(body, "protobuf")
        _same_batch(otlp.decode_traces(small, "protobuf").events, expected)


# ---------------------------------------------------------------------------------------------
# Logs (protobuf and OTLP/JSON alike)


def test_logs_rows(monkeypatch):
    records = [[]] * (MAX_ROWS + 1)
    with pytest.raises(otlp.DecodeError) as info:
        otlp.decode_logs(logs_pb([], [], records), "protobuf", NOW)
    assert str(info.value) == TOO_MANY_LOG_RECORDS
    # exactly at the limit, protobuf and JSON alike: at a smaller one (no C decoder to agree with)
    monkeypatch.setattr(common, "MAX_ROWS", 1000)
    assert check_logs([], [], [[]] * 1000, None).n == 1000
    check_logs([], [], [[]] * 1001, TOO_MANY_LOG_RECORDS)


def test_logs_keys():
    resource = [("service.name", ("s", "svc")), *keys("r", 1000), *NOT_COUNTED]
    scope = [*keys("sc", 500), ("r0", ("i", 1))]
    records = [keys("a", 250), [*keys("b", 250), ("sc1", ("i", 1)), *NOT_COUNTED_F]]
    batch = check_logs(resource, scope, records, None)
    assert len({key for key, _t in batch.attrs}) == MAX_ATTR_KEYS
    records[1].append(("new", ("s", "x")))
    check_logs(resource, scope, records, TOO_MANY_KEYS)


def test_logs_cells(monkeypatch):
    """At a smaller limit (the counting is RowWriter's, tested at MAX_CELLS with traces)."""
    monkeypatch.setattr(common, "MAX_CELLS", 10_000)
    resource = [("service.name", ("s", "svc")), *keys("r", 98)]
    scope = [("s0", ("s", "x")), ("s1", ("i", 1))]  # 100 values on each of 100 records
    records = [[] for _ in range(99)] + [[("r0", ("i", 5)), *NOT_COUNTED]]
    batch = check_logs(resource, scope, records, None)
    assert _cells(batch) == 10_000
    records[-1].append(("x", ("s", "x")))
    check_logs(resource, scope, records, TOO_MANY_CELLS)


# ---------------------------------------------------------------------------------------------
# Metrics: points capped at MAX_ROWS; values (resource + scope + point) at MAX_CELLS


def _metrics(resource: Attrs, points: list[list[Attrs]]) -> tuple[bytes, bytes]:
    """One gauge per entry of ``points`` (its points' own attributes): protobuf and OTLP/JSON."""
    pb = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=_kvs_pb(resource)),
                scope_metrics=[
                    ScopeMetrics(
                        metrics=[
                            Metric(
                                name=f"m{i}",
                                gauge=Gauge(
                                    data_points=[
                                        NumberDataPoint(as_int=1, attributes=_kvs_pb(a))
                                        for a in dps
                                    ]
                                ),
                            )
                            for i, dps in enumerate(points)
                        ]
                    )
                ],
            )
        ]
    )
    doc = {
        "resourceMetrics": [
            {
                "resource": {"attributes": _kvs_json(resource)},
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": f"m{i}",
                                "gauge": {
                                    "dataPoints": [
                                        {"asInt": "1", "attributes": _kvs_json(a)} for a in dps
                                    ]
                                },
                            }
                            for i, dps in enumerate(points)
                        ]
                    }
                ],
            }
        ]
    }
    return pb.SerializeToString(), json.dumps(doc).encode()


def check_metrics(resource: Attrs, points: list[list[Attrs]], refused: str | None):
    pb, js = _metrics(resource, points)
    outcomes = [
        _outcome(lambda b: otlp.decode_metrics(b, "protobuf", "m"), pb),
        _outcome(lambda b: otlp.decode_metrics(b, "json", "m"), js),
    ]
    if refused is not None:
        assert outcomes == [("refused", refused)] * 2
        return None
    assert [o[0] for o in outcomes] == ["ok", "ok"]
    a, b = (o[1].metrics.points for o in outcomes)
    assert a == b
    return a


def test_metrics_points(monkeypatch):
    half = [[]] * (MAX_ROWS // 2)
    check_metrics([], [half, half, [[]]], TOO_MANY_POINTS)  # refused before any point is built
    monkeypatch.setattr(common, "MAX_ROWS", 1000)  # exactly at the limit (Python only: smaller)
    assert len(check_metrics([], [[[]] * 500, [[]] * 500], None)) == 1000
    check_metrics([], [[[]] * 500, [[]] * 501], TOO_MANY_POINTS)


def test_metrics_cells_refused_before_the_points_are_built():
    resource = [("service.name", ("s", "svc")), *keys("r", 1000)]
    # 10,000 points x 1,000 resource values is the limit: one point more is refused up front
    check_metrics(resource, [[[]] * 5_000, [[]] * 5_001], TOO_MANY_CELLS)


def test_metrics_cells_count_each_points_attributes(monkeypatch):
    """Exact counting (a smaller limit: 10^7 values in dicts would take ~1 GB): resource values
    once per point, a point's own values, overrides once, dropped values not at all."""
    monkeypatch.setattr(common, "MAX_CELLS", 100)
    resource = [("service.name", ("s", "svc")), *keys("r", 9), *NOT_COUNTED]
    last = [("r0", ("i", 1)), ("p", ("s", "x")), *NOT_COUNTED, *NOT_COUNTED_F]
    points = [[]] * 10 + [last]  # 11 x 9 + 1
    assert sum(len(p.attributes) for p in check_metrics(resource, [points], None)) == 100
    # the second metric passes the check up front (45 + 6 x 9), not its exact count (+ 2)
    check_metrics(resource, [points[:5], [*points[5:-1], [*last, ("q", ("i", 1))]]], TOO_MANY_CELLS)
    check_metrics(resource, [points, [[]]], TOO_MANY_CELLS)  # up front: 9 more at least


# ---------------------------------------------------------------------------------------------
# MAX_SLOTS: attribute columns x rows (the output is dense: a list per column, a slot per row)

AMP_KEYS = MAX_ATTR_KEYS
AMP_EVENTS = MAX_ROWS - 1  # with the span row: exactly MAX_ROWS rows


def _amp_event_attrs(i: int, multi_type: bool) -> list[KeyValue]:
    if i >= AMP_KEYS:
        return []
    last = KeyValue(key=f"k{i}", value=AnyValue(string_value="v"))
    if not multi_type:
        return [last]
    # the same key as int, double and bool first, each overridden by the next: one value per
    # event, but a column per type in the reference (4x the slots)
    return [
        KeyValue(key=f"k{i}", value=AnyValue(int_value=1)),
        KeyValue(key=f"k{i}", value=AnyValue(double_value=1.5)),
        KeyValue(key=f"k{i}", value=AnyValue(bool_value=True)),
        last,
    ]


def amplification_traces(multi_type: bool = False) -> bytes:
    """One span with 199,999 events, the first 2,000 carrying one one-off key each: 200,000 rows,
    2,000 keys, 2,000 values (every other limit holds), ~2.2 MB. Measured before MAX_SLOTS: 4 *
    10^8 list slots, ~3.1 GB peak RSS in C, Python and OTLP/JSON alike (~5 GB with the Arrow
    conversion); with ``multi_type`` the reference went past 12 GB."""
    events = [
        Span.Event(time_unix_nano=NOW, attributes=_amp_event_attrs(i, multi_type))
        for i in range(AMP_EVENTS)
    ]
    tid, sid = _ids(0)
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=_kvs_pb([("service.name", ("s", "svc"))])),
                scope_spans=[ScopeSpans(spans=[Span(trace_id=tid, span_id=sid, events=events)])],
            )
        ]
    )
    return request.SerializeToString()


def amplification_traces_json() -> bytes:
    tid, sid = _ids(0)
    events: list[dict] = [{"timeUnixNano": str(NOW)} for _ in range(AMP_EVENTS)]
    for i in range(AMP_KEYS):
        events[i]["attributes"] = [{"key": f"k{i}", "value": {"stringValue": "v"}}]
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": _kvs_json([("service.name", ("s", "svc"))])},
                "scopeSpans": [
                    {"spans": [{"traceId": tid.hex(), "spanId": sid.hex(), "events": events}]}
                ],
            }
        ]
    }
    return orjson.dumps(doc)


def amplification_logs() -> bytes:
    records = [
        LogRecord(
            time_unix_nano=NOW,
            attributes=_kvs_pb([(f"k{i}", ("s", "v"))]) if i < AMP_KEYS else [],
        )
        for i in range(MAX_ROWS)
    ]
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])]
    ).SerializeToString()


# (decoder for _probe, body, peak RSS growth allowed). Measured here after MAX_SLOTS: C +2 MB in
# 0.01 s (refused at the 10,000th row, before anything dense exists); the reference and logs
# ~+190 MB in ~0.4 s (protobuf objects, then 2,000 lists of 10,000 slots); OTLP/JSON +263 MB in
# ~0.9 s (the parsed 8 MB document); multi-type +211 MB.
AMPLIFICATION = {
    "c": ("c", amplification_traces, 50 << 20),
    "py": ("py", amplification_traces, 300 << 20),
    "py-multi-type": ("py", lambda: amplification_traces(multi_type=True), 300 << 20),
    "c-multi-type": ("c", lambda: amplification_traces(multi_type=True), 50 << 20),
    "json": ("json", amplification_traces_json, 400 << 20),
    "logs": ("logs", amplification_logs, 300 << 20),
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, marks=[needs_c] if case.startswith("c") else []) for case in AMPLIFICATION],
)
def test_amplification_body_is_refused_fast_and_small(tmp_path, case):
    which, build, max_growth = AMPLIFICATION[case]
    body = build()
    assert len(body) < 16 << 20  # the default max_body_bytes: a body the server reads
    outcome, elapsed, rss_growth = _probe(tmp_path, which, body)
    assert outcome == TOO_MANY_SLOTS
    assert elapsed < 3.0
    assert rss_growth < max_growth


def _slots_spans(extra: str | None) -> list[dict]:
    """Exactly MAX_SLOTS: 2,000 columns over 10,000 rows (one span and 9,999 events, the first
    2,000 events with one one-off key each). ``extra``: one row more, one column more (a second
    type of a key), one column more from a value its own event overrides."""
    n_events = MAX_SLOTS // MAX_ATTR_KEYS - 1
    events = [[(f"k{i}", ("s", "v"))] if i < MAX_ATTR_KEYS else [] for i in range(n_events)]
    if extra == "row":
        events.append([])
    elif extra == "type":
        events[-1] = [("k0", ("i", 1))]
    elif extra == "overridden":
        events[-1] = [("k0", ("i", 1)), ("k0", ("s", "again"))]
    return [span(events=events)]


def _slots_outcomes(spans: list[dict]):
    """(outcome, rows, columns) of each decoder, one at a time (each batch is ~160 MB)."""
    resource = [("service.name", ("s", "svc"))]
    body = traces_pb(resource, [], spans)
    decoders = {
        "c": lambda: otlp.decode_traces(body, "protobuf"),
        "py": lambda: otlp.decode_traces_py(body, "protobuf"),
        "json": lambda: otlp.decode_traces(traces_json(resource, [], spans), "json"),
    }
    out = {}
    for name, decode in decoders.items():
        try:
            events = decode().events
            out[name] = ("ok", events.n, len(events.attrs))
        except otlp.DecodeError as exc:
            out[name] = ("refused", str(exc))
    return out


def test_slots_exactly_at_the_limit_are_accepted():
    outcomes = _slots_outcomes(_slots_spans(None))
    assert outcomes == dict.fromkeys(outcomes, ("ok", MAX_SLOTS // MAX_ATTR_KEYS, MAX_ATTR_KEYS))


@pytest.mark.parametrize("extra", ["row", "type", "overridden"])
def test_one_slot_row_or_column_over_the_limit_is_refused(extra):
    outcomes = _slots_outcomes(_slots_spans(extra))
    assert outcomes == dict.fromkeys(outcomes, ("refused", TOO_MANY_SLOTS))


# What makes a column, at MAX_SLOTS = 50 (rows, keys and cells out of reach): C built with it,
# the reference and OTLP/JSON with it patched in.
SLOTS50 = (1000, 100, 10**6, 50)


@pytest.fixture(scope="module")
def slots50(tmp_path_factory):
    return _build_tiny(tmp_path_factory.mktemp("slots50"), *SLOTS50)


def _columns_request(extra: str | None) -> tuple[Attrs, Attrs, list[dict]]:
    """10 columns x 5 rows. Columns: r0, r1 (resource; service.name and dropped values are
    none), s0 and r0 as an int (scope), a as an int and a as a string (the int is overridden by
    the string in its own row, and still a column), e0 (event), trace.link.trace_id,
    trace.link.span_id and l0 (link). None from a rejected span or a link left out."""
    resource = [
        ("service.name", ("s", "svc")),
        ("r0", ("s", "a")),
        ("r1", ("s", "b")),
        *NOT_COUNTED,
        *NOT_COUNTED_F,
    ]
    scope = [("s0", ("s", "c")), ("r0", ("i", 1)), *NOT_COUNTED]
    spans = [
        span(attrs=[("a", ("i", 1)), ("a", ("s", "x")), *NOT_COUNTED]),
        span(attrs=keys("rejected", 5), events=[[("gone", ("s", "x"))]], ok=False),
        span(events=[[("e0", ("s", "x")), *NOT_COUNTED_F]]),
        span(links=[(True, [("l0", ("s", "x"))]), (False, keys("gone", 3))]),
    ]
    if extra == "row":
        spans[2]["events"].append([])
    elif extra == "link type":
        spans[3]["links"][0][1].append(("l0", ("i", 2)))
    elif extra == "overridden":
        spans[0]["attrs"].insert(0, ("a", ("f", 1.5)))
    elif extra == "scope type":
        scope.append(("r1", ("f", 2.5)))
    elif extra == "resource key":
        resource.append(("r2", ("s", "z")))
    return resource, scope, spans


def _small_outcomes(mod, request: tuple[Attrs, Attrs, list[dict]]):
    body = traces_pb(*request)
    with _tiny_limits(SLOTS50):
        return (
            _tiny_outcome(mod.decode_traces, body),
            _tiny_outcome(lambda b: otlp.decode_traces_py(b, "protobuf"), body),
            _tiny_outcome(lambda b: otlp.decode_traces_py(b, "json"), traces_json(*request)),
        )


@needs_c
def test_columns_count_per_key_and_type(slots50):
    c, py, js = _small_outcomes(slots50, _columns_request(None))
    assert c[0] == py[0] == js[0] == "ok"
    cols, attrs, n, _rejected, _message = c[1]
    assert (cols, attrs, n) == (py[1].events.cols, py[1].events.attrs, py[1].events.n)
    assert py[1] == js[1]
    assert n == 5
    # the output has 9 columns: ("a", "i") holds no value (overridden), but it was a column
    assert len(attrs) == 9 and ("a", "i") not in attrs


@needs_c
@pytest.mark.parametrize("extra", ["row", "link type", "overridden", "scope type", "resource key"])
def test_one_more_column_or_row_passes_the_slots(slots50, extra):
    outcomes = _small_outcomes(slots50, _columns_request(extra))
    assert outcomes == (("limit", _which_limit(TOO_MANY_SLOTS)),) * 3


def test_logs_slots(monkeypatch):
    """Logs (protobuf and OTLP/JSON alike) at a smaller limit: columns x rows. Columns: r0 as an
    int (the scope's; the resource's string r0 is overridden before any row, so no column), r1,
    a and b; none from service.name or dropped values."""
    monkeypatch.setattr(common, "MAX_SLOTS", 40)
    resource = [("service.name", ("s", "svc")), ("r0", ("s", "a")), ("r1", ("s", "b"))]
    resource += NOT_COUNTED
    scope = [("r0", ("i", 1))]
    records = [[("a", ("s", "x"))], [("b", ("s", "x")), *NOT_COUNTED_F], [], [], [], [], [], []]
    batch = check_logs(resource, scope, records, None)  # 4 columns x 8 rows
    assert batch.n == 8
    check_logs(resource, scope, [*records, []], None)  # 4 x 9 = 36
    check_logs(resource, scope, [*records, [], []], None)  # 4 x 10 = 40
    check_logs(resource, scope, [*records, [], [], []], TOO_MANY_SLOTS)  # 4 x 11
    check_logs(resource, scope, [*records, [], [("c", ("s", "x"))]], TOO_MANY_SLOTS)  # 5 x 10


# ---------------------------------------------------------------------------------------------
# The order of the checks, at tiny limits: C (a copy built with -DMAX_...) = reference = JSON

# (rows, keys, cells, slots): mostly keys, only cells, three close, only rows (slots out of
# reach: 10^6), then mostly slots, slots and keys, all four (each refuses some examples)
NO_SLOT_LIMIT = 10**6
TINY = [
    (5, 4, 10, NO_SLOT_LIMIT),
    (40, 9, 6, NO_SLOT_LIMIT),
    (6, 5, 12, NO_SLOT_LIMIT),
    (4, 9, 40, NO_SLOT_LIMIT),
    (40, 9, 40, 20),
    (6, 5, 12, 15),
    (5, 6, 9, 22),
]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _build_tiny(out_dir: Path, rows: int, keys_: int, cells: int, slots: int):
    cc = sysconfig.get_config_var("CC") or "cc"
    if not shutil.which(shlex.split(cc)[0]):
        pytest.skip("no C compiler")
    src = Path(otlp.__file__).parent.parent / "_otlp_fast.c"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = out_dir / f"_otlp_fast_{rows}_{keys_}_{cells}_{slots}{suffix}"
    cmd = [
        *shlex.split(cc),
        "-shared",
        "-fPIC",
        "-O1",
        "-std=c11",
        f"-I{sysconfig.get_paths()['include']}",
        f"-DMAX_ROWS={rows}",
        f"-DMAX_ATTR_KEYS={keys_}",
        f"-DMAX_CELLS={cells}",
        f"-DMAX_SLOTS={slots}",
        str(src),
        "-o",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    name = "tracehive.ingest._otlp_fast"
    loader = importlib.machinery.ExtensionFileLoader(name, str(out))
    spec = importlib.util.spec_from_file_location(name, out, loader=loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    assert (rows, keys_, cells, slots) == (
        mod.MAX_ROWS,
        mod.MAX_ATTR_KEYS,
        mod.MAX_CELLS,
        mod.MAX_SLOTS,
    )
    return mod


@pytest.fixture(
    scope="module",
    params=TINY,
    ids=lambda t: f"rows{t[0]}-keys{t[1]}-cells{t[2]}-slots{t[3]}",
)
def tiny(request, tmp_path_factory):
    limits = request.param
    return _build_tiny(tmp_path_factory.mktemp("tiny"), *limits), limits


def _tiny_limits(limits):
    rows, keys_, cells, slots = limits
    return mock.patch.multiple(
        common, MAX_ROWS=rows, MAX_ATTR_KEYS=keys_, MAX_CELLS=cells, MAX_SLOTS=slots
    )


def _which_limit(message: str) -> str:
    assert message.startswith(LIMIT_PREFIX), message
    return re.sub(r"more than \d+", "more than N", message)


def _tiny_outcome(decode, body):
    try:
        return "ok", decode(body)
    except ValueError as exc:  # DecodeError too
        message = str(exc)
        return ("limit", _which_limit(message)) if message.startswith(LIMIT_PREFIX) else ("bad", "")


@needs_c
@FUZZ
@given(spec=trace_requests)
def test_tiny_limits_c_refuses_exactly_as_the_reference(tiny, spec):
    mod, limits = tiny
    request = trace_request_to_pb(spec)
    body = request.SerializeToString()
    js = orjson.dumps(to_otlp_json(request))
    with _tiny_limits(limits):
        c = _tiny_outcome(mod.decode_traces, body)
        py = _tiny_outcome(lambda b: otlp.decode_traces_py(b, "protobuf"), body)
        from_json = _tiny_outcome(lambda b: otlp.decode_traces_py(b, "json"), js)
    assert c[0] == py[0] == from_json[0]
    if c[0] != "ok":
        assert c == py == from_json
        return
    cols, attrs, n, rejected, message = c[1]
    batch = py[1].events
    assert (n, rejected, message) == (batch.n, py[1].rejected, py[1].error_message)
    assert cols == batch.cols
    assert attrs == batch.attrs
    assert from_json[1] == py[1]


@FUZZ
@given(spec=log_requests, limits=st.sampled_from([(3, 3, 6, NO_SLOT_LIMIT), (6, 4, 12, 10)]))
def test_tiny_limits_logs_json_refuses_exactly_as_protobuf(spec, limits):
    request = log_request_to_pb(spec)
    with _tiny_limits(limits):
        pb = _tiny_outcome(
            lambda b: otlp.decode_logs(b, "protobuf", NOW), request.SerializeToString()
        )
        js = _tiny_outcome(
            lambda b: otlp.decode_logs(b, "json", NOW), orjson.dumps(to_otlp_json(request))
        )
    assert pb == js
