"""Fixtures of the query tests (helpers live in ``query_fixtures``)."""

from __future__ import annotations

import pytest
from query_fixtures import Fixture

from tracehive.storage.duckdb.backend import DuckDBStore


@pytest.fixture
def fx(tmp_path):
    store = DuckDBStore(tmp_path / "store.duckdb")
    yield Fixture(store)
    store.close()
