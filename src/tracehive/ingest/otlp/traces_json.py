"""OTLP/JSON traces -> ``EventBatch``: the same mapping as ``traces.py`` (read its docstring).

Ids are hex; text that is not hex is treated like an id of the wrong length in the same place (a
span's own trace_id/span_id: the span is rejected; a parent: None; a link: left out).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tracehive.ingest.otlp import json_wire as j
from tracehive.ingest.otlp.common import (
    INT64_MAX,
    TOO_MANY_SPAN_ROWS,
    Decoded,
    DecodeError,
    RowWriter,
    dataset_and_service,
    routable,
)
from tracehive.ingest.otlp.traces import (
    EXCEPTION_EVENT,
    KINDS,
    SAMPLE_RATE,
    STATUS_ERROR,
    rejected_message,
)

_KIND_NAMES = dict(Span.SpanKind.items())
_STATUS_NAMES = dict(Status.StatusCode.items())
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


def _valid(tid: bytes | None, sid: bytes | None) -> bool:
    return (
        tid is not None
        and sid is not None
        and len(tid) == 16
        and tid != _ZERO16
        and len(sid) == 8
        and sid != _ZERO8
    )


def _span_rows(
    w: RowWriter | None, span: dict[str, Any], ctx: tuple[Any, ...], bases: tuple[Any, ...]
) -> bool:
    """Append the rows of one span object; False when it is rejected for its ids. With ``w``
    None (its resource is rejected) the span is only read, for the errors it may hold."""
    trace_id = j.get_id(span, "traceId", "trace_id")
    raw_sid = j.get_id(span, "spanId", "span_id")
    # Read every field before deciding, so a type error anywhere is reported (protobuf parsing
    # would refuse the whole payload too).
    raw_parent = j.get_id(span, "parentSpanId", "parent_span_id")
    name = j.get_str(span, "name")
    kind = j.get_enum(span, "kind", None, _KIND_NAMES)
    start = min(j.get_u64(span, "startTimeUnixNano", "start_time_unix_nano"), INT64_MAX)
    end = min(j.get_u64(span, "endTimeUnixNano", "end_time_unix_nano"), INT64_MAX)
    status = j.get_obj(span, "status")
    code = j.get_enum(status, "code", None, _STATUS_NAMES)
    message = j.get_str(status, "message")
    attrs = j.attributes(span)
    events = []
    for i, ev in enumerate(j.get_list(span, "events")):
        with j.at("events", i):
            j.need_obj(ev)
            t = min(j.get_u64(ev, "timeUnixNano", "time_unix_nano"), INT64_MAX)
            events.append((t, j.get_str(ev, "name"), j.attributes(ev)))
    links = []
    for i, link in enumerate(j.get_list(span, "links")):
        with j.at("links", i):
            j.need_obj(link)
            link_tid = j.get_id(link, "traceId", "trace_id")
            link_sid = j.get_id(link, "spanId", "span_id")
            link_attrs = j.attributes(link)
        if _valid(link_tid, link_sid):
            links.append((link_tid, link_sid, link_attrs))
    if w is None or not _valid(trace_id, raw_sid):
        return False
    assert trace_id is not None and raw_sid is not None
    dataset, service, lib_name, lib_version = ctx
    span_writes, span_seen, res_writes, res_seen = bases
    span_id = int.from_bytes(raw_sid, "big")
    parent_id = None
    if raw_parent is not None and len(raw_parent) == 8:
        parent_id = int.from_bytes(raw_parent, "big") or None
    error = code == STATUS_ERROR or any(ev[1] == EXCEPTION_EVENT for ev in events)

    # Limits as in traces.py: reserving row by row is the MAX_ROWS check, then keys, then cells.
    rows = w.rows
    row = len(rows)
    if row >= w.cap:
        w.reserve(row + 1)
    for col, v in span_writes:
        col[row] = v
    seen = span_seen.copy()
    w.put_all(attrs, row, seen)
    w.add_cells(len(seen))
    samplerate = 1
    for key, t, v in attrs:  # the span's own last SampleRate, if an int > 0
        if key == SAMPLE_RATE:
            samplerate = v if t == "i" and v > 0 else 1
    rows.append(
        (dataset, start, end - start if end > start else 0, trace_id, span_id, parent_id, name,
         service, KINDS[kind] if 0 <= kind < 6 else "unspecified", code, message or None, error,
         "span", lib_name, lib_version, samplerate, None, None, None)
    )  # fmt: skip
    for t, ev_name, ev_attrs in events:
        row += 1
        if row >= w.cap:
            w.reserve(row + 1)
        for col, v in res_writes:
            col[row] = v
        seen = res_seen.copy()
        w.put_all(ev_attrs, row, seen)
        w.add_cells(len(seen))
        rows.append(
            (dataset, t, None, trace_id, None, span_id, ev_name, service, None, None, None,
             True if ev_name == EXCEPTION_EVENT else None, "span_event", lib_name, lib_version,
             samplerate, None, None, None)
        )  # fmt: skip
    for link_tid, link_sid, link_attrs in links:
        row += 1
        if row >= w.cap:
            w.reserve(row + 1)
        for col, v in res_writes:
            col[row] = v
        seen = res_seen.copy()
        w.put("trace.link.trace_id", "s", link_tid.hex(), row, seen)
        w.put("trace.link.span_id", "s", link_sid.hex(), row, seen)
        w.put_all(link_attrs, row, seen)
        w.add_cells(len(seen))
        rows.append(
            (dataset, start, None, trace_id, None, span_id, None, service, None, None, None, None,
             "link", lib_name, lib_version, samplerate, None, None, None)
        )  # fmt: skip
    return True


def decode_traces_json(body: bytes) -> Decoded:
    """Decode an OTLP/JSON ExportTraceServiceRequest."""
    doc = j.load(body, "resourceSpans")
    w = RowWriter(TOO_MANY_SPAN_ROWS)
    accepted = rejected = bad_service = 0
    try:
        for ri, resource_spans in enumerate(j.get_list(doc, "resourceSpans", "resource_spans")):
            with j.at("resourceSpans", ri):
                j.need_obj(resource_spans)
                resource = j.get_obj(resource_spans, "resource")
                with j.at("resource"):
                    res = j.attr_map(resource)
                dataset, service = dataset_and_service(res)
                # a resource whose service.name is not a dataset name: its spans are read (a
                # type error anywhere still refuses the payload) and rejected
                rw = w if service is None or routable(dataset) else None
                if rw is not None:
                    res_writes, res_seen = w.base(res)
                scopes = j.get_list(resource_spans, "scopeSpans", "scope_spans")
                for si, scope_spans in enumerate(scopes):
                    with j.at("scopeSpans", si):
                        j.need_obj(scope_spans)
                        scope = j.get_obj(scope_spans, "scope")
                        with j.at("scope"):
                            lib_name = j.get_str(scope, "name") or None
                            lib_version = j.get_str(scope, "version") or None
                            scope_attrs = j.attr_map(scope)
                        ctx = (dataset, service, lib_name, lib_version)
                        bases: tuple[Any, ...] = ()
                        if rw is not None:
                            bases = (*w.scope_base(res, scope_attrs), res_writes, res_seen)
                        for i, span in enumerate(j.get_list(scope_spans, "spans")):
                            with j.at("spans", i):
                                if _span_rows(rw, j.need_obj(span), ctx, bases):
                                    accepted += 1
                                elif rw is None:
                                    bad_service += 1
                                else:
                                    rejected += 1
    except j.JsonError as exc:
        raise j.as_decode_error(exc) from None
    except RecursionError:  # values nested near orjson's depth limit, on an already deep stack
        raise DecodeError("payload nests values too deeply") from None
    return Decoded(
        w.finish(), None, accepted, rejected + bad_service, rejected_message(rejected, bad_service)
    )
