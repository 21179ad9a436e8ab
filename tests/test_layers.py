"""Import contracts that keep the layers honest (what import-linter would check):
wire formats stay in ingest/, SQL drivers stay in storage/, decoders stay pure."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "tracehive"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def modules(under: str):
    return [p for p in (SRC / under).rglob("*.py")]


def test_only_storage_imports_database_drivers():
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("storage/"):
            continue
        for name in imports_of(path):
            assert name.split(".")[0] not in ("duckdb", "clickhouse_connect", "sqlglot"), (
                f"{rel} imports {name}"
            )


def test_ingest_is_pure():
    forbidden = (
        "starlette",
        "uvicorn",
        "grpc",
        "tracehive.storage",
        "tracehive.pipeline",
        "tracehive.api",
        "tracehive.query",
        "tracehive.services",
    )
    for path in modules("ingest"):
        for name in imports_of(path):
            assert not name.startswith(forbidden), f"{path.relative_to(SRC)} imports {name}"


def test_model_imports_nothing_of_tracehive_but_model():
    for path in modules("model"):
        for name in imports_of(path):
            if name.startswith("tracehive"):
                assert name.startswith("tracehive.model"), f"{path.name} imports {name}"


def test_wire_protobufs_stay_in_ingest_and_grpc_surface():
    allowed = ("ingest/", "api/grpc_otlp.py", "api/otlp.py", "demo/")
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(allowed):
            continue
        for name in imports_of(path):
            assert not name.startswith("opentelemetry.proto"), f"{rel} imports {name}"
