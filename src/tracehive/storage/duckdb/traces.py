"""Trace search: traces with a row matching the spec's filters, summarized and filtered by
trace-level fields.

A trace matches when at least one of its rows in the scope and time window passes
``spec.filters`` (``filter_combination``). Its summary covers every row of the trace in the
environment (any dataset) within the window: ``start_ns`` the earliest span (any row if it has no
span), ``duration_ms`` from that start to the latest span end, ``span_count`` (signal ``span``),
``error`` (any row with error), the root (the span without a parent, else the earliest span) and
the services touched. ``trace_filters`` then test those fields with the spec's filter ops
(``service.name`` = any service touched). Newest first, at most ``limit``.
"""

from __future__ import annotations

from typing import Any

import duckdb

from tracehive.query.spec import QuerySpec, SpecError
from tracehive.query.spec_parse import parse_filter
from tracehive.storage.api import Scope, TraceSummary
from tracehive.storage.duckdb.compile import (
    Params,
    Resolver,
    compile_filter,
    compile_filters,
    scope_where,
)
from tracehive.storage.duckdb.dialect import NEGATED, STRING_OPS
from tracehive.storage.duckdb.source import execute
from tracehive.storage.schema import FixedColumn

NS = 1_000_000_000

#: Trace-level fields as columns of the summary relation (plain literals: values as users see).
SUMMARY_FIELDS: dict[str, FixedColumn] = {
    "duration_ms": FixedColumn("duration_ms", "duration_ms", "{c}", "float"),
    "span_count": FixedColumn("span_count", "span_count", "{c}", "integer"),
    "error": FixedColumn("error", "error", "{c}", "boolean"),
    "root.name": FixedColumn("root.name", "root_name", "{c}", "string"),
    "root.service.name": FixedColumn("root.service.name", "root_service", "{c}", "string"),
}
TRACE_FILTER_FIELDS = (*SUMMARY_FIELDS, "service.name")

SPAN = "signal = 'span'"
START_SQL = f"coalesce(min(ts_ns) FILTER (WHERE {SPAN}), min(ts_ns))"
SUMMARY_SQL = f"""
    SELECT trace_id,
           {START_SQL} AS start_ns,
           coalesce((max(ts_ns + dur_ns) FILTER (WHERE {SPAN})
                     - min(ts_ns) FILTER (WHERE {SPAN})) / 1e6, 0.0) AS duration_ms,
           count(*) FILTER (WHERE {SPAN}) AS span_count,
           coalesce(bool_or(error), FALSE) AS error,
           arg_min(service, {{'r': parent_id IS NOT NULL, 't': ts_ns}}) FILTER (WHERE {SPAN})
               AS root_service,
           arg_min(name, {{'r': parent_id IS NOT NULL, 't': ts_ns}}) FILTER (WHERE {SPAN})
               AS root_name,
           list(DISTINCT service ORDER BY service) FILTER (WHERE service IS NOT NULL)
               AS services
    FROM events
"""


def search_traces(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    spec: QuerySpec,
    trace_filters: list[dict[str, Any]],
    resolve: Resolver,
    now_s: int,
    limit: int,
) -> list[TraceSummary]:
    if not isinstance(trace_filters, list):
        raise SpecError("must be a list", "trace_filters")
    start_s, end_s = spec.window(now_s)
    params = Params()
    window = [f"ts_ns >= {params(start_s * NS)}", f"ts_ns < {params(end_s * NS)}"]
    matched = [*scope_where(scope, start_s * NS, end_s * NS, params), "trace_id IS NOT NULL"]
    filters = compile_filters(spec.filters, spec.filter_combination, resolve, params, "filters")
    if filters:
        matched.append(filters)
    having = [_trace_filter(f, i, params) for i, f in enumerate(trace_filters)]
    rows = f"env_id = {params(scope.env_id)} AND {' AND '.join(window)}"
    traces = f"(SELECT DISTINCT trace_id FROM events WHERE {' AND '.join(matched)})"
    if not having:
        # Only the newest ``limit`` traces are wanted: rank them by start alone first (a
        # min per trace), and compute the full summaries for those few.
        traces = (
            f"(SELECT trace_id FROM events WHERE {rows} AND trace_id IN {traces} "
            f"GROUP BY trace_id ORDER BY {START_SQL} DESC, trace_id "
            f"LIMIT {params(int(limit))})"
        )
    sql = (
        f"WITH summary AS ({SUMMARY_SQL} WHERE {rows} AND trace_id IN {traces} "
        f"GROUP BY trace_id) "
        f"SELECT trace_id, start_ns, duration_ms, span_count, error, root_service, root_name, "
        f"services FROM summary{' WHERE ' + ' AND '.join(having) if having else ''} "
        f"ORDER BY start_ns DESC, trace_id LIMIT {params(int(limit))}"
    )
    return [
        TraceSummary(
            bytes(r[0]), int(r[1]), float(r[2]), int(r[3]), bool(r[4]), r[5], r[6], list(r[7] or [])
        )
        for r in execute(con, sql, params).fetchall()
    ]


def _trace_filter(obj: Any, i: int, params: Params) -> str:
    path = f"trace_filters[{i}]"
    f = parse_filter(obj, path)
    if f.column not in TRACE_FILTER_FIELDS:
        raise SpecError(f"must be one of {', '.join(TRACE_FILTER_FIELDS)}", f"{path}.column")
    if f.column != "service.name":
        return compile_filter(f, SUMMARY_FIELDS[f.column], params, path)
    return _any_service(f.op, f.value, params)


def _any_service(op: str, value: Any, params: Params) -> str:
    """``service.name`` on a trace: true when any service it touched passes the op."""
    positive = NEGATED.get(op, op)
    if positive == "exists":
        test = "len(services) > 0"
    elif positive == "in":
        test = f"list_has_any(services, [{', '.join(params(str(v)) for v in value)}])"
    elif positive in STRING_OPS:
        cond = STRING_OPS[positive].format(c="s", v=params(str(value)))
        test = f"len(list_filter(services, lambda s: {cond})) > 0"
    else:
        sql_op = {"=": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[positive]
        test = f"len(list_filter(services, lambda s: s {sql_op} {params(str(value))})) > 0"
    test = f"coalesce({test}, FALSE)"
    return f"(NOT {test})" if op in NEGATED else test
