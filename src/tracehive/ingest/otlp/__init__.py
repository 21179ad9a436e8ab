"""OTLP export requests (traces, logs, metrics; protobuf or OTLP/JSON) -> canonical batches.

Pure and synchronous: bytes in (already decompressed), ``Decoded`` out, ``DecodeError`` for a
payload the server answers with 400. The mapping is documented where it is implemented:
``common.py`` (attribute values), ``traces.py``, ``logs.py``, ``metrics.py``; the ``*_json.py``
modules read OTLP/JSON into the same shapes.

Traces in protobuf go through the C accelerator ``tracehive.ingest._otlp_fast`` when it is built.
Its contract: ``_otlp_fast.decode_traces(body) -> (cols, attrs, n, rejected, error_message)``
with ``cols``/``attrs`` exactly the ``EventBatch.cols``/``.attrs`` that ``decode_traces_py``
builds, and ``ValueError(detail)`` when the body is not a valid ExportTraceServiceRequest or is
past a per-request limit (``common.py``: then ``detail`` is the reference decoder's message, which
starts with ``LIMIT_PREFIX``). The tests hold the two to identical output.
"""

from __future__ import annotations

from typing import Literal

from tracehive.ingest.otlp.common import LIMIT_PREFIX, Decoded, DecodeError
from tracehive.ingest.otlp.logs import decode_logs_pb
from tracehive.ingest.otlp.logs_json import decode_logs_json
from tracehive.ingest.otlp.metrics import decode_metrics_pb
from tracehive.ingest.otlp.metrics_json import decode_metrics_json
from tracehive.ingest.otlp.response import encode_export_response
from tracehive.ingest.otlp.traces import decode_traces_pb
from tracehive.ingest.otlp.traces_json import decode_traces_json
from tracehive.model.batch import EventBatch

try:
    from tracehive.ingest import _otlp_fast  # type: ignore[attr-defined]
except ImportError:
    _otlp_fast = None

__all__ = [
    "ACCELERATED",
    "DecodeError",
    "Decoded",
    "decode_logs",
    "decode_metrics",
    "decode_traces",
    "decode_traces_py",
    "encode_export_response",
]

Format = Literal["protobuf", "json"]

#: True when ``decode_traces`` uses the C accelerator for protobuf.
ACCELERATED = _otlp_fast is not None


def decode_traces_py(body: bytes, fmt: Format) -> Decoded:
    """Decode an ExportTraceServiceRequest with the pure-Python reference decoder."""
    return decode_traces_json(body) if fmt == "json" else decode_traces_pb(body)


def _decode_traces_fast(body: bytes) -> Decoded:
    try:
        cols, attrs, n, rejected, message = _otlp_fast.decode_traces(body)  # type: ignore[union-attr]
    except ValueError as exc:
        detail = str(exc)
        if detail.startswith(LIMIT_PREFIX):  # past a per-request limit: the reference's message
            raise DecodeError(detail) from None
        raise DecodeError(f"payload is not a valid ExportTraceServiceRequest: {detail}") from None
    accepted = cols["signal"].count("span")  # one span row per accepted span
    return Decoded(EventBatch(n=n, cols=cols, attrs=attrs), None, accepted, rejected, message)


def decode_traces(body: bytes, fmt: Format) -> Decoded:
    """Decode an ExportTraceServiceRequest: spans, span events and links as event rows."""
    if fmt == "protobuf" and _otlp_fast is not None:
        return _decode_traces_fast(body)
    return decode_traces_py(body, fmt)


def decode_logs(body: bytes, fmt: Format, now_ns: int | None = None) -> Decoded:
    """Decode an ExportLogsServiceRequest. ``now_ns`` stands in for the receive time (tests)."""
    return decode_logs_json(body, now_ns) if fmt == "json" else decode_logs_pb(body, now_ns)


def decode_metrics(body: bytes, fmt: Format, dataset: str) -> Decoded:
    """Decode an ExportMetricsServiceRequest into points for ``dataset``."""
    return decode_metrics_json(body, dataset) if fmt == "json" else decode_metrics_pb(body, dataset)
