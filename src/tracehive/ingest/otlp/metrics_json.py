"""OTLP/JSON metrics -> ``MetricBatch``: the same mapping as ``metrics.py`` (read its docstring)."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from tracehive.ingest.otlp import json_wire as j
from tracehive.ingest.otlp.common import (
    Decoded,
    DecodeError,
    PointBudget,
    clamp_ns,
    dataset_and_service,
)
from tracehive.ingest.otlp.metrics import merge_plain
from tracehive.model.batch import MetricBatch, MetricPoint

_TEMPORALITY_NAMES = dict(AggregationTemporality.items())
_U64_MAX = 2**64 - 1

# JSON member (camelCase, snake_case) -> (protobuf field, kind).
_DATA = (
    ("gauge", "gauge", "gauge"),
    ("sum", "sum", "sum"),
    ("histogram", "histogram", "histogram"),
    ("exponentialHistogram", "exponential_histogram", "exp_histogram"),
    ("summary", "summary", "summary"),
)


def _u64_list(o: dict[str, Any], camel: str, snake: str | None = None) -> list[int]:
    out = []
    for i, v in enumerate(j.get_list(o, camel, snake)):
        n = j.to_int(v, 0, _U64_MAX)
        if n is None:
            raise j.JsonError("not an unsigned 64-bit integer", f"{camel}[{i}]")
        out.append(n)
    return out


def _buckets(dp: dict[str, Any], camel: str) -> tuple[int, list[int]]:
    buckets = j.get_obj(dp, camel)
    with j.at(camel):
        return j.get_i32(buckets, "offset"), _u64_list(buckets, "bucketCounts", "bucket_counts")


def _point(dp: dict[str, Any], kind: str, common: dict[str, Any], base: dict) -> MetricPoint:
    start = j.get_u64(dp, "startTimeUnixNano", "start_time_unix_nano")
    point = MetricPoint(
        kind=kind,
        ts_ns=clamp_ns(j.get_u64(dp, "timeUnixNano", "time_unix_nano")),
        start_ts_ns=clamp_ns(start) if start else None,
        attributes=merge_plain(base, j.attr_map(dp)),
        **common,
    )
    if kind == "gauge" or kind == "sum":
        has_double = dp.get("asDouble", dp.get("as_double")) is not None
        has_int = dp.get("asInt", dp.get("as_int")) is not None
        if has_double and has_int:
            raise j.JsonError("both asDouble and asInt are set", "")
        if has_double:
            point.value = j.get_double(dp, "asDouble", "as_double")
        elif has_int:
            point.value = j.get_i64(dp, "asInt", "as_int")
        return point
    point.count = j.get_u64(dp, "count")
    if kind == "summary":
        point.sum = j.get_double(dp, "sum")
        point.quantiles = []
        for i, q in enumerate(j.get_list(dp, "quantileValues", "quantile_values")):
            with j.at("quantileValues", i):
                j.need_obj(q)
                point.quantiles.append((j.get_double(q, "quantile"), j.get_double(q, "value")))
        return point
    point.sum = j.get_optional_double(dp, "sum")
    point.min = j.get_optional_double(dp, "min")
    point.max = j.get_optional_double(dp, "max")
    if kind == "histogram":
        point.bucket_counts = _u64_list(dp, "bucketCounts", "bucket_counts")
        bounds = []
        for i, v in enumerate(j.get_list(dp, "explicitBounds", "explicit_bounds")):
            d = j.to_double(v)
            if d is None:
                raise j.JsonError("not a number", f"explicitBounds[{i}]")
            bounds.append(d)
        point.explicit_bounds = bounds
    else:
        point.scale = j.get_i32(dp, "scale")
        point.zero_count = j.get_u64(dp, "zeroCount", "zero_count")
        point.positive_offset, point.positive_counts = _buckets(dp, "positive")
        point.negative_offset, point.negative_counts = _buckets(dp, "negative")
    return point


def _metric_points(
    metric: dict[str, Any], dataset: str, service: Any, base: dict, budget: PointBudget
) -> list:
    found = None
    for camel, snake, kind in _DATA:
        data = metric.get(camel, metric.get(snake))
        if data is not None:
            if found is not None:
                raise j.JsonError("more than one of gauge/sum/histogram/... is set", "")
            found = (camel, kind, j.get_obj(metric, camel, snake))
    if found is None:
        return []
    camel, kind, data = found
    common: dict[str, Any] = {
        "dataset": dataset,
        "name": j.get_str(metric, "name"),
        "service": service,
        "unit": j.get_str(metric, "unit") or None,
        "description": j.get_str(metric, "description") or None,
    }
    with j.at(camel):
        if kind != "gauge" and kind != "summary":
            temporality = j.get_enum(
                data, "aggregationTemporality", "aggregation_temporality", _TEMPORALITY_NAMES
            )
            common["temporality"] = temporality or None
        if kind == "sum":
            common["is_monotonic"] = j.get_bool(data, "isMonotonic", "is_monotonic")
        data_points = j.get_list(data, "dataPoints", "data_points")
        budget.reserve(len(data_points), len(base))  # limits as in metrics.py
        points = []
        for i, dp in enumerate(data_points):
            with j.at("dataPoints", i):
                points.append(_point(j.need_obj(dp), kind, common, base))
    budget.add(points)
    return points


def decode_metrics_json(body: bytes, dataset: str) -> Decoded:
    """Decode an OTLP/JSON ExportMetricsServiceRequest into points for ``dataset``."""
    doc = j.load(body, "resourceMetrics")
    points: list[MetricPoint] = []
    budget = PointBudget()
    try:
        for ri, rm in enumerate(j.get_list(doc, "resourceMetrics", "resource_metrics")):
            with j.at("resourceMetrics", ri):
                j.need_obj(rm)
                resource = j.get_obj(rm, "resource")
                with j.at("resource"):
                    res = j.attr_map(resource)
                _, service = dataset_and_service(res)
                for si, sm in enumerate(j.get_list(rm, "scopeMetrics", "scope_metrics")):
                    with j.at("scopeMetrics", si):
                        j.need_obj(sm)
                        scope = j.get_obj(sm, "scope")
                        with j.at("scope"):
                            typed = {**res, **j.attr_map(scope)}
                        base = {key: v for key, (_t, v) in typed.items()}
                        for mi, metric in enumerate(j.get_list(sm, "metrics")):
                            with j.at("metrics", mi):
                                points.extend(
                                    _metric_points(
                                        j.need_obj(metric), dataset, service, base, budget
                                    )
                                )
    except j.JsonError as exc:
        raise j.as_decode_error(exc) from None
    except RecursionError:  # values nested near orjson's depth limit, on an already deep stack
        raise DecodeError("payload nests values too deeply") from None
    return Decoded(None, MetricBatch(points), len(points), 0, "")
