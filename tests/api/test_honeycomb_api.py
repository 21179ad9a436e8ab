"""Honeycomb's events and batch API end to end against a real server (PROTOCOLS.md §7.2-§7.5):
headers and per-item time/samplerate, per-item batch statuses, gzip and zstd bodies, then the
query API's answers checked against values computed here from what was sent (samplerate
weighted), dataset naming rules, the columns API, spec echo and validation errors."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime

import pytest
import zstandard
from api_helpers import run_query, wait_flushed

DS = "HcApi"  # first casing seen: the display name
OLD_AGE_S = 3 * 3600  # one event outside the default 2 h window


def results(client, dataset, spec):
    return [row["data"] for row in run_query(client, dataset, spec)["data"]["results"]]


def single(client, dataset, spec):
    rows = results(client, dataset, spec)
    assert len(rows) <= 1, rows
    return rows[0] if rows else {}


def rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Sent:
    """What the server accepted, as (data, samplerate, epoch seconds or None for receive time)."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.events: list[tuple[dict, int, float | None]] = []

    def add(self, data: dict, rate: int = 1, ts: float | None = None) -> None:
        self.events.append((data, rate, ts))

    def recent(self, pred=lambda d: True):
        """Accepted events in the last hour that match ``pred``."""
        return [
            (d, r, ts)
            for d, r, ts in self.events
            if (ts is None or ts > self.now - 3600) and pred(d)
        ]

    def count(self, pred=lambda d: True) -> int:
        return sum(r for _, r, _ in self.recent(pred))

    def total(self, field: str, pred=lambda d: True) -> float:
        return sum(d[field] * r for d, r, _ in self.recent(pred) if field in d)


@pytest.fixture(scope="module")
def sent(client):
    """Everything is written once, through every ingest path; tests read it back."""
    now = int(time.time())
    s = Sent(now)
    statuses = {}

    # 1. one event: RFC3339 event time with a fraction, sample rate 10, first casing "HcApi"
    event = {"endpoint": "/api/users", "bytes": 100, "latency": 2.5, "region": "eu-west"}
    r = client.post(
        f"/1/events/{DS}",
        json={**event, "timed": True},
        headers={
            "X-Honeycomb-Event-Time": rfc3339(now - 120.25),
            "X-Honeycomb-Samplerate": "10",
        },
    )
    assert r.status_code == 200, r.text
    assert r.content == b""  # §7.2: 200 with an empty body
    s.add({**event, "timed": True}, 10, now - 120.25)

    # 2. a batch (other casing) with per-item time/samplerate and invalid items in between
    items = [
        {
            "data": {
                "endpoint": "/api/orders",
                "bytes": 50,
                "latency": 1.0,
                "region": "us-east",
                "timed": True,
            },
            "time": now - 90,  # epoch seconds as a number
            "samplerate": 3,
        },
        {"data": "not an object"},
        {
            "data": {"endpoint": "/health", "bytes": 7, "latency": 0.5, "timed": True},
            "time": rfc3339(now - 60),
        },
        ["not", "an", "item"],
        {"time": now},  # no data
        {"data": {"endpoint": "/api/users", "region": "us-west", "huge": "x" * 70_000}},
        {
            "data": {"endpoint": "/api/users", "bytes": 30, "latency": 4.0, "region": "us-west"},
            "samplerate": 2,
        },
        {  # more than 1 h ahead: stored at the receive time (§7.3)
            "data": {"endpoint": "/future", "bytes": 3, "latency": 0.25, "region": "us-east"},
            "time": now + 7200,
        },
        {"data": {"endpoint": "/api/old", "bytes": 1000}, "time": str(now - OLD_AGE_S)},
    ]
    r = client.post("/1/batch/hcapi", json=items)
    assert r.status_code == 200, r.text
    statuses["batch"] = r.json()
    s.add(items[0]["data"], 3, now - 90)
    s.add(items[2]["data"], 1, now - 60)
    s.add(items[6]["data"], 2, None)
    s.add(items[7]["data"], 1, None)
    s.add(items[8]["data"], 1, now - OLD_AGE_S)

    # 3. gzip batch (third casing)
    gz_item = {"endpoint": "/api/orders", "bytes": 5, "latency": 3.0, "region": "eu-central"}
    body = gzip.compress(
        json.dumps([{"data": {**gz_item, "timed": True}, "time": now - 30}]).encode()
    )
    r = client.post("/1/batch/HCAPI", content=body, headers={"content-encoding": "gzip"})
    assert r.status_code == 200, r.text
    statuses["gzip"] = r.json()
    s.add({**gz_item, "timed": True}, 1, now - 30)

    # 4. zstd batch
    zs_item = {"endpoint": "/api/items", "bytes": 1, "latency": 10.0, "region": "ap-south"}
    body = zstandard.ZstdCompressor().compress(
        json.dumps([{"data": zs_item, "samplerate": 5}]).encode()
    )
    r = client.post(f"/1/batch/{DS}", content=body, headers={"content-encoding": "zstd"})
    assert r.status_code == 200, r.text
    statuses["zstd"] = r.json()
    s.add(zs_item, 5, None)

    # 5. gzip single event, epoch event-time header
    gz_event = {"endpoint": "/gz-event", "bytes": 9, "latency": 0.75, "region": "eu-west"}
    r = client.post(
        f"/1/events/{DS}",
        content=gzip.compress(json.dumps(gz_event).encode()),
        headers={"content-encoding": "gzip", "X-Honeycomb-Event-Time": str(now - 45)},
    )
    assert r.status_code == 200, r.text
    s.add(gz_event, 1, now - 45)

    # 6. another dataset, URL-encoded name with a space
    r = client.post("/1/events/My%20Dataset", json={"k": "v", "n": 1})
    assert r.status_code == 200, r.text
    r = client.post("/1/batch/my%20dataset", json=[{"data": {"k": "w", "n": 2}}])
    assert r.status_code == 200 and r.json() == [{"status": 202}], r.text

    wait_flushed(client)
    s.statuses = statuses
    return s


