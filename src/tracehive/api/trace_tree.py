"""Rows of one trace -> the nested document the trace API (and later the UI waterfall) shows."""

from __future__ import annotations

from typing import Any

from tracehive.model.ids import trace_id_to_xray

#: Attribute namespaces that OTel semantic conventions define as resource attributes. Storage
#: flattens resource and span attributes into one set of columns (as Honeycomb does); the trace
#: view splits them back by these prefixes.
RESOURCE_PREFIXES = (
    "service.",
    "host.",
    "telemetry.",
    "process.",
    "os.",
    "container.",
    "k8s.",
    "cloud.",
    "deployment.",
    "faas.",
    "device.",
    "webengine.",
    "aws.ecs.",
    "aws.eks.",
    "aws.log.",
)


def _hex(sid: int | None) -> str | None:
    return None if sid is None else f"{sid:016x}"


def _split(attrs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    resource, span = {}, {}
    for k, v in attrs.items():
        (resource if k.startswith(RESOURCE_PREFIXES) else span)[k] = v
    return resource, span


def build_trace(trace_id: bytes, rows: list[dict[str, Any]]) -> dict[str, Any]:
    spans: dict[int, dict[str, Any]] = {}
    events, links, logs, others = [], [], [], []
    for r in rows:
        sig = r.get("signal")
        if sig == "span" and r.get("span_id") is not None:
            resource, attrs = _split(r["attributes"])
            if r.get("service.name"):
                resource["service.name"] = r["service.name"]
            spans[r["span_id"]] = {
                "span_id": _hex(r["span_id"]),
                "parent_id": _hex(r.get("parent_id")),
                "name": r.get("name"),
                "service": r.get("service.name"),
                "kind": r.get("span.kind"),
                "start_time_unix_nano": r["ts_ns"],
                "end_time_unix_nano": r["ts_ns"] + (r.get("dur_ns") or 0),
                "duration_ms": (r.get("dur_ns") or 0) / 1e6,
                "status_code": r.get("status_code"),
                "status_message": r.get("status_message"),
                "error": bool(r.get("error")),
                "library": {"name": r.get("library.name"), "version": r.get("library.version")},
                "resource": resource,
                "attributes": attrs,
                "events": [],
                "links": [],
                "logs": [],
            }
        elif sig == "span_event":
            events.append(r)
        elif sig == "link":
            links.append(r)
        elif sig == "log":
            logs.append(r)
        else:
            others.append(r)
    for r in events:
        span = spans.get(r.get("parent_id"))
        if span is not None:
            span["events"].append(
                {
                    "name": r.get("name"),
                    "time_unix_nano": r["ts_ns"],
                    "error": bool(r.get("error")),
                    "attributes": _split(r["attributes"])[1],
                }
            )
    for r in links:
        span = spans.get(r.get("parent_id"))
        if span is not None:
            attrs = dict(_split(r["attributes"])[1])
            span["links"].append(
                {
                    "trace_id": attrs.pop("trace.link.trace_id", None),
                    "span_id": attrs.pop("trace.link.span_id", None),
                    "attributes": attrs,
                }
            )
    log_docs = []
    for r in logs:
        doc = {
            "time_unix_nano": r["ts_ns"],
            "span_id": _hex(r.get("span_id")),
            "severity_text": r.get("severity_text"),
            "severity_number": r.get("severity_number"),
            "body": r.get("body"),
            "service": r.get("service.name"),
            "attributes": _split(r["attributes"])[1],
        }
        log_docs.append(doc)
        span = spans.get(r.get("span_id"))
        if span is not None:
            span["logs"].append(doc)
    ordered = _tree_order(spans)
    start = min((s["start_time_unix_nano"] for s in ordered), default=0)
    end = max((s["end_time_unix_nano"] for s in ordered), default=0)
    return {
        "trace_id": trace_id.hex(),
        "xray_trace_id": trace_id_to_xray(trace_id),
        "start_time_unix_nano": start,
        "duration_ms": (end - start) / 1e6,
        "span_count": len(ordered),
        "error": any(s["error"] for s in ordered),
        "services": sorted({s["service"] for s in ordered if s["service"]}),
        "spans": ordered,
        "logs": log_docs,
        "events": [
            {"name": r.get("name"), "time_unix_nano": r["ts_ns"], "attributes": r["attributes"]}
            for r in others
        ],
    }


def _tree_order(spans: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans.values():
        parent = s["parent_id"]
        if parent is not None and int(parent, 16) not in spans:
            parent = None  # parent not (yet) received: show it as a root
        children.setdefault(parent, []).append(s)
    for kids in children.values():
        kids.sort(key=lambda s: s["start_time_unix_nano"])
    out: list[dict[str, Any]] = []
    stack = [(s, 0) for s in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        s, depth = stack.pop()
        if s["span_id"] in seen:
            continue
        seen.add(s["span_id"])
        s["depth"] = depth
        out.append(s)
        for kid in reversed(children.get(s["span_id"], [])):
            stack.append((kid, depth + 1))
    for s in spans.values():  # cycles (hostile input) still show every span once
        if s["span_id"] not in seen:
            s["depth"] = 0
            out.append(s)
    return out
