"""Every setting of tracehive, with its environment variable and default.

One place, one docstring each (docs/CONFIGURATION.md is generated from this table and a test
fails when they disagree). Command-line flags override environment variables, which override
the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True, slots=True)
class Setting:
    env: str
    default: str
    help: str


SETTINGS: dict[str, Setting] = {
    "data_dir": Setting("TRACEHIVE_DATA", "./data", "Data directory: catalog, WAL and the store."),
    "host": Setting("TRACEHIVE_HOST", "127.0.0.1", "Address the HTTP and gRPC servers bind to."),
    "http_port": Setting(
        "TRACEHIVE_HTTP_PORT",
        "4318",
        "HTTP port (0 picks a free one): OTLP/HTTP, Honeycomb API, trace API.",
    ),
    "grpc_port": Setting(
        "TRACEHIVE_GRPC_PORT", "4317", "OTLP/gRPC port; 0 picks a free port, -1 disables gRPC."
    ),
    "max_body_bytes": Setting(
        "TRACEHIVE_MAX_BODY_BYTES",
        str(16 * 1024 * 1024),
        "Largest request body accepted on the wire (compressed); larger gets 413.",
    ),
    "max_decoded_bytes": Setting(
        "TRACEHIVE_MAX_DECODED_BYTES",
        str(64 * 1024 * 1024),
        "Largest body after decompression (OTLP's default client cap); larger gets 413.",
    ),
    "max_pending_rows": Setting(
        "TRACEHIVE_MAX_PENDING_ROWS",
        "400000",
        "Rows accepted but not yet in the store before ingest answers 503 + Retry-After.",
    ),
    "flush_rows": Setting(
        "TRACEHIVE_FLUSH_ROWS",
        "122880",
        "The writer flushes whole multiples of this many rows (DuckDB's row group)...",
    ),
    "flush_interval_ms": Setting(
        "TRACEHIVE_FLUSH_INTERVAL_MS", "500", "...or when the oldest pending row is this old."
    ),
    "retention_check_s": Setting(
        "TRACEHIVE_RETENTION_CHECK_S", "3600", "How often retention deletes expired rows."
    ),
    "wal_segment_bytes": Setting(
        "TRACEHIVE_WAL_SEGMENT_BYTES",
        str(64 * 1024 * 1024),
        "WAL segment size; segments are deleted once the store holds their records.",
    ),
    "duckdb_memory_limit": Setting(
        "TRACEHIVE_DUCKDB_MEMORY_LIMIT", "512MB", "DuckDB memory_limit for the embedded store."
    ),
    "duckdb_threads": Setting("TRACEHIVE_DUCKDB_THREADS", "2", "DuckDB worker threads."),
}


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = field(default_factory=lambda: Path(_env("TRACEHIVE_DATA", "./data")))
    host: str = "127.0.0.1"
    http_port: int = 4318
    grpc_port: int = 4317
    max_body_bytes: int = 16 * 1024 * 1024
    max_decoded_bytes: int = 64 * 1024 * 1024
    max_pending_rows: int = 400_000
    flush_rows: int = 122_880
    flush_interval_ms: int = 500
    retention_check_s: int = 3600
    wal_segment_bytes: int = 64 * 1024 * 1024
    duckdb_memory_limit: str = "512MB"
    duckdb_threads: int = 2

    @classmethod
    def from_env(cls, **overrides: object) -> Config:
        """Defaults <- environment variables <- ``overrides`` (flags; None means "not given")."""
        values: dict[str, object] = {}
        for f in fields(cls):
            setting = SETTINGS[f.name]
            raw = overrides.get(f.name)
            if raw is None:
                raw = _env(setting.env, setting.default)
            values[f.name] = _convert(f.name, f.type, raw)
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, type_: object, raw: object) -> object:
    if type_ in ("Path", Path):
        return Path(str(raw))
    if type_ in ("int", int):
        try:
            return int(str(raw))
        except ValueError:
            raise ValueError(f"{SETTINGS[name].env} must be an integer, got {raw!r}") from None
    return str(raw)


def configuration_markdown() -> str:
    """The table in docs/CONFIGURATION.md."""
    lines = [
        "| setting | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, s in SETTINGS.items():
        lines.append(f"| `{name}` | `{s.env}` | `{s.default}` | {s.help} |")
    return "\n".join(lines) + "\n"
