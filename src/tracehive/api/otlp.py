"""OTLP/HTTP: ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics`` (protobuf or JSON, any encoding).

Recipe for every ingest route: authenticate -> check capacity (503 + Retry-After) -> negotiate
content type and encoding -> decode off the event loop -> durable enqueue -> reply in the
protocol's shape. Errors are ``google.rpc.Status`` bodies in the request's format (OTLP spec:
"The server MUST use the same Content-Type in the response as it received in the request").
"""

from __future__ import annotations

import logging
import time

import orjson
from google.rpc import status_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tracehive.ingest import otlp
from tracehive.ingest.dispatch import Kind
from tracehive.pipeline import Record
from tracehive.tenancy.catalog import INGEST

from .auth import AuthFailure, require
from .body import read_body
from .errors import classify

log = logging.getLogger("tracehive.api")

_FORMATS = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
_CONTENT_TYPE = {"protobuf": "application/x-protobuf", "json": "application/json"}
_GRPC_FROM_HTTP = {400: 3, 401: 16, 403: 7, 413: 8, 415: 12, 503: 14, 500: 13}


def status_response(status: int, message: str, fmt: str, retry_after: int | None = None):
    code = _GRPC_FROM_HTTP.get(status, 2)
    if fmt == "json":
        body = orjson.dumps({"code": code, "message": message})
    else:
        body = status_pb2.Status(code=code, message=message).SerializeToString()
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return Response(body, status, headers=headers, media_type=_CONTENT_TYPE[fmt])


def _route(signal: str, kind: str):
    async def export(request: Request) -> Response:
        services = request.app.state.services
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = _FORMATS.get(ctype)
        if fmt is None:
            return status_response(
                415,
                f"unsupported content type {ctype!r}: use application/x-protobuf or "
                "application/json",
                "protobuf",
            )
        try:
            key = require(services, request, INGEST)
        except AuthFailure as exc:
            return status_response(exc.status, exc.message, fmt)
        try:
            services.pipeline.admit()
            body = await read_body(request, services.config.max_body_bytes)
            dataset = ""
            if kind == Kind.METRICS:
                dataset = request.headers.get("x-honeycomb-dataset", "").strip() or (
                    "unknown_metrics"
                )
            record = Record(
                kind=kind,
                env_id=key.env_id,
                body=body,
                fmt=fmt,
                encoding=request.headers.get("content-encoding", "").strip().lower(),
                dataset=dataset,
                now_ns=time.time_ns(),
            )
            result = await services.ingest(record)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                log.exception("OTLP %s export failed", signal)
                return status_response(500, "internal error", fmt)
            return status_response(failure.status, failure.message, fmt, failure.retry_after)
        body = otlp.encode_export_response(signal, result.rejected, result.error_message, fmt)
        return Response(body, 200, media_type=_CONTENT_TYPE[fmt])

    return export


ROUTES = [
    Route("/v1/traces", _route("traces", Kind.TRACES), methods=["POST"]),
    Route("/v1/logs", _route("logs", Kind.LOGS), methods=["POST"]),
    Route("/v1/metrics", _route("metrics", Kind.METRICS), methods=["POST"]),
]
