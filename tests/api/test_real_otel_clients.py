"""The real OpenTelemetry SDK, configured only through OTEL_* variables, exporting to a real
server over OTLP/HTTP and OTLP/gRPC; then Honeycomb queries checked against values computed
independently (numpy) from what the SDK recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

APP = Path(__file__).parent.parent / "apps" / "cruddur_otel.py"


def run_app(server, key, protocol, requests_count, tmp_path):
    endpoint = server.url if protocol == "http" else server.grpc_url
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": "backend-flask",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-honeycomb-team={key}",
    }
    out = tmp_path / f"spans-{protocol}.json"
    subprocess.run(
        [sys.executable, str(APP), protocol, str(requests_count), str(out)],
        check=True,
        env=env,
        timeout=120,
    )
    return json.loads(out.read_text())


def run_query(client, dataset, spec, timeout=30):
    r = client.post(f"/1/queries/{dataset}", json=spec)
    assert r.status_code == 200, r.text
    qid = r.json()["id"]
    r = client.post(f"/1/query_results/{dataset}", json={"query_id": qid})
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"/1/query_results/{dataset}/{r.json()['id']}")
    result = r.json()
    deadline = time.monotonic() + timeout
    while not result["complete"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        result = client.get(f"/1/query_results/{dataset}/{result['id']}").json()
    return result


def wait_for_count(client, dataset, expected, extra_filters=()):
    spec = {
        "calculations": [{"op": "COUNT"}],
        "time_range": 3600,
        "filters": [{"column": "meta.annotation_type", "op": "does-not-exist"}, *extra_filters],
    }
    deadline = time.monotonic() + 30
    while True:
        rows = run_query(client, dataset, spec)["data"]["results"]
        got = rows[0]["data"]["COUNT"] if rows else 0
        if got >= expected or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


@pytest.fixture(scope="module")
def key(server):
    return server.create_key("ingest,query")


@pytest.fixture(scope="module")
def http_spans(server, key, tmp_path_factory):
    return run_app(server, key, "http", 40, tmp_path_factory.mktemp("app"))


def test_http_exporter_spans_all_arrive(server, key, http_spans):
    with server.client(key) as c:
        assert wait_for_count(c, "backend-flask", len(http_spans)) == len(http_spans)


def test_p90_and_heatmap_match_numpy(server, key, http_spans):
    durations = np.array([s["duration_ms"] for s in http_spans])
    spec = {
        "calculations": [
            {"op": "HEATMAP", "column": "duration_ms"},
            {"op": "P90", "column": "duration_ms"},
            {"op": "COUNT"},
        ],
        "filters": [{"column": "meta.annotation_type", "op": "does-not-exist"}],
        "time_range": 3600,
    }
    with server.client(key) as c:
        wait_for_count(c, "backend-flask", len(http_spans))
        (row,) = run_query(c, "backend-flask", spec)["data"]["results"]
    data = row["data"]
    assert data["COUNT"] == len(http_spans)
    assert data["P90(duration_ms)"] == pytest.approx(np.percentile(durations, 90), rel=1e-6)
    buckets = data["HEATMAP(duration_ms)"]["buckets"]
    assert sum(b["count"] for b in buckets) == len(http_spans)


def test_breakdown_by_name_counts(server, key, http_spans):
    expected: dict[str, int] = {}
    for s in http_spans:
        expected[s["name"]] = expected.get(s["name"], 0) + 1
    spec = {
        "calculations": [{"op": "COUNT"}, {"op": "P90", "column": "duration_ms"}],
        "breakdowns": ["name"],
        "filters": [{"column": "meta.annotation_type", "op": "does-not-exist"}],
        "time_range": 3600,
        "limit": 100,
    }
    with server.client(key) as c:
        wait_for_count(c, "backend-flask", len(http_spans))
        rows = run_query(c, "backend-flask", spec)["data"]["results"]
    got = {r["data"]["name"]: r["data"]["COUNT"] for r in rows}
    assert got == expected
    for r in rows:
        name = r["data"]["name"]
        vals = [s["duration_ms"] for s in http_spans if s["name"] == name]
        assert r["data"]["P90(duration_ms)"] == pytest.approx(np.percentile(vals, 90), rel=1e-6)


def test_custom_span_attributes_are_columns_and_filterable(server, key, http_spans):
    custom = [s for s in http_spans if s["name"] == "home-activities-mock-data"]
    assert custom
    with server.client(key) as c:
        wait_for_count(c, "backend-flask", len(http_spans))
        cols = {col["key_name"]: col["type"] for col in c.get("/1/columns/backend-flask").json()}
        assert cols["app.result_length"] == "integer"
        assert cols["app.now"] == "string"
        assert cols["duration_ms"] == "float"
        spec = {
            "calculations": [{"op": "COUNT"}, {"op": "SUM", "column": "app.result_length"}],
            "filters": [{"column": "app.result_length", "op": "exists"}],
            "time_range": 3600,
        }
        (row,) = run_query(c, "backend-flask", spec)["data"]["results"]
    assert row["data"]["COUNT"] == len(custom) + sum(
        1 for s in http_spans if s["name"] == "notifications-activities-mock-data"
    )
    total = sum(
        s["attributes"]["app.result_length"]
        for s in http_spans
        if "app.result_length" in s["attributes"]
    )
    assert row["data"]["SUM(app.result_length)"] == total


def test_whole_trace_in_tree_order_with_events(server, key, http_spans):
    custom = next(s for s in http_spans if s["name"] == "home-activities-mock-data")
    trace_spans = [s for s in http_spans if s["trace_id"] == custom["trace_id"]]
    with server.client(key) as c:
        wait_for_count(c, "backend-flask", len(http_spans))
        r = c.get(f"/api/v1/traces/{custom['trace_id']}")
        assert r.status_code == 200, r.text
        doc = r.json()
        xray_id = doc["xray_trace_id"]
        assert c.get(f"/api/v1/traces/{xray_id}").json()["span_count"] == len(trace_spans)
    spans = doc["spans"]
    assert len(spans) == len(trace_spans)
    assert spans[0]["parent_id"] is None and spans[0]["depth"] == 0
    by_id = {s["span_id"]: s for s in spans}
    for i, s in enumerate(spans):  # tree order: every parent comes before its children
        if s["parent_id"]:
            parent = by_id[s["parent_id"]]
            assert spans.index(parent) < i and s["depth"] == parent["depth"] + 1
    mock = by_id[custom["span_id"]]
    assert mock["attributes"]["app.result_length"] == custom["attributes"]["app.result_length"]
    assert mock["resource"]["service.name"] == "backend-flask"
    loader = next(s for s in spans if s["name"] == "load-activities")
    assert [e["name"] for e in loader["events"]] == ["activities-loaded"]


def test_error_spans_and_exception_events(server, key, http_spans):
    errors = [s for s in http_spans if s["status"] == "ERROR"]
    assert errors
    spec = {
        "calculations": [{"op": "COUNT"}],
        "breakdowns": ["meta.annotation_type"],
        "filters": [{"column": "error", "op": "=", "value": True}],
        "time_range": 3600,
    }
    with server.client(key) as c:
        wait_for_count(c, "backend-flask", len(http_spans))
        rows = run_query(c, "backend-flask", spec)["data"]["results"]
    counts = {r["data"].get("meta.annotation_type"): r["data"]["COUNT"] for r in rows}
    exception_events = sum(s["events"].count("exception") for s in http_spans)
    assert counts.get("span_event") == exception_events
    assert counts.get(None) >= len(errors)


def test_grpc_exporter(server, key, tmp_path):
    spans = run_app(server, key, "grpc", 12, tmp_path)
    ids = {s["trace_id"] for s in spans}
    with server.client(key) as c:
        deadline = time.monotonic() + 30
        for tid in ids:
            while True:
                r = c.get(f"/api/v1/traces/{tid}")
                if r.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert r.status_code == 200
            assert r.json()["span_count"] == sum(1 for s in spans if s["trace_id"] == tid)