# -- ingest -----------------------------------------------------------------------------------


def test_batch_of_one_off_field_names_is_refused_whole(client):
    """A batch whose names x events would decode to more than MAX_SLOTS column slots gets 400
    in Honeycomb's error shape, at once; the server keeps serving."""
    from tracehive.ingest.honeycomb import MSG_TOO_WIDE

    wide = [{"data": {f"f{i}_{j}": j for j in range(20)}} for i in range(3000)]
    r = client.post("/1/batch/wide", json=wide)
    assert r.status_code == 400 and r.json() == {"error": MSG_TOO_WIDE}
    r = client.post("/1/batch/wide", json=[{"data": {"ok": 1}}])
    assert r.status_code == 200 and r.json() == [{"status": 202}]


def test_batch_statuses_in_input_order(sent):
    malformed = "Request body is malformed and cannot be read."
    assert sent.statuses["batch"] == [
        {"status": 202},
        {"status": 400, "error": malformed},
        {"status": 202},
        {"status": 400, "error": malformed},
        {"status": 400, "error": "Request body should not be empty."},
        {"status": 400, "error": "string value too long"},
        {"status": 202},
        {"status": 202},
        {"status": 202},
    ]
    assert sent.statuses["gzip"] == [{"status": 202}]
    assert sent.statuses["zstd"] == [{"status": 202}]


def test_count_is_samplerate_weighted_and_rejected_items_leave_no_rows(client, sent):
    row = single(client, DS, {"calculations": [{"op": "COUNT"}], "time_range": 3600})
    assert row["COUNT"] == sent.count() == 10 + 3 + 1 + 2 + 1 + 1 + 5 + 1
    # usage_mode ignores sample rates: one per stored row
    row = single(
        client, DS, {"calculations": [{"op": "COUNT"}], "time_range": 3600, "usage_mode": True}
    )
    assert row["COUNT"] == len(sent.recent())
    # nothing of the rejected item with the oversized string was stored
    row = single(
        client,
        DS,
        {
            "calculations": [{"op": "COUNT"}],
            "filters": [{"column": "huge", "op": "exists"}],
            "time_range": 3600,
        },
    )
    assert row.get("COUNT", 0) == 0


