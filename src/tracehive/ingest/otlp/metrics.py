"""OTLP metrics (ExportMetricsServiceRequest, protobuf) -> ``MetricBatch`` of ``MetricPoint``.

One point per data point of a gauge, sum, histogram, exponential histogram or summary (kinds
"gauge", "sum", "histogram", "exp_histogram", "summary"); a metric with none of the five set has
no points. ``dataset`` is the caller's (Honeycomb: the ``x-honeycomb-dataset`` header, else
"unknown_metrics", PROTOCOLS.md §6.1); ``service`` is the resource's service.name (it routes
nothing here, so it is not checked as a dataset name and never rejects points). Attributes:
resource (minus service.name), then scope, then the point's, as plain Python values converted as
in ``common.py``. Times are clamped to 2^63 - 1; a zero start time is None; temporality 0
(UNSPECIFIED) is None; optional histogram sum/min/max are None when absent. Exemplars and point
flags are not kept. Data points are never rejected.

Limits (common.py): more than ``MAX_ROWS`` points, or more than ``MAX_CELLS`` attributes over all
points (the resource and scope ones count once per point), refuse the request; checked per metric
before its points are built (``PointBudget``). There is no key limit: points carry dicts, not
columns.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from tracehive.ingest.otlp.common import (
    Decoded,
    DecodeError,
    PointBudget,
    TypedValue,
    clamp_ns,
    dataset_and_service,
    pb_attr_map,
)
from tracehive.model.batch import MetricBatch, MetricPoint

KIND_NAMES = {
    "gauge": "gauge",
    "sum": "sum",
    "histogram": "histogram",
    "exponential_histogram": "exp_histogram",
    "summary": "summary",
}


def merge_plain(base: dict[str, Any], point: dict[str, TypedValue]) -> dict[str, Any]:
    """Base attributes (already plain) overridden by the point's typed ones, as plain values."""
    out = dict(base)
    for key, (_t, v) in point.items():
        out[key] = v
    return out


def _optional(dp: Any, field: str) -> float | None:
    return getattr(dp, field) if dp.HasField(field) else None


def _point(dp: Any, kind: str, common: dict[str, Any], base: dict[str, Any]) -> MetricPoint:
    start = dp.start_time_unix_nano
    point = MetricPoint(
        kind=kind,
        ts_ns=clamp_ns(dp.time_unix_nano),
        start_ts_ns=clamp_ns(start) if start else None,
        attributes=merge_plain(base, pb_attr_map(dp.attributes)),
        **common,
    )
    if kind == "gauge" or kind == "sum":
        which = dp.WhichOneof("value")
        point.value = getattr(dp, which) if which else None
    elif kind == "summary":
        point.count = dp.count
        point.sum = dp.sum
        point.quantiles = [(q.quantile, q.value) for q in dp.quantile_values]
    else:
        point.count = dp.count
        point.sum = _optional(dp, "sum")
        point.min = _optional(dp, "min")
        point.max = _optional(dp, "max")
        if kind == "histogram":
            point.bucket_counts = list(dp.bucket_counts)
            point.explicit_bounds = list(dp.explicit_bounds)
        else:
            point.scale = dp.scale
            point.zero_count = dp.zero_count
            point.positive_offset = dp.positive.offset
            point.positive_counts = list(dp.positive.bucket_counts)
            point.negative_offset = dp.negative.offset
            point.negative_counts = list(dp.negative.bucket_counts)
    return point


def decode_metrics_pb(body: bytes, dataset: str) -> Decoded:
    """Decode a protobuf ExportMetricsServiceRequest into points for ``dataset``."""
    try:
        request = ExportMetricsServiceRequest.FromString(body)
    except Exception as exc:
        raise DecodeError(f"payload is not a valid ExportMetricsServiceRequest: {exc}") from None
    points: list[MetricPoint] = []
    budget = PointBudget()
    for resource_metrics in request.resource_metrics:
        res = pb_attr_map(resource_metrics.resource.attributes)
        _, service = dataset_and_service(res)
        for scope_metrics in resource_metrics.scope_metrics:
            typed = {**res, **pb_attr_map(scope_metrics.scope.attributes)}
            base = {key: v for key, (_t, v) in typed.items()}
            for metric in scope_metrics.metrics:
                field = metric.WhichOneof("data")
                if field is None:
                    continue
                data = getattr(metric, field)
                kind = KIND_NAMES[field]
                common: dict[str, Any] = {
                    "dataset": dataset,
                    "name": metric.name,
                    "service": service,
                    "unit": metric.unit or None,
                    "description": metric.description or None,
                }
                if field != "gauge" and field != "summary":
                    common["temporality"] = data.aggregation_temporality or None
                if field == "sum":
                    common["is_monotonic"] = data.is_monotonic
                data_points = data.data_points
                budget.reserve(len(data_points), len(base))
                new = [_point(dp, kind, common, base) for dp in data_points]
                budget.add(new)
                points.extend(new)
    return Decoded(None, MetricBatch(points), len(points), 0, "")
