"""Hypothesis strategies for OTLP requests, and an independent model of the expected rows.

Requests are generated as plain Python *specs* (tuples), turned into protobuf messages by
``*_to_pb`` and into expected rows by ``expected_*``: the expectation is written straight from the
mapping rules (dict merges, one row dict per span/event/link), sharing no code with the decoder.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from google.protobuf.json_format import MessageToDict
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from tracehive.model.batch import FIXED_COLUMNS, EventBatch

INT64_MAX = 2**63 - 1
KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"]

# ---------------------------------------------------------------------------------------------
# AnyValue specs: ("s", str) ("b", bool) ("i", int) ("f", float) ("bytes", bytes)
# ("arr", [spec]) ("kv", [(key, spec)]) ("empty", None)

_scalars = st.one_of(
    st.tuples(st.just("s"), st.text(max_size=12)),
    st.tuples(st.just("b"), st.booleans()),
    st.tuples(st.just("i"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("f"), st.floats(allow_nan=True, allow_infinity=True)),
    st.tuples(st.just("bytes"), st.binary(max_size=10)),
    st.just(("empty", None)),
)
any_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.tuples(st.just("arr"), st.lists(inner, max_size=4)),
        st.tuples(st.just("kv"), st.lists(st.tuples(st.text(max_size=4), inner), max_size=4)),
    ),
    max_leaves=5,
)
# Few distinct keys, so resource/scope/span attributes collide (overrides, type changes).
attr_keys = st.sampled_from(["", "a", "b", "http.method", "service.name", "SampleRate", "x"])
sample_rates = st.tuples(
    st.just("SampleRate"),
    st.tuples(st.just("i"), st.one_of(st.sampled_from([-1, 0, 1, 20]), st.integers(-3, 10**12))),
)
attributes = st.lists(st.one_of(st.tuples(attr_keys, any_values), sample_rates), max_size=4)
# Names that are not valid dataset names (a control character, more than 255 characters once
# stripped) reject their resource's spans/records; "\x85" (NEL) is whitespace at the ends.
BAD_SERVICE_NAMES = ["bad\x00svc", "line\nbreak", " del\x7f ", "c1\x9fchar", "x" * 256]
service_names = st.tuples(
    st.just("service.name"),
    st.sampled_from(
        [
            ("s", "checkout"),
            ("s", " pay "),
            ("s", "  "),
            ("s", ""),
            ("i", 3),
            ("s", "\x85nel-stripped\x85"),
            ("s", " " * 5 + "y" * 255),
            *[("s", name) for name in BAD_SERVICE_NAMES],
        ]
    ),
)


def trace_ids() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(min_size=16, max_size=16),
        st.sampled_from([b"", bytes(16), b"\x01" * 15, b"\x02" * 17]),
    )


def span_ids() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(min_size=8, max_size=8), st.sampled_from([b"", bytes(8), b"\x01" * 7])
    )


times = st.one_of(st.integers(0, 2**62), st.integers(0, 2**64 - 1), st.just(0))

events = st.tuples(times, st.sampled_from(["exception", "cache miss", ""]), attributes)
links = st.tuples(trace_ids(), span_ids(), attributes)
spans = st.fixed_dictionaries(
    {
        "trace_id": trace_ids(),
        "span_id": span_ids(),
        "parent": span_ids(),
        "name": st.text(max_size=10),
        "kind": st.integers(0, 7),
        "start": times,
        "end": times,
        "code": st.integers(0, 3),
        "message": st.sampled_from(["", "boom"]),
        "attrs": attributes,
        "events": st.lists(events, max_size=3),
        "links": st.lists(links, max_size=2),
    }
)
scopes = st.tuples(
    st.sampled_from(["", "lib"]),
    st.sampled_from(["", "1.0"]),
    attributes,
    st.lists(spans, max_size=3),
)
resources = st.tuples(
    st.lists(st.one_of(st.tuples(attr_keys, any_values), service_names), max_size=5),
    st.lists(scopes, max_size=2),
)
trace_requests = st.lists(resources, max_size=2)


# ---------------------------------------------------------------------------------------------
# spec -> protobuf


def value_to_pb(spec: tuple[str, Any]) -> AnyValue:
    kind, v = spec
    if kind == "s":
        return AnyValue(string_value=v)
    if kind == "b":
        return AnyValue(bool_value=v)
    if kind == "i":
        return AnyValue(int_value=v)
    if kind == "f":
        return AnyValue(double_value=v)
    if kind == "bytes":
        return AnyValue(bytes_value=v)
    if kind == "arr":
        return AnyValue(array_value=ArrayValue(values=[value_to_pb(x) for x in v]))
    if kind == "kv":
        return AnyValue(kvlist_value=KeyValueList(values=attrs_to_pb(v)))
    return AnyValue()


def attrs_to_pb(attrs: list[tuple[str, Any]]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value_to_pb(v)) for k, v in attrs]


def trace_request_to_pb(spec: list[Any]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for res_attrs, scope_specs in spec:
        rs = request.resource_spans.add(resource=Resource(attributes=attrs_to_pb(res_attrs)))
        for name, version, scope_attrs, span_specs in scope_specs:
            scope = InstrumentationScope(
                name=name, version=version, attributes=attrs_to_pb(scope_attrs)
            )
            ss = rs.scope_spans.add(scope=scope)
            for s in span_specs:
                span = ss.spans.add(
                    trace_id=s["trace_id"],
                    span_id=s["span_id"],
                    parent_span_id=s["parent"],
                    name=s["name"],
                    kind=s["kind"],
                    start_time_unix_nano=s["start"],
                    end_time_unix_nano=s["end"],
                    attributes=attrs_to_pb(s["attrs"]),
                    status=Status(code=s["code"], message=s["message"]),
                )
                for t, ev_name, ev_attrs in s["events"]:
                    span.events.add(
                        time_unix_nano=t, name=ev_name, attributes=attrs_to_pb(ev_attrs)
                    )
                for tid, sid, link_attrs in s["links"]:
                    span.links.add(trace_id=tid, span_id=sid, attributes=attrs_to_pb(link_attrs))
    return request


# ---------------------------------------------------------------------------------------------
# expectations, straight from the mapping rules


def plain(spec: tuple[str, Any]) -> Any:
    kind, v = spec
    if kind == "bytes":
        return base64.b64encode(v).decode()
    if kind == "arr":
        return [plain(x) for x in v]
    if kind == "kv":
        return {k: plain(x) for k, x in v}
    if kind == "empty":
        return None
    return v


def typed(spec: tuple[str, Any]) -> tuple[str, Any] | None:
    kind, v = spec
    if kind == "empty" or (kind == "f" and math.isnan(v)):
        return None
    if kind in ("s", "b", "i", "f"):
        return kind, v
    if kind == "bytes":
        return "s", plain(spec)
    return "s", json.dumps(plain(spec), separators=(",", ":"), ensure_ascii=False)


def merged(attrs: list[tuple[str, Any]]) -> dict[str, tuple[str, Any]]:
    out = {}
    for key, spec in attrs:
        tv = typed(spec)
        if key and tv is not None:
            out[key] = tv
    return out


def resource_context(res_attrs: list[tuple[str, Any]]) -> tuple[str, str | None, dict]:
    res = merged(res_attrs)
    tv = res.pop("service.name", None)
    name = tv[1].strip() if tv is not None and tv[0] == "s" else ""
    return (name or "unknown_service"), (name or None), res


def routable(dataset: str) -> bool:
    """The dataset-name rule, restated: at most 255 characters, no C0/C1 control character."""
    return len(dataset) <= 255 and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in dataset)


SERVICE_REASON = (
    "service.name is not a valid dataset name (longer than 255 characters or has control"
    " characters)"
)


def _row(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(FIXED_COLUMNS)
    row["samplerate"] = 1
    row.update(fields)
    return row


def _valid(raw: bytes, size: int) -> bool:
    return len(raw) == size and any(raw)


def expected_traces(spec: list[Any]) -> tuple[list[dict[str, Any]], int, str]:
    """The rows (fixed columns + ``attributes``: {(key, type): value}), the rejected count and
    the partial-success message."""
    rows = []
    rejected = bad_service = 0
    for res_attrs, scope_specs in spec:
        dataset, service, res = resource_context(res_attrs)
        if not routable(dataset):
            bad_service += sum(len(scope[3]) for scope in scope_specs)
            continue
        for name, version, scope_attrs, span_specs in scope_specs:
            lib = {"library_name": name or None, "library_version": version or None}
            common = {"dataset": dataset, "service": service, **lib}
            for s in span_specs:
                if not (_valid(s["trace_id"], 16) and _valid(s["span_id"], 8)):
                    rejected += 1
                    continue
                own = merged(s["attrs"])
                rate = own.get("SampleRate")
                samplerate = rate[1] if rate and rate[0] == "i" and rate[1] > 0 else 1
                start, end = min(s["start"], INT64_MAX), min(s["end"], INT64_MAX)
                span_id = int.from_bytes(s["span_id"], "big")
                parent = int.from_bytes(s["parent"], "big") if len(s["parent"]) == 8 else 0
                attrs = {**res, **merged(scope_attrs), **own}
                rows.append(
                    _row(
                        **common,
                        ts_ns=start,
                        dur_ns=max(0, end - start),
                        trace_id=s["trace_id"],
                        span_id=span_id,
                        parent_id=parent or None,
                        name=s["name"],
                        kind=KINDS[s["kind"]] if s["kind"] < 6 else "unspecified",
                        status_code=s["code"],
                        status_message=s["message"] or None,
                        error=s["code"] == 2 or any(e[1] == "exception" for e in s["events"]),
                        signal="span",
                        samplerate=samplerate,
                        attributes={(k, t): v for k, (t, v) in attrs.items()},
                    )
                )
                for ev_time, ev_name, ev_attrs in s["events"]:
                    attrs = {**res, **merged(ev_attrs)}
                    rows.append(
                        _row(
                            **common,
                            ts_ns=min(ev_time, INT64_MAX),
                            trace_id=s["trace_id"],
                            parent_id=span_id,
                            name=ev_name,
                            signal="span_event",
                            error=True if ev_name == "exception" else None,
                            samplerate=samplerate,
                            attributes={(k, t): v for k, (t, v) in attrs.items()},
                        )
                    )
                for tid, sid, link_attrs in s["links"]:
                    if not (_valid(tid, 16) and _valid(sid, 8)):
                        continue
                    link_ids = {
                        "trace.link.trace_id": ("s", tid.hex()),
                        "trace.link.span_id": ("s", sid.hex()),
                    }
                    attrs = {**res, **link_ids, **merged(link_attrs)}
                    rows.append(
                        _row(
                            **common,
                            ts_ns=start,
                            trace_id=s["trace_id"],
                            parent_id=span_id,
                            signal="link",
                            samplerate=samplerate,
                            attributes={(k, t): v for k, (t, v) in attrs.items()},
                        )
                    )
    parts = []
    if rejected:
        parts.append(f"{rejected} spans rejected: invalid trace_id or span_id")
    if bad_service:
        parts.append(f"{bad_service} spans rejected: {SERVICE_REASON}")
    return rows, rejected + bad_service, "; ".join(parts)


def batch_rows(batch: EventBatch) -> list[dict[str, Any]]:
    """Every row of a batch as a dict; attributes keyed by (key, type), Nones left out."""
    batch.check()
    rows = []
    for i in range(batch.n):
        row = {c: batch.cols[c][i] for c in FIXED_COLUMNS}
        row["attributes"] = {k: col[i] for k, col in batch.attrs.items() if col[i] is not None}
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# logs

severities = st.one_of(st.integers(0, 24), st.integers(-5, 300))
log_records = st.fixed_dictionaries(
    {
        "time": times,
        "observed": times,
        "trace_id": trace_ids(),
        "span_id": span_ids(),
        "severity": severities,
        "severity_text": st.sampled_from(["", "INFO", "ERROR"]),
        "body": st.one_of(st.none(), any_values),
        "attrs": attributes,
    }
)
log_requests = st.lists(
    st.tuples(
        st.lists(st.one_of(st.tuples(attr_keys, any_values), service_names), max_size=4),
        st.lists(
            st.tuples(
                st.sampled_from(["", "lg"]),
                st.sampled_from(["", "2"]),
                attributes,
                st.lists(log_records, max_size=4),
            ),
            max_size=2,
        ),
    ),
    max_size=2,
)


def log_request_to_pb(spec: list[Any]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for res_attrs, scope_specs in spec:
        rl = ResourceLogs(resource=Resource(attributes=attrs_to_pb(res_attrs)))
        for name, version, scope_attrs, records in scope_specs:
            scope = InstrumentationScope(
                name=name, version=version, attributes=attrs_to_pb(scope_attrs)
            )
            sl = ScopeLogs(scope=scope)
            for r in records:
                record = LogRecord(
                    time_unix_nano=r["time"],
                    observed_time_unix_nano=r["observed"],
                    trace_id=r["trace_id"],
                    span_id=r["span_id"],
                    severity_number=r["severity"],
                    severity_text=r["severity_text"],
                    attributes=attrs_to_pb(r["attrs"]),
                )
                if r["body"] is not None:
                    record.body.CopyFrom(value_to_pb(r["body"]))
                sl.log_records.append(record)
            rl.scope_logs.append(sl)
        request.resource_logs.append(rl)
    return request


def expected_log_rejections(spec: list[Any]) -> tuple[int, str]:
    """Records rejected (those of resources whose service.name is not a dataset name) and the
    partial-success message."""
    bad = sum(
        len(scope[3])
        for res_attrs, scope_specs in spec
        if not routable(resource_context(res_attrs)[0])
        for scope in scope_specs
    )
    return bad, f"{bad} log records rejected: {SERVICE_REASON}" if bad else ""


def expected_logs(spec: list[Any], now_ns: int) -> list[dict[str, Any]]:
    rows = []
    for res_attrs, scope_specs in spec:
        dataset, service, res = resource_context(res_attrs)
        if not routable(dataset):
            continue
        for name, version, scope_attrs, records in scope_specs:
            for r in records:
                body = None
                if r["body"] is not None and r["body"][0] == "s":
                    body = r["body"][1]
                elif r["body"] is not None and r["body"][0] != "empty":
                    body = json.dumps(plain(r["body"]), separators=(",", ":"), ensure_ascii=False)
                attrs = {**res, **merged(scope_attrs), **merged(r["attrs"])}
                sev = r["severity"]
                rows.append(
                    _row(
                        dataset=dataset,
                        service=service,
                        library_name=name or None,
                        library_version=version or None,
                        signal="log",
                        ts_ns=min(r["time"] or r["observed"] or now_ns, INT64_MAX),
                        trace_id=r["trace_id"] if _valid(r["trace_id"], 16) else None,
                        span_id=int.from_bytes(r["span_id"], "big")
                        if _valid(r["span_id"], 8)
                        else None,
                        body=body,
                        severity_text=r["severity_text"] or None,
                        severity_number=sev or None,
                        error=True if sev >= 17 else None,
                        attributes={(k, t): v for k, (t, v) in attrs.items()},
                    )
                )
    return rows


# ---------------------------------------------------------------------------------------------
# OTLP/JSON from protobuf: MessageToDict, then ids from base64 to hex (OTLP/JSON's one change)

_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _hex_ids(node: Any) -> Any:
    """Ids only ever appear as object keys of spans, links and log records (attribute keys are
    data, in ``{"key": ...}``), so a key-based rewrite is exact."""
    if isinstance(node, list):
        return [_hex_ids(x) for x in node]
    if isinstance(node, dict):
        return {
            k: base64.b64decode(v).hex() if k in _ID_KEYS else _hex_ids(v) for k, v in node.items()
        }
    return node


def to_otlp_json(message: Any, *, snake_case: bool = False, int_enums: bool = True) -> dict:
    return _hex_ids(
        MessageToDict(
            message,
            preserving_proto_field_name=snake_case,
            use_integers_for_enums=int_enums,
        )
    )