def test_event_headers_set_time_and_samplerate(client, sent):
    now = sent.now
    # only the single event (time now-120.25 s, samplerate 10) is in [now-121, now-119)
    row = single(
        client,
        DS,
        {"calculations": [{"op": "COUNT"}], "start_time": now - 121, "end_time": now - 119},
    )
    assert row == {"COUNT": 10}
    row = single(
        client,
        DS,
        {
            "calculations": [{"op": "COUNT"}, {"op": "MAX", "column": "samplerate"}],
            "filters": [{"column": "endpoint", "op": "=", "value": "/gz-event"}],
            "start_time": now - 46,
            "end_time": now - 44,
        },
    )
    assert row == {"COUNT": 1, "MAX(samplerate)": 1}


def test_future_time_is_replaced_by_receive_time(client, sent):
    spec = {
        "calculations": [{"op": "COUNT"}],
        "filters": [{"column": "endpoint", "op": "=", "value": "/future"}],
        "time_range": 600,
    }
    assert single(client, DS, spec) == {"COUNT": 1}


def test_sum_and_avg_on_numeric_fields(client, sent):
    spec = {
        "calculations": [
            {"op": "SUM", "column": "bytes"},
            {"op": "AVG", "column": "latency"},
            {"op": "MIN", "column": "latency"},
            {"op": "MAX", "column": "bytes"},
        ],
        "time_range": 3600,
    }
    row = single(client, DS, spec)
    assert row["SUM(bytes)"] == sent.total("bytes")
    weights = sum(r for d, r, _ in sent.recent(lambda d: "latency" in d))
    assert row["AVG(latency)"] == pytest.approx(sent.total("latency") / weights, rel=1e-9)
    assert row["MIN(latency)"] == 0.25
    assert row["MAX(bytes)"] == 100


def test_breakdown_on_string_field(client, sent):
    spec = {
        "calculations": [{"op": "COUNT"}, {"op": "SUM", "column": "bytes"}],
        "breakdowns": ["region"],
        "time_range": 3600,
    }
    got = {r["region"]: (r["COUNT"], r["SUM(bytes)"]) for r in results(client, DS, spec)}
    expected = {}
    for d, rate, _ in sent.recent():
        c, b = expected.get(d.get("region"), (0, 0))
        expected[d.get("region")] = (c + rate, b + d["bytes"] * rate)
    assert got == expected
    assert None in got  # events without the field form their own group


@pytest.mark.parametrize(
    ("flt", "pred"),
    [
        (
            {"column": "endpoint", "op": "starts-with", "value": "/api/"},
            lambda d: d["endpoint"].startswith("/api/"),
        ),
        (
            {"column": "endpoint", "op": "does-not-start-with", "value": "/api/"},
            lambda d: not d["endpoint"].startswith("/api/"),
        ),
        (
            {"column": "region", "op": "in", "value": ["us-east", "us-west"]},
            lambda d: d.get("region") in ("us-east", "us-west"),
        ),
        (
            {"column": "region", "op": "not-in", "value": ["us-east", "us-west"]},
            lambda d: d.get("region") not in ("us-east", "us-west"),
        ),
        ({"column": "region", "op": "exists"}, lambda d: "region" in d),
        ({"column": "region", "op": "does-not-exist"}, lambda d: "region" not in d),
        ({"column": "latency", "op": ">=", "value": 2.5}, lambda d: d.get("latency", 0) >= 2.5),
        ({"column": "bytes", "op": "<", "value": 10}, lambda d: d["bytes"] < 10),
        ({"column": "timed", "op": "=", "value": True}, lambda d: d.get("timed") is True),
    ],
    ids=lambda v: v["op"] if isinstance(v, dict) else "",
)
def test_filters(client, sent, flt, pred):
    spec = {"calculations": [{"op": "COUNT"}], "filters": [flt], "time_range": 3600}
    assert single(client, DS, spec).get("COUNT", 0) == sent.count(pred)


def test_filter_combination_or(client, sent):
    spec = {
        "calculations": [{"op": "COUNT"}],
        "filters": [
            {"column": "region", "op": "=", "value": "ap-south"},
            {"column": "endpoint", "op": "ends-with", "value": "orders"},
        ],
        "filter_combination": "OR",
        "time_range": 3600,
    }
    pred = lambda d: d.get("region") == "ap-south" or d["endpoint"].endswith("orders")  # noqa: E731
    assert single(client, DS, spec)["COUNT"] == sent.count(pred) == 5 + 3 + 1


