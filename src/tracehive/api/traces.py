"""tracehive's trace API: one whole trace, and trace search.

``GET /api/v1/traces/{id}`` takes a W3C (32 hex) or X-Ray (``1-8hex-24hex``) id and answers the
trace's spans in tree order (depth-first, siblings by start time) with their events, links,
resource and attributes, plus the logs that carry the trace id.
``POST /api/v1/traces/search`` finds traces by span filters and trace-level fields.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tracehive.model.ids import InvalidId, trace_id_from_any, trace_id_to_xray
from tracehive.query.spec import SpecError, parse_spec
from tracehive.services import ALL_DATASETS, UnknownDataset
from tracehive.tenancy.catalog import QUERY

from .auth import AuthFailure, require
from .body import read_body
from .trace_tree import build_trace


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status, media_type="application/json"
    )


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


async def get_trace(request: Request) -> Response:
    services = request.app.state.services
    try:
        key = require(services, request, QUERY)
        trace_id = trace_id_from_any(request.path_params["trace_id"])
    except AuthFailure as exc:
        return _error(exc.status, exc.message)
    except InvalidId as exc:
        return _error(400, str(exc))
    rows = await asyncio.to_thread(services.store.get_trace, key.env_id, trace_id)
    if not rows:
        return _error(404, "trace not found")
    return _json(build_trace(trace_id, rows))


TRACE_SEARCH_FIELDS = {
    "dataset",
    "filters",
    "filter_combination",
    "trace_filters",
    "time_range",
    "start_time",
    "end_time",
    "limit",
}


async def search(request: Request) -> Response:
    services = request.app.state.services
    try:
        key = require(services, request, QUERY)
        body = orjson.loads(await read_body(request, 1_000_000) or b"{}")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        unknown = set(body) - TRACE_SEARCH_FIELDS
        if unknown:
            return _error(400, f"unknown field {sorted(unknown)[0]!r}")
        scope = services.scope(key.env_id, str(body.get("dataset") or ALL_DATASETS))
        spec_fields = {
            k: body[k]
            for k in ("filters", "filter_combination", "time_range", "start_time", "end_time")
            if k in body
        }
        spec = parse_spec(spec_fields)
        limit = body.get("limit", 100)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            return _error(400, "limit: must be an integer from 1 to 1000")
        trace_filters = body.get("trace_filters") or []
        if not isinstance(trace_filters, list):
            return _error(400, "trace_filters: must be a list")
        found = await asyncio.to_thread(
            services.store.search_traces, scope, spec, trace_filters, math.ceil(time.time()), limit
        )
    except AuthFailure as exc:
        return _error(exc.status, exc.message)
    except orjson.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    except UnknownDataset as exc:
        return _error(404, f"dataset {exc.args[0]!r} not found")
    except SpecError as exc:
        return _error(400, str(exc))
    except ValueError as exc:  # trace filter validation names the field
        return _error(400, str(exc))
    return _json(
        {
            "traces": [
                {
                    "trace_id": t.trace_id.hex(),
                    "xray_trace_id": trace_id_to_xray(t.trace_id),
                    "start_time": t.start_ns / 1e9,
                    "duration_ms": t.duration_ms,
                    "span_count": t.span_count,
                    "error": t.error,
                    "root_service": t.root_service,
                    "root_name": t.root_name,
                    "services": t.services,
                }
                for t in found
            ]
        }
    )


ROUTES = [
    Route("/api/v1/traces/search", search, methods=["POST"]),
    Route("/api/v1/traces/{trace_id}", get_trace, methods=["GET"]),
]
