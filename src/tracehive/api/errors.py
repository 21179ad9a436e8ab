"""Which ingest failure is which status: one table for HTTP and gRPC.

HTTP statuses follow OTLP/HTTP (400 bad payload, 413 too large, 415 unsupported, 503 + Retry-After
when the pipeline is saturated: every exporter version retries 503, PROTOCOLS.md §6.1); gRPC codes
follow OTLP/gRPC (UNAVAILABLE is retried, INVALID_ARGUMENT is not).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from tracehive.ingest import compression, honeycomb, otlp
from tracehive.pipeline import Overloaded
from tracehive.pipeline.wal import WalError
from tracehive.storage.arrow import RowsOutOfRange
from tracehive.tenancy.catalog import InvalidName

from .body import BodyTooLarge


@dataclass(frozen=True, slots=True)
class Failure:
    status: int
    grpc_code: grpc.StatusCode
    message: str
    retry_after: int | None = None


_TABLE: tuple[tuple[type[BaseException], int, grpc.StatusCode], ...] = (
    (BodyTooLarge, 413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (compression.PayloadTooLarge, 413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (compression.UnsupportedEncoding, 415, grpc.StatusCode.UNIMPLEMENTED),
    (compression.BadEncoding, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (otlp.DecodeError, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (honeycomb.EventError, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (RowsOutOfRange, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidName, 400, grpc.StatusCode.INVALID_ARGUMENT),
)


def classify(exc: BaseException) -> Failure | None:
    """The failure for a known ingest exception; None for a bug (the caller logs it, 500)."""
    if isinstance(exc, Overloaded):
        return Failure(
            503,
            grpc.StatusCode.UNAVAILABLE,
            "server is busy writing: retry later",
            Overloaded.retry_after_s,
        )
    if isinstance(exc, WalError):
        return Failure(503, grpc.StatusCode.UNAVAILABLE, str(exc), 5)
    for cls, status, code in _TABLE:
        if isinstance(exc, cls):
            return Failure(status, code, str(exc) or cls.__name__)
    return None
