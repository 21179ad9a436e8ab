"""Trace search (``POST /api/v1/traces/search``) against traces sent by the real OpenTelemetry SDK
(one TracerProvider per service, spans with explicit start/end times so durations are known):
span-attribute filters, trace-level filters (duration_ms, span_count, root.name,
root.service.name, service.name over every service touched, error), windows, limits and
validation, with each summary row checked against what was sent."""

from __future__ import annotations

import time

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MS = 1_000_000
SERVICES = ("frontend", "payments", "catalog", "worker")


class Sender:
    """One TracerProvider (and real OTLP/HTTP exporter) per service."""

    def __init__(self, server, key) -> None:
        self.providers = {}
        for name in SERVICES:
            provider = TracerProvider(resource=Resource.create({"service.name": name}))
            exporter = OTLPSpanExporter(
                endpoint=f"{server.url}/v1/traces", headers={"x-honeycomb-team": key}
            )
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            self.providers[name] = provider

    def span(self, service, name, start_ns, dur_ms, parent=None, attrs=None, error=False):
        tracer = self.providers[service].get_tracer("trace-search-test")
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = tracer.start_span(name, context=ctx, start_time=start_ns, attributes=attrs)
        if error:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        return span, start_ns + int(dur_ms * MS)

    def close(self) -> None:
        for p in self.providers.values():
            assert p.force_flush(30_000)
            p.shutdown()


@pytest.fixture(scope="module")
def traces(server, key, client):
    """Four traces, 10 s apart (so newest-first order is known), 10 minutes ago."""
    base = (int(time.time()) - 600) * 1_000_000_000
    s = Sender(server, key)
    expected = {}

    def finish(*pairs):
        for span, end in reversed(pairs):
            span.end(end_time=end)

    # checkout: frontend root, a frontend child, a payments child with an error (3 spans, 250 ms)
    t0 = base
    root = s.span("frontend", "GET /checkout", t0, 250, attrs={"http.route": "/checkout"})
    render = s.span("frontend", "render", t0 + 10 * MS, 40, parent=root[0])
    charge = s.span(
        "payments",
        "charge",
        t0 + 60 * MS,
        140,
        parent=root[0],
        attrs={"payment.amount": 42, "payment.currency": "EUR"},
        error=True,
    )
    finish(root, render, charge)
    expected["checkout"] = {
        "trace_id": root[0].get_span_context().trace_id,
        "start": t0,
        "duration_ms": 250.0,
        "span_count": 3,
        "error": True,
        "root_service": "frontend",
        "root_name": "GET /checkout",
        "services": ["frontend", "payments"],
    }

    # browse: frontend root, catalog child (2 spans, 40 ms)
    t1 = base + 10_000 * MS
    root = s.span("frontend", "GET /browse", t1, 40, attrs={"http.route": "/browse"})
    items = s.span("catalog", "list-items", t1 + 5 * MS, 25, parent=root[0], attrs={"items": 12})
    finish(root, items)
    expected["browse"] = {
        "trace_id": root[0].get_span_context().trace_id,
        "start": t1,
        "duration_ms": 40.0,
        "span_count": 2,
        "error": False,
        "root_service": "frontend",
        "root_name": "GET /browse",
        "services": ["catalog", "frontend"],
    }

    # job: worker root with three sequential steps; the last step ends after the root (1.3 s)
    t2 = base + 20_000 * MS
    root = s.span("worker", "process-job", t2, 1200, attrs={"job.kind": "import"})
    steps = [
        s.span("worker", "step", t2 + i * 400 * MS + MS, 300 if i < 2 else 499, parent=root[0])
        for i in range(3)
    ]
    finish(root, *steps)
    expected["job"] = {
        "trace_id": root[0].get_span_context().trace_id,
        "start": t2,
        "duration_ms": 1300.0,
        "span_count": 4,
        "error": False,
        "root_service": "worker",
        "root_name": "process-job",
        "services": ["worker"],
    }

    # refund: a single payments span (80 ms)
    t3 = base + 30_000 * MS
    root = s.span("payments", "POST /refund", t3, 80, attrs={"payment.amount": 7})
    finish(root)
    expected["refund"] = {
        "trace_id": root[0].get_span_context().trace_id,
        "start": t3,
        "duration_ms": 80.0,
        "span_count": 1,
        "error": False,
        "root_service": "payments",
        "root_name": "POST /refund",
        "services": ["payments"],
    }
    s.close()
    for t in expected.values():
        t["trace_id"] = f"{t['trace_id']:032x}"
    deadline = time.monotonic() + 30
    while client.get("/healthz").json()["pending_rows"]:
        assert time.monotonic() < deadline, "pipeline did not flush"
        time.sleep(0.05)
    return expected


