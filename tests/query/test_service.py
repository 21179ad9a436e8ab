"""QueryService and SavedQueries over a real DuckDB store."""

from __future__ import annotations

import time

import pytest
from query_fixtures import NS, T0_S, Fixture

from tracehive.query.saved import SavedQueries
from tracehive.query.service import QueryNotFound, QueryService
from tracehive.query.spec import SpecError, parse_spec
from tracehive.storage.api import Scope

SPEC = {
    "calculations": [{"op": "COUNT"}, {"op": "P50", "column": "duration_ms"}],
    "breakdowns": ["service.name"],
    "start_time": T0_S,
    "end_time": T0_S + 600,
    "granularity": 60,
}


class Clock:
    def __init__(self) -> None:
        self.now = float(T0_S + 600)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def svc(fx: Fixture, tmp_path):
    fx.add(
        [
            {
                "ts_ns": (T0_S + i) * NS,
                "dur_ns": (i + 1) * 1000,
                "service": "ab"[i % 2],
                "attributes": {},
            }
            for i in range(200)
        ]
    )
    service = QueryService(fx.store, SavedQueries(tmp_path), clock=Clock(), max_results=3)
    yield service
    service.close()


def _poll(svc: QueryService, env_id: int, rid: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        body = svc.get_result(env_id, rid)
        assert body is not None
        if body["complete"]:
            return body
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_create_and_get_query_echo_the_spec_with_an_id(svc):
    created = svc.create_query(1, "ds", SPEC)
    assert created == {**parse_spec(SPEC).to_json(), "id": created["id"]}
    assert svc.get_query(1, created["id"]) == created
    assert svc.get_query(2, created["id"]) is None  # another environment's
    assert svc.create_query(1, "ds", SPEC)["id"] == created["id"]  # same spec: same id
    assert svc.create_query(1, None, SPEC)["id"] != created["id"]
    with pytest.raises(SpecError):
        svc.create_query(1, "ds", {"calculations": [{"op": "NOPE"}]})


def test_saved_queries_persist(tmp_path):
    saved = SavedQueries(tmp_path)
    qid = saved.save(1, None, {"calculations": [{"op": "COUNT"}]})
    saved.close()
    again = SavedQueries(tmp_path)
    got = again.get(1, qid)
    assert got is not None and got.dataset is None and got.spec["calculations"][0]["op"] == "COUNT"
    again.close()


def test_result_body_in_honeycomb_shape(svc):
    qid = svc.create_query(1, None, SPEC)["id"]
    body = svc.create_result(1, Scope(1, None), qid, {})
    assert body["query"]["id"] == qid and set(body["links"]) == {"query_url", "graph_image_url"}
    body = _poll(svc, 1, body["id"])
    results = {r["data"]["service.name"]: r["data"] for r in body["data"]["results"]}
    assert results["a"]["COUNT"] == 100 and results["b"]["COUNT"] == 100
    series = body["data"]["series"]
    assert series[0]["time"] == "2023-11-14T22:13:00Z"
    assert sum(s["data"]["COUNT"] for s in series) == 200
    assert set(series[0]["data"]) == {"service.name", "COUNT", "P50(duration_ms)"}
    assert svc.get_result(2, body["id"]) is None


def test_disable_series_and_limit(svc):
    qid = svc.create_query(1, None, {**SPEC, "calculations": [{"op": "COUNT"}]})["id"]
    body = _poll(
        svc,
        1,
        svc.create_result(1, Scope(1, None), qid, {"disable_series": True, "limit": 1})["id"],
    )
    assert body["data"]["series"] == [] and len(body["data"]["results"]) == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"disable_series": "yes"}, "disable_series"),
        ({"disable_total_by_aggregate": False}, "disable_total_by_aggregate"),
        ({"disable_other_by_aggregate": False}, "disable_other_by_aggregate"),
        ({"disable_series": True, "limit": 10_001}, "limit"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_option_errors(svc, options, field):
    qid = svc.create_query(1, None, SPEC)["id"]
    with pytest.raises(SpecError) as info:
        svc.create_result(1, Scope(1, None), qid, options)
    assert info.value.field == field


def test_unknown_query_and_unknown_column(svc):
    with pytest.raises(QueryNotFound):
        svc.create_result(1, Scope(1, None), "nope", {})
    qid = svc.create_query(1, None, {"breakdowns": ["no.such.column"]})["id"]
    with pytest.raises(SpecError) as info:  # compile errors surface within the first wait
        svc.create_result(1, Scope(1, None), qid, {})
    assert info.value.field == "breakdowns[0]"


def test_results_are_bounded_and_expire(svc):
    qid = svc.create_query(1, None, SPEC)["id"]
    ids = [
        _poll(svc, 1, svc.create_result(1, Scope(1, None), qid, {})["id"])["id"] for _ in range(4)
    ]
    assert svc.get_result(1, ids[0]) is None  # max_results=3: the oldest went
    assert svc.get_result(1, ids[3]) is not None
    svc._clock.now += 86_401
    assert svc.get_result(1, ids[3]) is None


def test_many_concurrent_results_all_complete(svc):
    qid = svc.create_query(1, None, SPEC)["id"]
    svc.max_results = 100
    rids = [svc.create_result(1, Scope(1, None), qid, {})["id"] for _ in range(12)]
    counts = {
        sum(r["data"]["COUNT"] for r in _poll(svc, 1, rid)["data"]["results"]) for rid in rids
    }
    assert counts == {200}


def test_run_and_run_to_result(svc):
    data = svc.run(Scope(1, None), parse_spec(SPEC))
    assert sorted(r["COUNT"] for r in data.results) == [100, 100]
    qid = svc.create_query(1, None, SPEC)["id"]
    body = svc.run_to_result(1, Scope(1, None), qid, {})
    assert body["complete"] and len(body["data"]["results"]) == 2
