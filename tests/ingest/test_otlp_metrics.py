"""OTLP metrics (protobuf): every instrument kind from the real OpenTelemetry metrics SDK (counter,
up-down counter, gauge, observable gauge, explicit and exponential histograms); summaries and edge
cases from hand-built messages."""

from __future__ import annotations

import math

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.metrics import Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PB2Resource
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from otlp_requests import attrs_to_pb

from tracehive.ingest.otlp import DecodeError, decode_metrics
from tracehive.model.batch import MetricPoint

DELTA, CUMULATIVE = 1, 2


def _points(request: ExportMetricsServiceRequest, dataset: str = "metrics-ds") -> list:
    decoded = decode_metrics(request.SerializeToString(), "protobuf", dataset)
    assert decoded.events is None and decoded.metrics is not None
    assert (decoded.rejected, decoded.error_message) == (0, "")
    assert decoded.accepted == decoded.metrics.n == len(decoded.metrics.points)
    return decoded.metrics.points


@pytest.fixture(scope="module")
def sdk_request() -> ExportMetricsServiceRequest:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "shop", "host.name": "web-1"}),
        metric_readers=[reader],
        views=[
            View(instrument_name="latency.exp", aggregation=ExponentialBucketHistogramAggregation())
        ],
    )
    meter = provider.get_meter("tests.metrics", "2.0")
    meter.create_counter("orders", unit="1", description="orders placed").add(3, {"region": "eu"})
    meter.create_up_down_counter("queue.depth").add(-2)
    meter.create_gauge("temperature", unit="Cel").set(21.5, {"room": "a"})
    meter.create_observable_gauge("cpu", callbacks=[lambda _opts: [Observation(7, {"core": 0})]])
    latency = meter.create_histogram("latency", unit="ms")
    for v in (1, 7, 30, 3000):
        latency.record(v, {"route": "/a"})
    exp = meter.create_histogram("latency.exp")
    for v in (0, 1.5, 2, 4, 1000):
        exp.record(v)
    data = reader.get_metrics_data()
    provider.shutdown()
    return encode_metrics(data)


def test_sdk_metrics_every_instrument(sdk_request):
    points = {p.name: p for p in _points(sdk_request)}
    assert len(points) == len(_points(sdk_request))
    assert set(points) == {"orders", "queue.depth", "temperature", "cpu", "latency", "latency.exp"}
    for p in points.values():
        assert (p.dataset, p.service) == ("metrics-ds", "shop")
        assert p.attributes["host.name"] == "web-1" and "service.name" not in p.attributes
        assert p.attributes["telemetry.sdk.language"] == "python"
        assert p.ts_ns > 0

    orders = points["orders"]
    assert (orders.kind, orders.value, orders.is_monotonic, orders.temporality) == (
        "sum",
        3,
        True,
        CUMULATIVE,
    )
    assert (orders.unit, orders.description) == ("1", "orders placed")
    assert orders.attributes["region"] == "eu" and 0 < orders.start_ts_ns <= orders.ts_ns
    depth = points["queue.depth"]
    assert (depth.kind, depth.value, depth.is_monotonic) == ("sum", -2, False)
    assert (depth.unit, depth.description) == (None, None)

    temperature = points["temperature"]
    assert (temperature.kind, temperature.value, temperature.unit) == ("gauge", 21.5, "Cel")
    assert temperature.temporality is None and temperature.is_monotonic is None
    assert temperature.attributes["room"] == "a"
    cpu = points["cpu"]
    assert (cpu.kind, cpu.value, cpu.attributes["core"]) == ("gauge", 7, 0)

    latency = points["latency"]
    assert (latency.kind, latency.count, latency.sum) == ("histogram", 4, 3038)
    assert (latency.min, latency.max, latency.temporality) == (1, 3000, CUMULATIVE)
    assert latency.explicit_bounds == [
        0.0,
        5.0,
        10.0,
        25.0,
        50.0,
        75.0,
        100.0,
        250.0,
        500.0,
        750.0,
        1000.0,
        2500.0,
        5000.0,
        7500.0,
        10000.0,
    ]
    assert latency.bucket_counts == [0, 1, 1, 0, 1] + [0] * 7 + [1, 0, 0, 0]
    assert latency.value is None and latency.scale is None

    exp = points["latency.exp"]
    assert (exp.kind, exp.count, exp.sum, exp.min, exp.max) == ("exp_histogram", 5, 1007.5, 0, 1000)
    assert exp.zero_count == 1 and isinstance(exp.scale, int)
    assert sum(exp.positive_counts) == 4 and sum(exp.negative_counts) == 0
    base = 2 ** (2**-exp.scale)
    lowest = base ** (exp.positive_offset)  # bucket i covers (base^(offset+i), base^(offset+i+1)]
    assert lowest < 1.5 <= lowest * base
    assert exp.explicit_bounds is None and exp.quantiles is None