def search(client, body, status=200):
    r = client.post("/api/v1/traces/search", json=body)
    assert r.status_code == status, r.text
    return r.json()["traces"] if status == 200 else r.json()["error"]


def names(traces, rows):
    by_id = {t["trace_id"]: name for name, t in traces.items()}
    return [by_id.get(r["trace_id"], r["trace_id"]) for r in rows]


def test_summaries_match_what_was_sent(client, traces):
    rows = search(client, {})
    assert names(traces, rows) == ["refund", "job", "browse", "checkout"]  # newest first
    for row in rows:
        exp = traces[names(traces, [row])[0]]
        assert row["trace_id"] == exp["trace_id"]
        assert row["xray_trace_id"] == f"1-{exp['trace_id'][:8]}-{exp['trace_id'][8:]}"
        assert row["start_time"] == pytest.approx(exp["start"] / 1e9)
        assert row["duration_ms"] == pytest.approx(exp["duration_ms"])
        for field in ("span_count", "error", "root_service", "root_name", "services"):
            assert row[field] == exp[field], (field, row)


def test_summary_agrees_with_trace_api(client, traces):
    for exp in traces.values():
        doc = client.get(f"/api/v1/traces/{exp['trace_id']}").json()
        assert doc["span_count"] == exp["span_count"]
        assert doc["error"] is exp["error"]
        assert doc["services"] == exp["services"]
        assert doc["duration_ms"] == pytest.approx(exp["duration_ms"])
        assert doc["spans"][0]["name"] == exp["root_name"]
        assert doc["spans"][0]["service"] == exp["root_service"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"filters": [{"column": "payment.amount", "op": ">", "value": 10}]}, ["checkout"]),
        ({"filters": [{"column": "payment.amount", "op": "exists"}]}, ["refund", "checkout"]),
        ({"filters": [{"column": "name", "op": "=", "value": "step"}]}, ["job"]),
        (
            {"filters": [{"column": "http.route", "op": "in", "value": ["/browse", "/nope"]}]},
            ["browse"],
        ),
        ({"filters": [{"column": "service.name", "op": "=", "value": "catalog"}]}, ["browse"]),
        ({"filters": [{"column": "error", "op": "=", "value": True}]}, ["checkout"]),
        ({"filters": [{"column": "duration_ms", "op": ">=", "value": 499}]}, ["job"]),
        (
            {
                "filters": [
                    {"column": "items", "op": "=", "value": 12},
                    {"column": "job.kind", "op": "=", "value": "import"},
                ],
                "filter_combination": "OR",
            },
            ["job", "browse"],
        ),
        (
            {
                "filters": [
                    {"column": "items", "op": "=", "value": 12},
                    {"column": "job.kind", "op": "=", "value": "import"},
                ]
            },
            [],
        ),
    ],
)
def test_span_filters(client, traces, body, expected):
    rows = search(client, body)
    assert names(traces, rows) == expected
    for row in rows:  # the summary is of the whole trace, not of the matching span
        exp = traces[names(traces, [row])[0]]
        assert row["span_count"] == exp["span_count"]
        assert row["root_name"] == exp["root_name"]


