"""OTLP/gRPC: the three Export services on the gRPC port (PROTOCOLS.md §6.2).

Handlers take the request as raw bytes (no protobuf object is built: the same decoder as
OTLP/HTTP reads the bytes, and the WAL keeps them as they came). Backpressure answers
UNAVAILABLE with a ``google.rpc.RetryInfo`` trailer, which the exporters honour.
"""

from __future__ import annotations

import logging
import time

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from tracehive.ingest import otlp
from tracehive.ingest.dispatch import Kind
from tracehive.pipeline import Record
from tracehive.tenancy.catalog import INGEST

from .auth import AuthFailure, authenticate
from .errors import classify

log = logging.getLogger("tracehive.grpc")

SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": ("traces", Kind.TRACES),
    "opentelemetry.proto.collector.logs.v1.LogsService": ("logs", Kind.LOGS),
    "opentelemetry.proto.collector.metrics.v1.MetricsService": ("metrics", Kind.METRICS),
}


def _retry_trailer(code: grpc.StatusCode, message: str, seconds: int):
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),)


def _handler(services, signal: str, kind: str):
    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        try:
            key = authenticate(services, metadata, INGEST)
        except AuthFailure as exc:
            code = (
                grpc.StatusCode.UNAUTHENTICATED
                if exc.status == 401
                else grpc.StatusCode.PERMISSION_DENIED
            )
            await context.abort(code, exc.message)
        dataset = ""
        if kind == Kind.METRICS:
            dataset = str(metadata.get("x-honeycomb-dataset", "")).strip() or "unknown_metrics"
        record = Record(
            kind=kind,
            env_id=key.env_id,
            body=request,
            fmt="protobuf",
            dataset=dataset,
            now_ns=time.time_ns(),
        )
        try:
            result = await services.ingest(record)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                log.exception("OTLP/gRPC %s export failed", signal)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            if failure.retry_after:
                context.set_trailing_metadata(
                    _retry_trailer(failure.grpc_code, failure.message, failure.retry_after)
                )
            await context.abort(failure.grpc_code, failure.message)
        return otlp.encode_export_response(
            signal, result.rejected, result.error_message, "protobuf"
        )

    return export


def build_server(services, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    max_len = services.config.max_decoded_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_len),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ]
    )
    for name, (signal, kind) in SERVICES.items():
        handler = grpc.unary_unary_rpc_method_handler(_handler(services, signal, kind))
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, {"Export": handler}),)
        )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC port {host}:{port}")
    return server, bound
