"""Fixtures shared by the API tests: an ingest+query key of the test server and a client with it
(a module may define its own ``key`` or ``client`` instead)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def key(server):
    return server.create_key("ingest,query")


@pytest.fixture(scope="module")
def client(server, key):
    with server.client(key) as c:
        yield c
