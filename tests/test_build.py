"""The C decoder must be built where the project is installed by dev.py (CI included): a silent
fallback to the pure-Python decoder would cost ~10x ingest throughput."""

from __future__ import annotations

import os

import pytest

from tracehive.ingest import otlp


@pytest.mark.skipif(not os.environ.get("CI"), reason="only enforced in CI")
def test_c_decoder_is_active_in_ci():
    assert otlp.ACCELERATED
