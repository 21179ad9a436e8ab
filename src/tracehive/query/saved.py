"""Saved query specs (Honeycomb's ``POST /1/queries``), in SQLite at ``<data_dir>/queries.sqlite``.

Queries are immutable: saving the same spec again (same environment and dataset) returns the
existing id, so clients that re-create their queries on every run (Terraform) do not grow the table.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ALPHABET = string.ascii_letters + string.digits


def new_id(n: int = 11) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


@dataclass(frozen=True, slots=True)
class SavedQuery:
    id: str
    env_id: int
    dataset: str | None  # None: environment-wide (``__all__``)
    spec: dict[str, Any]
    created_at: float


class SavedQueries:
    """Thread-safe: one connection, serialized by a lock (writes are rare and tiny)."""

    def __init__(self, data_dir: Path | str) -> None:
        path = Path(data_dir) / "queries.sqlite"
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS queries (id TEXT PRIMARY KEY, env_id INTEGER NOT NULL,"
                " dataset TEXT, spec_json TEXT NOT NULL, created_at REAL NOT NULL)"
            )
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS queries_by_spec ON queries (env_id, spec_json)"
            )

    def save(self, env_id: int, dataset: str | None, spec: dict[str, Any]) -> str:
        spec_json = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM queries WHERE env_id = ? AND spec_json = ? AND dataset IS ?",
                (env_id, spec_json, dataset),
            ).fetchone()
            if row:
                return str(row[0])
            query_id = new_id()
            self._db.execute(
                "INSERT INTO queries VALUES (?, ?, ?, ?, ?)",
                (query_id, env_id, dataset, spec_json, time.time()),
            )
            return query_id

    def get(self, env_id: int, query_id: str) -> SavedQuery | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, env_id, dataset, spec_json, created_at FROM queries "
                "WHERE id = ? AND env_id = ?",
                (query_id, env_id),
            ).fetchone()
        if row is None:
            return None
        return SavedQuery(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def close(self) -> None:
        with self._lock:
            self._db.close()