def test_time_windows(client, sent):
    now = sent.now
    old = {"COUNT": 1, "SUM(bytes)": 1000}
    calcs = [{"op": "COUNT"}, {"op": "SUM", "column": "bytes"}]
    # the default window (2 h before now) does not reach the 3 h old event
    row = single(client, DS, {"calculations": calcs})
    assert row["COUNT"] == sent.count()
    # start and end
    spec = {"calculations": calcs, "start_time": now - OLD_AGE_S - 60, "end_time": now - 7200}
    assert single(client, DS, spec) == old
    # time_range after start_time
    spec = {"calculations": calcs, "start_time": now - OLD_AGE_S - 60, "time_range": 600}
    assert single(client, DS, spec) == old
    # time_range before end_time
    spec = {"calculations": calcs, "end_time": now - OLD_AGE_S + 60, "time_range": 600}
    assert single(client, DS, spec) == old
    # a window with nothing in it
    spec = {"calculations": calcs, "end_time": now - OLD_AGE_S - 60, "time_range": 600}
    assert results(client, DS, spec) in ([], [{"COUNT": 0, "SUM(bytes)": None}])
    # the whole of it
    spec = {"calculations": calcs, "time_range": 4 * 3600}
    row = single(client, DS, spec)
    assert row["COUNT"] == sent.count() + 1
    assert row["SUM(bytes)"] == sent.total("bytes") + 1000


