from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from server_harness import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server for the module's tests, on free loopback ports."""
    proc = ServerProcess(tmp_path_factory.mktemp("data")).start()
    yield proc
    code = proc.stop()
    assert code == 0, "".join(proc.output[-50:])
