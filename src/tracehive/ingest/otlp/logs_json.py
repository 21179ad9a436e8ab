"""OTLP/JSON logs -> ``EventBatch``: the same mapping as ``logs.py`` (read its docstring)."""

from __future__ import annotations

import time

from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from tracehive.ingest.otlp import json_wire as j
from tracehive.ingest.otlp.common import (
    INT64_MAX,
    TOO_MANY_LOG_RECORDS,
    Decoded,
    DecodeError,
    RowWriter,
    dataset_and_service,
    routable,
)
from tracehive.ingest.otlp.logs import SEVERITY_ERROR, body_text, rejected_message

_SEVERITY_NAMES = dict(SeverityNumber.items())
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


def decode_logs_json(body: bytes, now_ns: int | None = None) -> Decoded:
    """Decode an OTLP/JSON ExportLogsServiceRequest. ``now_ns``: the receive time."""
    doc = j.load(body, "resourceLogs")
    now = time.time_ns() if now_ns is None else now_ns
    w = RowWriter(TOO_MANY_LOG_RECORDS)
    rows = w.rows
    bad_service = 0
    try:
        for ri, resource_logs in enumerate(j.get_list(doc, "resourceLogs", "resource_logs")):
            with j.at("resourceLogs", ri):
                j.need_obj(resource_logs)
                resource = j.get_obj(resource_logs, "resource")
                with j.at("resource"):
                    res = j.attr_map(resource)
                dataset, service = dataset_and_service(res)
                # a resource whose service.name is not a dataset name: its records are read (a
                # type error anywhere still refuses the payload) and rejected
                keep = service is None or routable(dataset)
                for si, scope_logs in enumerate(
                    j.get_list(resource_logs, "scopeLogs", "scope_logs")
                ):
                    with j.at("scopeLogs", si):
                        j.need_obj(scope_logs)
                        scope = j.get_obj(scope_logs, "scope")
                        with j.at("scope"):
                            lib_name = j.get_str(scope, "name") or None
                            lib_version = j.get_str(scope, "version") or None
                            scope_attrs = j.attr_map(scope)
                            if keep:
                                writes, base_seen = w.scope_base(res, scope_attrs)
                        records = j.get_list(scope_logs, "logRecords", "log_records")
                        for i, record in enumerate(records):
                            with j.at("logRecords", i):
                                j.need_obj(record)
                                ts = j.get_u64(record, "timeUnixNano", "time_unix_nano")
                                if not ts:
                                    ts = j.get_u64(
                                        record, "observedTimeUnixNano", "observed_time_unix_nano"
                                    )
                                trace_id = j.get_id(record, "traceId", "trace_id")
                                raw_sid = j.get_id(record, "spanId", "span_id")
                                severity = j.get_enum(
                                    record, "severityNumber", "severity_number", _SEVERITY_NAMES
                                )
                                severity_text = j.get_str(record, "severityText", "severity_text")
                                body_av = record.get("body")
                                text = body_text(j.plain(body_av, "body"), j.is_string(body_av))
                                attrs = j.attributes(record)
                            if not keep:
                                bad_service += 1
                                continue
                            row = len(rows)  # limits as in logs.py
                            if row >= w.cap:
                                w.reserve(row + 1)
                            for col, v in writes:
                                col[row] = v
                            seen = base_seen.copy()
                            w.put_all(attrs, row, seen)
                            w.add_cells(len(seen))
                            if trace_id is not None and (
                                len(trace_id) != 16 or trace_id == _ZERO16
                            ):
                                trace_id = None
                            span_id = None
                            if raw_sid is not None and len(raw_sid) == 8:
                                span_id = int.from_bytes(raw_sid, "big") or None
                            ts = ts or now
                            rows.append(
                                (dataset, min(ts, INT64_MAX), None, trace_id, span_id, None, None,
                                 service, None, None, None,
                                 True if severity >= SEVERITY_ERROR else None, "log", lib_name,
                                 lib_version, 1, text, severity_text or None, severity or None)
                            )  # fmt: skip
    except j.JsonError as exc:
        raise j.as_decode_error(exc) from None
    except RecursionError:  # values nested near orjson's depth limit, on an already deep stack
        raise DecodeError("payload nests values too deeply") from None
    return Decoded(w.finish(), None, len(rows), bad_service, rejected_message(bad_service))