def test_granularity_series_sum_to_totals(client, sent):
    now = sent.now
    spec = {
        "calculations": [{"op": "COUNT"}, {"op": "SUM", "column": "bytes"}],
        "time_range": 3600,
        "granularity": 60,
    }
    result = run_query(client, DS, spec)["data"]
    (total,) = result["results"]
    series = result["series"]
    assert sum(p["data"]["COUNT"] for p in series) == total["data"]["COUNT"] == sent.count()
    assert sum(p["data"]["SUM(bytes)"] or 0 for p in series) == total["data"]["SUM(bytes)"]
    for p in series:
        t = datetime.strptime(p["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        assert t % 60 == 0 and now - 3600 - 60 <= t <= now + 60, p
    # the events with explicit times land in the buckets of those times
    spec = {**spec, "filters": [{"column": "timed", "op": "=", "value": True}]}
    result = run_query(client, DS, spec)["data"]
    expected: dict[str, int] = {}
    for _, rate, ts in sent.recent(lambda d: d.get("timed") is True):
        bucket = datetime.fromtimestamp(int(ts // 60 * 60), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        expected[bucket] = expected.get(bucket, 0) + rate
    got = {p["time"]: p["data"]["COUNT"] for p in result["series"] if p["data"]["COUNT"]}
    assert got == expected


def test_orders_havings_and_limit(client, sent):
    counts: dict[str, int] = {}
    for d, rate, _ in sent.recent():
        counts[d["endpoint"]] = counts.get(d["endpoint"], 0) + rate
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    spec = {
        "calculations": [{"op": "COUNT"}],
        "breakdowns": ["endpoint"],
        "orders": [{"op": "COUNT", "order": "descending"}, {"column": "endpoint"}],
        "time_range": 3600,
    }
    rows = results(client, DS, spec)
    assert [(r["endpoint"], r["COUNT"]) for r in rows] == ranked
    rows = results(client, DS, {**spec, "limit": 2})
    assert [(r["endpoint"], r["COUNT"]) for r in rows] == ranked[:2]
    spec["havings"] = [{"calculate_op": "COUNT", "op": ">=", "value": 3}]
    rows = results(client, DS, spec)
    assert [(r["endpoint"], r["COUNT"]) for r in rows] == [kv for kv in ranked if kv[1] >= 3]
    spec = {
        "calculations": [{"op": "COUNT"}],
        "breakdowns": ["endpoint"],
        "orders": [{"column": "endpoint", "order": "descending"}],
        "time_range": 3600,
    }
    assert [r["endpoint"] for r in results(client, DS, spec)] == sorted(counts, reverse=True)


# -- datasets and columns ---------------------------------------------------------------------


def test_dataset_names_case_insensitive_first_casing_kept(client, sent):
    names = [d["name"] for d in client.get("/1/datasets").json()]
    assert DS in names and "My Dataset" in names
    assert not {"hcapi", "HCAPI", "my dataset", "My%20Dataset"} & set(names)
    by_name = {d["name"]: d for d in client.get("/1/datasets").json()}
    assert by_name[DS]["slug"] == "hcapi"
    # every casing reads the same dataset
    counts = {
        ds: single(client, ds, {"calculations": [{"op": "COUNT"}], "time_range": 3600})["COUNT"]
        for ds in (DS, "hcapi", "HCAPI", "hCaPi")
    }
    assert set(counts.values()) == {sent.count()}


def test_url_encoded_dataset_names(client, sent):
    for ds in ("My%20Dataset", "my%20dataset", "MY%20DATASET"):
        row = single(
            client,
            ds,
            {"calculations": [{"op": "COUNT"}, {"op": "SUM", "column": "n"}], "time_range": 600},
        )
        assert row == {"COUNT": 2, "SUM(n)": 3}
        r = client.get(f"/1/columns/{ds}")
        assert r.status_code == 200
        assert {c["key_name"]: c["type"] for c in r.json()}.items() >= {
            "k": "string",
            "n": "integer",
        }.items()
    # the Location of a result names the dataset URL-encoded
    qid = client.post("/1/queries/My%20Dataset", json={}).json()["id"]
    r = client.post("/1/query_results/My%20Dataset", json={"query_id": qid})
    assert r.status_code == 201
    assert r.headers["location"].endswith(f"/1/query_results/My%20Dataset/{r.json()['id']}")


def test_columns_list_fields_with_types(client, sent):
    cols = client.get(f"/1/columns/{DS}").json()
    types = {c["key_name"]: c["type"] for c in cols}
    assert types["endpoint"] == "string"
    assert types["region"] == "string"
    assert types["bytes"] == "integer"
    assert types["latency"] == "float"
    assert types["timed"] == "boolean"
    assert types["duration_ms"] == "float"  # fixed columns are listed too
    assert "huge" not in types  # only from a rejected item
    assert "k" not in types  # another dataset's field
    for c in cols:
        assert c["id"] == c["key_name"]
    written = {c["key_name"]: c["last_written"] for c in cols}
    assert written["endpoint"] is not None
    stamp = datetime.strptime(written["endpoint"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(stamp.timestamp() - time.time()) < 3600


# -- queries: echo and validation -------------------------------------------------------------


def test_get_query_echoes_spec(client, sent):
    spec = {
        "calculations": [
            {"op": "COUNT"},
            {"op": "P90", "column": "latency"},
            {"op": "SUM", "column": "bytes", "name": "total_bytes"},
        ],
        "filters": [
            {"column": "endpoint", "op": "starts-with", "value": "/api"},
            {"column": "region", "op": "in", "value": ["us-east", "eu-west"]},
            {"column": "latency", "op": "exists"},
        ],
        "filter_combination": "OR",
        "breakdowns": ["region"],
        "orders": [{"op": "COUNT", "order": "descending"}],
        "havings": [{"calculate_op": "COUNT", "op": ">", "value": 1}],
        "limit": 50,
        "time_range": 3600,
        "granularity": 60,
    }
    r = client.post(f"/1/queries/{DS}", json=spec)
    assert r.status_code == 200, r.text
    created = r.json()
    qid = created.pop("id")
    assert created == spec
    r = client.get(f"/1/queries/{DS}/{qid}")
    assert r.status_code == 200
    assert r.json() == {**spec, "id": qid}
    # defaults are filled in on echo
    r = client.post(f"/1/queries/{DS}", json={})
    body = r.json()
    assert {k: v for k, v in body.items() if k != "id"} == {
        "calculations": [{"op": "COUNT"}],
        "time_range": 7200,
    }
    assert client.get(f"/1/queries/{DS}/{body['id']}").json() == body
    assert client.get(f"/1/queries/{DS}/does-not-exist").status_code == 404


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"calculations": [{"op": "SUM"}]}, "calculations[0].column"),
        ({"calculations": [{"op": "COUNT"}, {"op": "P91", "column": "x"}]}, "calculations[1].op"),
        ({"calculations": [{"op": "COUNT", "column": "x"}]}, "calculations[0].column"),
        ({"calculations": {"op": "COUNT"}}, "calculations"),
        ({"filters": [{"column": "a", "op": "in", "value": 1}]}, "filters[0].value"),
        ({"filters": [{"column": "a", "op": "~=", "value": 1}]}, "filters[0].op"),
        ({"filters": [{"column": "a", "op": "exists", "value": 1}]}, "filters[0].value"),
        ({"filters": [{"op": "=", "value": 1}]}, "filters[0].column"),
        ({"filter_combination": "XOR"}, "filter_combination"),
        ({"breakdowns": ["a", "a"]}, "breakdowns[1]"),
        ({"orders": [{"op": "MAX", "column": "x"}]}, "orders[0]"),
        ({"havings": [{"calculate_op": "COUNT", "op": ">", "value": "x"}]}, "havings[0].value"),
        ({"limit": 0}, "limit"),
        ({"time_range": -5}, "time_range"),
        ({"time_range": "3600"}, "time_range"),
        ({"start_time": 2000, "end_time": 1000}, "end_time"),
        ({"start_time": 1000, "end_time": 2000, "time_range": 10}, "time_range"),
        ({"time_range": 7200, "granularity": 1}, "granularity"),
        ({"time_range": 60, "granularity": 120}, "granularity"),
        ({"bogus": 1}, "bogus"),
        ({"formulas": [{"name": "x", "expression": "1"}]}, "formulas"),
    ],
)
def test_invalid_specs_get_400_naming_the_field(client, sent, spec, field):
    r = client.post(f"/1/queries/{DS}", json=spec)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"], r.json()


def test_invalid_bodies(client, sent):
    r = client.post(f"/1/queries/{DS}", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]
    r = client.post(f"/1/queries/{DS}", json=[1, 2])
    assert r.status_code == 400 and r.json()["error"]
    r = client.post(f"/1/query_results/{DS}", json={})
    assert r.status_code == 400 and "query_id" in r.json()["error"]
    r = client.post(f"/1/query_results/{DS}", json={"query_id": "nope"})
    assert r.status_code == 404
    qid = client.post(f"/1/queries/{DS}", json={}).json()["id"]
    r = client.post(f"/1/query_results/{DS}", json={"query_id": qid, "surprise": 1})
    assert r.status_code == 400 and "surprise" in r.json()["error"]
    assert client.get(f"/1/query_results/{DS}/nope").status_code == 404
    # events: empty, not an object, not JSON
    for body, message in (
        (b"", "Request body should not be empty."),
        (b"[1]", "Request body is malformed and cannot be read."),
        (b"{", "Request body is malformed and cannot be read."),
    ):
        r = client.post(f"/1/events/{DS}", content=body)
        assert r.status_code == 400 and r.json() == {"error": message}
    # batch: the body must be an array
    r = client.post(f"/1/batch/{DS}", json={"data": {"a": 1}})
    assert r.status_code == 400 and r.json()["error"]
    # a body that is not what its encoding says
    r = client.post(f"/1/batch/{DS}", content=b"plain", headers={"content-encoding": "zstd"})
    assert r.status_code == 400


def test_unknown_dataset_is_404(client, sent):
    assert client.get("/1/columns/no-such-dataset").status_code == 404
    r = client.post("/1/queries/no-such-dataset", json={})
    assert r.status_code == 404 and "no-such-dataset" in r.json()["error"]
    qid = client.post(f"/1/queries/{DS}", json={}).json()["id"]
    r = client.post("/1/query_results/no-such-dataset", json={"query_id": qid})
    assert r.status_code == 404


def test_writes_to_all_refused(client, sent):
    before = client.get("/1/datasets").json()
    r = client.post("/1/events/__all__", json={"a": 1})
    assert r.status_code == 400 and r.json()["error"]
    r = client.post("/1/batch/__all__", json=[{"data": {"a": 1}}])
    assert r.status_code == 400 and r.json()["error"]
    wait_flushed(client)
    assert client.get("/1/datasets").json() == before
    # __all__ reads the whole environment: the events of both datasets
    spec = {
        "calculations": [{"op": "COUNT"}],
        "filters": [
            {"column": "endpoint", "op": "exists"},
            {"column": "k", "op": "exists"},
        ],
        "filter_combination": "OR",
        "time_range": 3600,
    }
    assert single(client, "__all__", spec)["COUNT"] == sent.count() + 2
    spec["breakdowns"] = ["k"]
    got = {r["k"]: r["COUNT"] for r in results(client, "__all__", spec)}
    assert got == {None: sent.count(), "v": 1, "w": 1}


def test_dataset_with_slash_is_readable_after_write(client, sent):
    r = client.post("/1/events/team%2Fapi", json={"a": 1})
    if r.status_code in (400, 404):
        return  # refusing the name on write is consistent too (tracehive: 404, one path segment)
    assert r.status_code == 200, r.text
    wait_flushed(client)
    assert "team/api" in [d["name"] for d in client.get("/1/datasets").json()]
    r = client.get("/1/columns/team%2Fapi")
    assert r.status_code == 200, (r.status_code, r.text)
    r = client.post("/1/queries/team%2Fapi", json={})
    assert r.status_code == 200, (r.status_code, r.text)


def test_empty_field_name_does_not_lose_acknowledged_events(server, client, sent):
    r = client.post(
        "/1/batch/empty-key",
        json=[{"data": {"kept": "first"}}, {"data": {"": 1, "kept": "second"}}],
    )
    assert r.status_code == 200, r.text
    statuses = r.json()
    assert statuses[0] == {"status": 202}
    wait_flushed(client)
    deadletters = server.data_dir / "deadletter"
    assert not deadletters.exists() or not any(deadletters.iterdir()), "records dead-lettered"
    spec = {"calculations": [{"op": "COUNT"}], "breakdowns": ["kept"], "time_range": 600}
    got = {row["kept"]: row["COUNT"] for row in results(client, "empty-key", spec)}
    expected = {"first": 1}
    if statuses[1] == {"status": 202}:  # accepted (the empty key dropped): it must be stored
        expected["second"] = 1
    assert got == expected


def test_columns_have_unique_ids_when_a_field_changes_type(client, sent):
    r = client.post(
        "/1/batch/two-types", json=[{"data": {"status": 200}}, {"data": {"status": "ok"}}]
    )
    assert r.json() == [{"status": 202}, {"status": 202}]
    wait_flushed(client)
    cols = client.get("/1/columns/two-types").json()
    ids = [c["id"] for c in cols]
    assert len(ids) == len(set(ids)), [c for c in cols if c["id"] == "status"]


def test_well_known_field_with_unconvertible_value_is_readable(client, sent):
    r = client.post("/1/events/odd-fields", json={"name": 5, "duration_ms": "slow", "z": 1})
    assert r.status_code == 200
    wait_flushed(client)
    spec = {
        "calculations": [{"op": "COUNT"}],
        "breakdowns": ["name", "duration_ms"],
        "filters": [{"column": "z", "op": "=", "value": 1}],
        "time_range": 600,
    }
    (row,) = results(client, "odd-fields", spec)
    assert row["name"] in (5, "5") and row["duration_ms"] == "slow", row
    cols = client.get("/1/columns/odd-fields").json()
    names = [c["key_name"] for c in cols]
    assert names.count("name") == 1 and names.count("duration_ms") == 1, names
    types = {c["key_name"]: c["type"] for c in cols}
    assert types["name"] == "string" and types["duration_ms"] == "string", types


def _column_outcome(client, dataset, column) -> str:
    """'unknown' when the server says the column does not exist, else 'ok'."""
    qid = client.post(f"/1/queries/{dataset}", json={"breakdowns": [column]}).json()["id"]
    r = client.post(f"/1/query_results/{dataset}", json={"query_id": qid})
    if r.status_code == 400:
        return "unknown" if "unknown column" in r.json()["error"] else r.json()["error"]
    assert r.status_code == 201, r.text
    result = r.json()
    deadline = time.monotonic() + 30
    while not result["complete"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        result = client.get(f"/1/query_results/{dataset}/{result['id']}").json()
    return "unknown" if "unknown column" in result.get("error", "") else "ok"


def test_column_names_do_not_leak_across_environments(server, client, sent):
    other = server.create_key("ingest,query", env="staging")
    with server.client(other) as c:
        assert c.post("/1/events/theirs", json={"q": 1}).status_code == 200
        wait_flushed(c)
        never = _column_outcome(c, "__all__", "never.written.anywhere")
        assert never == "unknown"
        # "latency" exists only in the development environment's HcApi
        assert _column_outcome(c, "__all__", "latency") == never
