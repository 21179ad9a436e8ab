"""Docs that must stay true: configuration table, README contracts, architecture map."""

from __future__ import annotations

import re
from pathlib import Path

from tracehive.settings import SETTINGS, Config, configuration_markdown

ROOT = Path(__file__).parent.parent


def test_configuration_doc_lists_every_setting():
    doc = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    assert configuration_markdown() in doc, (
        "regenerate the table from settings.configuration_markdown()"
    )
    assert set(SETTINGS) == {f for f in Config.__dataclass_fields__}


def test_env_variables_override_defaults(monkeypatch):
    monkeypatch.setenv("TRACEHIVE_HTTP_PORT", "5999")
    monkeypatch.setenv("TRACEHIVE_MAX_PENDING_ROWS", "123")
    cfg = Config.from_env(http_port=None, grpc_port=7000)
    assert cfg.http_port == 5999 and cfg.max_pending_rows == 123 and cfg.grpc_port == 7000


def test_readme_quick_start_is_two_commands():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [ln.split("#")[0].strip() for ln in block.strip().splitlines()]
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text()


def test_architecture_map_names_existing_modules():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    src = ROOT / "src" / "tracehive"
    for ref in set(re.findall(r"`([a-z_]+/[a-z_/]*[a-z_]+\.(?:py|c))`", doc)):
        assert (src / ref).exists(), f"ARCHITECTURE.md names {ref}, which does not exist"
