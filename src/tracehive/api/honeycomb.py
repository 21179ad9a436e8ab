"""Honeycomb's REST API (PROTOCOLS.md §7): auth, events, batch, queries, query results, columns.

Errors use Honeycomb's legacy shape ``{"error": "..."}``. Dataset names in paths are
case-insensitive and URL-decoded; ``__all__`` means the whole environment (reads only).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tracehive.ingest.dispatch import Kind
from tracehive.pipeline import Record
from tracehive.query.spec import SpecError
from tracehive.services import ALL_DATASETS, UnknownDataset
from tracehive.tenancy.catalog import INGEST, QUERY, who_am_i

from .auth import AuthFailure, require
from .body import read_body
from .errors import classify

log = logging.getLogger("tracehive.api")

#: Honeycomb: "Request body is too large" past 1 MB for one event; batches allow more.
EVENT_BODY_LIMIT = 1_000_000


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None):
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")


def error(status: int, message: str, retry_after: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return json_response({"error": message}, status, headers)


def _key(request: Request, permission: str | None):
    return require(request.app.state.services, request, permission)


async def auth(request: Request) -> Response:
    try:
        key = _key(request, None)
    except AuthFailure as exc:
        return error(exc.status, exc.message)
    services = request.app.state.services
    return json_response(who_am_i(key, services.catalog.team()))


def _ingest_route(kind: str):
    async def handler(request: Request) -> Response:
        services = request.app.state.services
        try:
            key = _key(request, INGEST)
        except AuthFailure as exc:
            return error(exc.status, exc.message)
        dataset = request.path_params["dataset"].strip()
        if dataset == ALL_DATASETS or not dataset:
            return error(400, f"cannot write to dataset {dataset!r}")
        limit = EVENT_BODY_LIMIT if kind == Kind.HONEYCOMB_EVENT else services.config.max_body_bytes
        try:
            services.pipeline.admit()
            body = await read_body(request, limit)
            meta = {}
            if kind == Kind.HONEYCOMB_EVENT:
                for header, name in (
                    ("x-honeycomb-event-time", "time"),
                    ("x-honeycomb-samplerate", "samplerate"),
                ):
                    if header in request.headers:
                        meta[name] = request.headers[header]
            record = Record(
                kind=kind,
                env_id=key.env_id,
                body=body,
                fmt="json",
                encoding=request.headers.get("content-encoding", "").strip().lower(),
                dataset=dataset,
                now_ns=time.time_ns(),
                meta=meta,
            )
            result = await services.ingest(record)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                log.exception("Honeycomb %s failed", kind)
                return error(500, "internal error")
            message = failure.message
            if failure.status == 413:
                message = "Request body is too large."
            return error(failure.status, message, failure.retry_after)
        if kind == Kind.HONEYCOMB_EVENT:
            return Response(b"", 200)
        return json_response(result.statuses)

    return handler


def _scope(request: Request, env_id: int):
    return request.app.state.services.scope(env_id, request.path_params["dataset"])


_READ_ERRORS = (AuthFailure, orjson.JSONDecodeError, SpecError, LookupError)


def read_error(exc: Exception) -> Response:
    """The Honeycomb error response for a failure of a query-side route."""
    if isinstance(exc, AuthFailure):
        return error(exc.status, exc.message)
    if isinstance(exc, UnknownDataset):
        return error(404, f"dataset {exc.args[0]!r} not found")
    if isinstance(exc, orjson.JSONDecodeError):
        return error(400, "request body is not valid JSON")
    if isinstance(exc, SpecError):
        return error(400, str(exc))
    return error(404, "query not found")  # QueryNotFound


async def create_query(request: Request) -> Response:
    services = request.app.state.services
    try:
        key = _key(request, QUERY)
        dataset = request.path_params["dataset"]
        _scope(request, key.env_id)
        body = orjson.loads(await read_body(request, 1_000_000) or b"{}")
        spec = services.queries.create_query(
            key.env_id, None if dataset == ALL_DATASETS else dataset, body
        )
    except _READ_ERRORS as exc:
        return read_error(exc)
    return json_response(spec)


async def get_query(request: Request) -> Response:
    services = request.app.state.services
    try:
        key = _key(request, QUERY)
    except AuthFailure as exc:
        return error(exc.status, exc.message)
    spec = services.queries.get_query(key.env_id, request.path_params["query_id"])
    if spec is None:
        return error(404, "query not found")
    return json_response(spec)


async def create_result(request: Request) -> Response:
    services = request.app.state.services
    try:
        key = _key(request, QUERY)
        scope = _scope(request, key.env_id)
        body = orjson.loads(await read_body(request, 1_000_000) or b"{}")
        if not isinstance(body, dict) or not isinstance(body.get("query_id"), str):
            return error(400, "query_id is required")
        options = {k: v for k, v in body.items() if k != "query_id"}
        result = services.queries.create_result(key.env_id, scope, body["query_id"], options)
    except _READ_ERRORS as exc:
        return read_error(exc)
    dataset = quote(request.path_params["dataset"], safe="")
    location = f"{request.base_url}1/query_results/{dataset}/{result['id']}"
    return json_response(result, 201, {"Location": location})


async def get_result(request: Request) -> Response:
    services = request.app.state.services
    try:
        key = _key(request, QUERY)
    except AuthFailure as exc:
        return error(exc.status, exc.message)
    result = services.queries.get_result(key.env_id, request.path_params["result_id"])
    if result is None:
        return error(404, "query result not found")
    return json_response(result)


def _iso(ns: int | None) -> str | None:
    if not ns:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


async def columns(request: Request) -> Response:
    services = request.app.state.services
    try:
        key = _key(request, QUERY)
        scope = _scope(request, key.env_id)
    except AuthFailure as exc:
        return error(exc.status, exc.message)
    except UnknownDataset as exc:
        return error(404, f"dataset {exc.args[0]!r} not found")
    cols = services.store.columns(scope)
    return json_response(
        [
            {
                "id": c.name,
                "key_name": c.name,
                "type": c.type,
                "description": "",
                "hidden": False,
                "last_written": _iso(c.last_written_ns),
            }
            for c in cols
        ]
    )


async def datasets(request: Request) -> Response:
    services = request.app.state.services
    try:
        key = _key(request, QUERY)
    except AuthFailure as exc:
        return error(exc.status, exc.message)
    return json_response(
        [{"name": d.name, "slug": d.slug} for d in services.catalog.datasets(key.env_id)]
    )


ROUTES = [
    Route("/1/auth", auth, methods=["GET"]),
    # One path segment, like the read routes: a dataset a client could write but never address
    # again (e.g. "team/api") is refused with 404 instead.
    Route("/1/events/{dataset}", _ingest_route(Kind.HONEYCOMB_EVENT), methods=["POST"]),
    Route("/1/batch/{dataset}", _ingest_route(Kind.HONEYCOMB_BATCH), methods=["POST"]),
    Route("/1/queries/{dataset}/{query_id}", get_query, methods=["GET"]),
    Route("/1/queries/{dataset}", create_query, methods=["POST"]),
    Route("/1/query_results/{dataset}/{result_id}", get_result, methods=["GET"]),
    Route("/1/query_results/{dataset}", create_result, methods=["POST"]),
    Route("/1/columns/{dataset}", columns, methods=["GET"]),
    Route("/1/datasets", datasets, methods=["GET"]),
]