@pytest.mark.parametrize(
    ("trace_filters", "expected"),
    [
        ([{"column": "duration_ms", "op": ">", "value": 200}], ["job", "checkout"]),
        ([{"column": "duration_ms", "op": "<", "value": 50}], ["browse"]),
        ([{"column": "span_count", "op": ">=", "value": 3}], ["job", "checkout"]),
        ([{"column": "span_count", "op": "=", "value": 1}], ["refund"]),
        ([{"column": "root.name", "op": "=", "value": "GET /browse"}], ["browse"]),
        ([{"column": "root.name", "op": "starts-with", "value": "GET "}], ["browse", "checkout"]),
        ([{"column": "root.service.name", "op": "=", "value": "frontend"}], ["browse", "checkout"]),
        ([{"column": "service.name", "op": "=", "value": "payments"}], ["refund", "checkout"]),
        ([{"column": "service.name", "op": "!=", "value": "frontend"}], ["refund", "job"]),
        (
            [{"column": "service.name", "op": "in", "value": ["catalog", "worker"]}],
            ["job", "browse"],
        ),
        ([{"column": "service.name", "op": "contains", "value": "ay"}], ["refund", "checkout"]),
        ([{"column": "error", "op": "=", "value": True}], ["checkout"]),
        ([{"column": "error", "op": "=", "value": False}], ["refund", "job", "browse"]),
        (
            [
                {"column": "service.name", "op": "=", "value": "frontend"},
                {"column": "duration_ms", "op": ">", "value": 100},
            ],
            ["checkout"],
        ),
    ],
)
def test_trace_filters(client, traces, trace_filters, expected):
    assert names(traces, search(client, {"trace_filters": trace_filters})) == expected


def test_span_and_trace_filters_together(client, traces):
    body = {
        "filters": [{"column": "name", "op": "=", "value": "charge"}],
        "trace_filters": [{"column": "duration_ms", "op": ">", "value": 100}],
    }
    assert names(traces, search(client, body)) == ["checkout"]
    body["trace_filters"] = [{"column": "duration_ms", "op": ">", "value": 1000}]
    assert search(client, body) == []


def test_dataset_scope_and_whole_trace_summary(client, traces):
    # the match must be in the dataset; the summary covers the trace across datasets
    rows = search(client, {"dataset": "catalog"})
    assert names(traces, rows) == ["browse"]
    assert rows[0]["services"] == ["catalog", "frontend"] and rows[0]["span_count"] == 2
    rows = search(client, {"dataset": "PAYMENTS"})  # dataset names are case-insensitive
    assert names(traces, rows) == ["refund", "checkout"]
    assert search(client, {"dataset": "no-such-dataset"}, status=404)


def test_windows_and_limit(client, traces):
    start = traces["checkout"]["start"] // 1_000_000_000
    body = {"start_time": start - 1, "end_time": start + 15}
    assert names(traces, search(client, body)) == ["browse", "checkout"]
    body = {"start_time": start + 15, "time_range": 60}
    assert names(traces, search(client, body)) == ["refund", "job"]
    assert search(client, {"time_range": 60}) == []  # all of them are ~10 minutes old
    assert names(traces, search(client, {"limit": 1})) == ["refund"]
    rows = search(
        client, {"limit": 2, "trace_filters": [{"column": "error", "op": "=", "value": False}]}
    )
    assert names(traces, rows) == ["refund", "job"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"trace_filters": [{"column": "bogus", "op": "=", "value": 1}]},
            "trace_filters[0].column",
        ),
        (
            {"trace_filters": [{"column": "duration_ms", "op": "~", "value": 1}]},
            "trace_filters[0].op",
        ),
        (
            {"trace_filters": [{"column": "error", "op": "=", "value": True}, {"op": "="}]},
            "trace_filters[1].column",
        ),
        (
            {"trace_filters": [{"column": "span_count", "op": "in", "value": 3}]},
            "trace_filters[0].value",
        ),
        ({"trace_filters": {"column": "error"}}, "trace_filters"),
        ({"trace_filters": ["error"]}, "trace_filters[0]"),
        ({"filters": [{"column": "x", "op": "nope"}]}, "filters[0].op"),
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"bogus": 1}, "bogus"),
        ({"start_time": 10, "end_time": 5}, "end_time"),
    ],
)
def test_invalid_search_is_400_naming_the_field(client, traces, body, field):
    error = search(client, body, status=400)
    assert field in error, error


def test_invalid_bodies(client, traces):
    r = client.post("/api/v1/traces/search", content=b"{nope")
    assert r.status_code == 400 and r.json()["error"]
    r = client.post("/api/v1/traces/search", json=[])
    assert r.status_code == 400 and r.json()["error"]
