"""Store factories for the conformance suite: every adapter runs the same tests.

The ClickHouse adapter (its own issue) adds itself to ``STORES``.
"""

from __future__ import annotations

import pytest

from tracehive.storage.duckdb.backend import DuckDBStore


def _duckdb(tmp_path):
    return DuckDBStore(tmp_path / "store.duckdb")


STORES = {"duckdb": _duckdb}


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path):
    s = STORES[request.param](tmp_path)
    yield s
    s.close()