def _request(metrics, resource=(), scope_attrs=()) -> ExportMetricsServiceRequest:
    scope = InstrumentationScope(name="s", attributes=attrs_to_pb(list(scope_attrs)))
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=PB2Resource(attributes=attrs_to_pb(list(resource))),
                scope_metrics=[ScopeMetrics(scope=scope, metrics=metrics)],
            )
        ]
    )


def test_summary_and_optional_fields():
    summary = Metric(
        name="rpc",
        summary=Summary(
            data_points=[
                SummaryDataPoint(
                    time_unix_nano=10,
                    count=4,
                    sum=8.5,
                    quantile_values=[
                        SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=2.0),
                        SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=4.0),
                    ],
                )
            ]
        ),
    )
    histogram = Metric(
        name="h",
        histogram=Histogram(
            aggregation_temporality=DELTA,
            data_points=[
                HistogramDataPoint(time_unix_nano=11, count=0),  # no sum/min/max: they are optional
            ],
        ),
    )
    empty = Metric(name="no data")  # none of the five kinds set: no points
    points = _points(_request([summary, histogram, empty]))
    assert points == [
        MetricPoint(
            dataset="metrics-ds",
            name="rpc",
            kind="summary",
            ts_ns=10,
            count=4,
            sum=8.5,
            quantiles=[(0.5, 2.0), (0.99, 4.0)],
            attributes={},
        ),
        MetricPoint(
            dataset="metrics-ds",
            name="h",
            kind="histogram",
            ts_ns=11,
            count=0,
            temporality=DELTA,
            bucket_counts=[],
            explicit_bounds=[],
            attributes={},
        ),
    ]


def test_attributes_values_and_times():
    gauge = Metric(
        name="g",
        gauge=Gauge(
            data_points=[
                NumberDataPoint(
                    time_unix_nano=2**64 - 1,
                    start_time_unix_nano=5,
                    as_int=-7,
                    attributes=attrs_to_pb(
                        [
                            ("x", ("b", True)),
                            ("arr", ("arr", [("i", 1)])),
                            ("nan", ("f", math.nan)),
                            ("", ("s", "k")),
                        ]
                    ),
                ),
                NumberDataPoint(time_unix_nano=3, as_double=math.inf),
                NumberDataPoint(time_unix_nano=4),  # no value set
            ]
        ),
    )
    total = Metric(name="t", sum=Sum(data_points=[NumberDataPoint(as_double=1.25)]))
    points = _points(
        _request(
            [gauge, total],
            resource=[
                ("service.name", ("s", " api ")),
                ("x", ("s", "res")),
                ("y", ("bytes", b"\x01")),
            ],
            scope_attrs=[("y", ("i", 2))],
        ),
        dataset="unknown_metrics",
    )
    first, second, third, fourth = points
    assert (first.ts_ns, first.start_ts_ns, first.value) == (2**63 - 1, 5, -7)
    assert first.attributes == {"x": True, "y": 2, "arr": "[1]"}
    assert (second.value, second.start_ts_ns, third.value) == (math.inf, None, None)
    assert second.attributes == {"x": "res", "y": 2}
    assert all(p.service == "api" and p.dataset == "unknown_metrics" for p in points)
    assert (fourth.kind, fourth.value, fourth.temporality, fourth.is_monotonic) == (
        "sum",
        1.25,
        None,
        False,
    )


def test_invalid_payload():
    with pytest.raises(DecodeError, match="not a valid ExportMetricsServiceRequest"):
        decode_metrics(b"\x0a\x02\x0a", "protobuf", "d")
    assert decode_metrics(b"", "protobuf", "d").metrics.points == []
