"""The query service behind the Honeycomb query API, the CLI and the UI (one way in for all).

``create_query`` validates and saves a spec; ``create_result`` starts it on a small worker pool
and answers Honeycomb's body at once (``complete`` only when it finished within ``wait_s``);
``get_result`` is polled until complete. Results live in memory: the newest ``max_results``,
for ``ttl_s``. Scope (dataset name -> ids) is resolved by the caller.

Options of ``POST /1/query_results`` (PROTOCOLS.md §7.4): ``disable_series``; ``limit`` (only
with ``disable_series``, up to 10 000; otherwise ignored, as on Honeycomb);
``disable_total_by_aggregate`` / ``disable_other_by_aggregate`` may be true (the default here)
but not false: total and "other" rows are not implemented, and are refused rather than omitted.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any, Protocol

from tracehive.query.saved import SavedQueries, new_id
from tracehive.query.spec import MAX_LIMIT, QuerySpec, SpecError, parse_spec
from tracehive.storage.api import QueryData, Scope

SERIES_LIMIT = 1000
OPTIONS = frozenset(
    {"disable_series", "disable_total_by_aggregate", "disable_other_by_aggregate", "limit"}
)


class QueryStore(Protocol):
    def run_query(
        self, scope: Scope, spec: QuerySpec, now_s: int, include_series: bool = True
    ) -> QueryData: ...


class QueryNotFound(LookupError):
    pass


@dataclass
class _Result:
    id: str
    env_id: int
    query_id: str
    spec_json: dict[str, Any]
    include_series: bool
    future: Future[QueryData]
    created: float


def rfc3339(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def result_data(data: QueryData) -> dict[str, Any]:
    """QueryData in Honeycomb's ``data`` shape."""
    return {
        "series": [
            {"time": rfc3339(row["time"]), "data": {k: v for k, v in row.items() if k != "time"}}
            for row in data.series
        ],
        "results": [{"data": row} for row in data.results],
    }


class QueryService:
    def __init__(
        self,
        store: QueryStore,
        saved: SavedQueries,
        *,
        ui_base_url: str = "",
        workers: int = 2,
        wait_s: float = 0.1,
        max_results: int = 1000,
        ttl_s: float = 86_400,
        clock: Any = time.time,
    ) -> None:
        self.store = store
        self.saved = saved
        self.ui_base_url = ui_base_url.rstrip("/")
        self.wait_s = wait_s
        self.max_results = max_results
        self.ttl_s = ttl_s
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tracehive-query")
        self._results: OrderedDict[str, _Result] = OrderedDict()
        self._lock = threading.Lock()

    # -- queries --------------------------------------------------------------------------
    def create_query(self, key_env_id: int, dataset: str | None, body: Any) -> dict[str, Any]:
        spec = parse_spec(body)
        spec_json = spec.to_json()
        return {**spec_json, "id": self.saved.save(key_env_id, dataset, spec_json)}

    def get_query(self, env_id: int, query_id: str) -> dict[str, Any] | None:
        saved = self.saved.get(env_id, query_id)
        return None if saved is None else {**saved.spec, "id": saved.id}

    # -- results --------------------------------------------------------------------------
    def create_result(
        self, env_id: int, scope: Scope, query_id: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        """Start the query; raises ``QueryNotFound`` (404) or ``SpecError`` (400)."""
        spec, spec_json, include_series = self._prepare(env_id, query_id, options)
        now_s = self._now_s()
        future = self._pool.submit(self.store.run_query, scope, spec, now_s, include_series)
        result = _Result(
            new_id(), env_id, query_id, spec_json, include_series, future, self._clock()
        )
        wait_futures([future], timeout=self.wait_s)
        if future.done() and isinstance(future.exception(), SpecError):
            raise future.exception()  # type: ignore[misc]  # e.g. an unknown column: a 400
        self._remember(result)
        return self._body(result, with_data=future.done())

    def get_result(self, env_id: int, result_id: str) -> dict[str, Any] | None:
        with self._lock:
            result = self._results.get(result_id)
            if result is None or result.env_id != env_id or self._expired(result):
                return None
            self._results.move_to_end(result_id)
        return self._body(result, with_data=True)

    def run_to_result(
        self, env_id: int, scope: Scope, query_id: str, options: dict[str, Any]
    ) -> dict[str, Any]:
        """Run in the calling thread (the CLI): the complete result body."""
        spec, spec_json, include_series = self._prepare(env_id, query_id, options)
        future: Future[QueryData] = Future()
        future.set_result(self.run(scope, spec, include_series))
        result = _Result(
            new_id(), env_id, query_id, spec_json, include_series, future, self._clock()
        )
        self._remember(result)
        return self._body(result, with_data=True)

    def run(
        self, scope: Scope, spec: QuerySpec, include_series: bool = True, now_s: int | None = None
    ) -> QueryData:
        now = self._now_s() if now_s is None else now_s
        return self.store.run_query(scope, spec, now, include_series)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.saved.close()

    # -- internals ------------------------------------------------------------------------
    def _now_s(self) -> int:
        """Now, rounded up: a relative window ends after events received this very second."""
        return math.ceil(self._clock())

    def _prepare(
        self, env_id: int, query_id: str, options: dict[str, Any]
    ) -> tuple[QuerySpec, dict[str, Any], bool]:
        if not isinstance(options, dict):
            raise SpecError("options must be an object")
        for key in options:
            if key not in OPTIONS:
                raise SpecError("unknown option", str(key)[:100])
        for key in OPTIONS - {"limit"}:
            if key in options and not isinstance(options[key], bool):
                raise SpecError("must be true or false", key)
        for key in ("disable_total_by_aggregate", "disable_other_by_aggregate"):
            if options.get(key) is False:
                raise SpecError("false is not supported (no total or other rows)", key)
        saved = self.saved.get(env_id, query_id)
        if saved is None:
            raise QueryNotFound(query_id)
        spec = parse_spec(saved.spec)
        include_series = not options.get("disable_series", False)
        limit = spec.limit or SERIES_LIMIT
        if not include_series and options.get("limit") is not None:
            value = options["limit"]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
                raise SpecError(f"must be an integer from 1 to {MAX_LIMIT}", "limit")
            limit = value
        if include_series:
            limit = min(limit, SERIES_LIMIT)
        spec = dataclasses.replace(spec, limit=limit)
        return spec, {**saved.spec, "id": saved.id}, include_series

    def _remember(self, result: _Result) -> None:
        with self._lock:
            self._results[result.id] = result
            while self._results:
                oldest = next(iter(self._results.values()))
                if len(self._results) <= self.max_results and not self._expired(oldest):
                    break
                self._results.popitem(last=False)

    def _expired(self, result: _Result) -> bool:
        return self._clock() - result.created > self.ttl_s

    def _body(self, result: _Result, with_data: bool) -> dict[str, Any]:
        base = self.ui_base_url
        body: dict[str, Any] = {
            "query": result.spec_json,
            "id": result.id,
            "complete": result.future.done(),
            "links": {
                "query_url": f"{base}/ui/query/{result.query_id}?result={result.id}",
                "graph_image_url": f"{base}/ui/query/{result.query_id}/result/{result.id}/snapshot",
            },
        }
        if with_data and result.future.done():
            error = result.future.exception()
            if error is not None:
                body["error"] = str(error) or type(error).__name__
            else:
                body["data"] = result_data(result.future.result())
        return body
