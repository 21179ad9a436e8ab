"""Test helpers: a real DuckDB store plus the rows written to it, so that tests compute the
expected answers independently (imported by name: a module called ``conftest`` is ambiguous
when the whole suite runs)."""

from __future__ import annotations

import itertools
from typing import Any

from tracehive.model.batch import EventBatch
from tracehive.storage.api import Scope
from tracehive.storage.arrow import to_arrow
from tracehive.storage.duckdb.backend import DuckDBStore

T0_S = 1_700_000_000
NS = 1_000_000_000


class Fixture:
    """A store plus the rows written to it (``rows`` keep the written values for expectations)."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.rows: list[dict[str, Any]] = []
        self._wal = itertools.count(1)

    def add(self, rows: list[dict[str, Any]], env_id: int = 1, dataset_id: int = 1) -> None:
        batch = EventBatch()
        for row in rows:
            fixed = {k: v for k, v in row.items() if k != "attributes"}
            fixed.setdefault("dataset", "ds")
            fixed.setdefault("signal", "span")
            batch.append(attributes=row.get("attributes"), **fixed)
            self.rows.append({**row, "env_id": env_id, "dataset_id": dataset_id})
        ids = [row.get("dataset_id", dataset_id) for row in rows]
        self.store.write(to_arrow(batch, env_id, ids), [], next(self._wal))

    def run(
        self,
        spec: dict[str, Any],
        *,
        scope: Scope | None = None,
        now_s: int | None = None,
        include_series: bool = True,
        limit: int | None = None,
    ):
        from tracehive.query.spec import parse_spec
        from tracehive.storage.duckdb.query import run_query

        scope = scope or Scope(1, None)
        return run_query(
            self.store.cursor(),
            scope,
            parse_spec(spec),
            self.store.resolver(scope),
            now_s if now_s is not None else T0_S + 3600,
            include_series,
            limit,
        )
