"""Canonical records shared by every layer: ids, attribute values, the event batch, metric points.

Nothing here knows a wire format or a database.
"""

from tracehive.model.batch import EventBatch, MetricBatch, Signal
from tracehive.model.ids import (
    span_id_from_hex,
    span_id_to_hex,
    trace_id_from_any,
    trace_id_to_hex,
    trace_id_to_xray,
)

__all__ = [
    "EventBatch",
    "MetricBatch",
    "Signal",
    "span_id_from_hex",
    "span_id_to_hex",
    "trace_id_from_any",
    "trace_id_to_hex",
    "trace_id_to_xray",
]
