"""The tenancy catalog: team, environments, datasets and API keys in ``<data_dir>/catalog.sqlite``.

Honeycomb's model (PROTOCOLS.md §7): one team, environments under it, and datasets under each
environment, one per ``service.name`` for OTLP or per URL for the events API, created on first
write and case-insensitive (§7.2). An API key belongs to one environment.

The server and the ``tracehive keys``/``envs`` CLI may use one file at the same time: SQLite in WAL
mode lets readers run beside a writer, ``busy_timeout`` makes writers queue instead of failing, and
every write is a ``BEGIN IMMEDIATE`` transaction (taking the write lock up front, so two processes
creating the same dataset cannot both read "absent" and deadlock on the upgrade). A key revoked
by the CLI stops working in a running server when its cached lookup expires (``cache_ttl`` <= 5 s).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracehive.tenancy.keys import (
    ADMIN,
    ALL_PERMISSIONS,
    INGEST,
    QUERY,
    format_permissions,
    generate_key,
    is_key_id,
    parse_key,
    parse_permissions,
    secret_matches,
)
from tracehive.tenancy.names import (
    InvalidName,
    dataset_slug,
    environment_slug,
    validate_dataset_name,
    validate_environment_name,
)

__all__ = [
    "ADMIN",
    "ALL_PERMISSIONS",
    "CATALOG_FILE",
    "DEFAULT_RETENTION_DAYS",
    "INGEST",
    "QUERY",
    "Catalog",
    "CatalogError",
    "Dataset",
    "Environment",
    "EnvironmentExists",
    "InvalidName",
    "KeyInfo",
    "Team",
    "UnknownEnvironment",
    "UnknownKey",
    "who_am_i",
]

CATALOG_FILE = "catalog.sqlite"
DEFAULT_RETENTION_DAYS = 60
MAX_RETENTION_DAYS = 36500
BOOTSTRAP_ENVIRONMENT = "development"
MAX_CACHE_TTL = 5.0  # revocations must reach a running server within 5 s (the brief's promise)
_MAX_ENV_ID = 65535  # the store keeps env_id as USMALLINT (storage/schema.py)
_MAX_KEY_CACHE = 10_000  # bounds memory when a client hammers us with random well-formed keys
_BUSY_TIMEOUT_MS = 10_000

# Each entry upgrades the schema by one version; never edit an entry once released, append one.
_MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE team (
            id   INTEGER PRIMARY KEY CHECK (id = 1),
            name TEXT NOT NULL,
            slug TEXT NOT NULL
        )""",
        f"""CREATE TABLE environments (
            id             INTEGER PRIMARY KEY CHECK (id BETWEEN 1 AND {_MAX_ENV_ID}),
            name           TEXT NOT NULL,
            slug           TEXT NOT NULL UNIQUE,
            retention_days INTEGER NOT NULL DEFAULT {DEFAULT_RETENTION_DAYS}
                           CHECK (retention_days >= 1),
            created_at     INTEGER NOT NULL
        )""",
        """CREATE TABLE datasets (
            id         INTEGER PRIMARY KEY,
            env_id     INTEGER NOT NULL REFERENCES environments (id),
            slug       TEXT NOT NULL,
            name       TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (env_id, slug)
        )""",
        """CREATE TABLE api_keys (
            id            TEXT PRIMARY KEY,
            env_id        INTEGER NOT NULL REFERENCES environments (id),
            name          TEXT NOT NULL DEFAULT '',
            secret_sha256 TEXT NOT NULL,
            permissions   TEXT NOT NULL,
            created_at    INTEGER NOT NULL,
            revoked_at    INTEGER
        )""",
        "CREATE INDEX api_keys_env ON api_keys (env_id)",
        "INSERT INTO team (id, name, slug) VALUES (1, 'tracehive', 'tracehive')",
    ),
]


class CatalogError(Exception):
    """The catalog cannot do what was asked (see the subclasses)."""


class UnknownEnvironment(CatalogError, LookupError):
    """No environment has that name (or id)."""


class EnvironmentExists(CatalogError):
    """An environment with that name (slug) already exists."""


class UnknownKey(CatalogError, LookupError):
    """No API key has that id."""


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class Environment:
    id: int
    name: str
    slug: str
    retention_days: int
    created_at: int  # epoch seconds


@dataclass(frozen=True, slots=True)
class Dataset:
    id: int
    env_id: int
    name: str  # first casing seen
    slug: str  # lower-cased name: the identity
    created_at: int  # epoch seconds


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What is known of an API key; never its secret."""

    id: str
    env_id: int
    env_name: str
    env_slug: str
    permissions: frozenset[str]
    name: str
    created_at: int = 0  # epoch seconds
    revoked_at: int | None = None

    def allows(self, permission: str) -> bool:
        """Whether the key may do ``permission``; ``admin`` implies every permission."""
        return permission in self.permissions or ADMIN in self.permissions


_KEY_COLUMNS = "k.id, k.env_id, e.name, e.slug, k.permissions, k.name, k.created_at, k.revoked_at"


def _key_info(row: tuple[Any, ...]) -> KeyInfo:
    perms = frozenset(p for p in row[4].split(",") if p in ALL_PERMISSIONS)
    return KeyInfo(row[0], row[1], row[2], row[3], perms, row[5], row[6], row[7])


class Catalog:
    """Team, environments, datasets and keys; thread-safe, and shareable across processes."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        cache_ttl: float,
        clock: Callable[[], float],
    ) -> None:
        # Use ``Catalog.open``; this constructor expects a connection already set up.
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()  # one connection, so one statement at a time
        self._ttl = cache_ttl
        self._clock = clock
        self._key_cache: dict[str, tuple[KeyInfo | None, float]] = {}
        # Datasets are never deleted or renamed, so a cached id never goes stale.
        self._dataset_cache: dict[tuple[int, str], Dataset] = {}

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        cache_ttl: float = MAX_CACHE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> Catalog:
        """Open (creating or migrating as needed) ``<data_dir>/catalog.sqlite``; idempotent.

        ``cache_ttl`` (0..5 s) is how long ``authenticate`` trusts a looked-up key; ``clock`` is
        injectable for tests.
        """
        if not 0 <= cache_ttl <= MAX_CACHE_TTL:
            raise ValueError(f"cache_ttl must be between 0 and {MAX_CACHE_TTL} seconds")
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CATALOG_FILE
        conn = sqlite3.connect(
            path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # autocommit; write transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,  # guarded by the instance lock instead
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL, not NORMAL: the store refers to dataset ids, so a committed dataset row must
            # survive a power cut. Catalog writes are rare; the fsync costs nothing that matters.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            catalog = cls(path, conn, cache_ttl=cache_ttl, clock=clock)
            catalog._migrate()
        except BaseException:
            conn.close()
            raise
        return catalog

    def close(self) -> None:
        """Close the connection; the instance cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # also when COMMIT itself failed
                    self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _migrate(self) -> None:
        with self._write() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = cur.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > len(_MIGRATIONS):
                raise CatalogError(
                    f"{self.path} has schema version {version}, newer than this tracehive "
                    f"understands ({len(_MIGRATIONS)}); upgrade tracehive"
                )
            for statements in _MIGRATIONS[version:]:
                for sql in statements:
                    cur.execute(sql)
            if row is None:
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (len(_MIGRATIONS),))
            elif version < len(_MIGRATIONS):
                cur.execute("UPDATE schema_version SET version = ?", (len(_MIGRATIONS),))

    @property
    def schema_version(self) -> int:
        """The schema version of the file (equals the number of known migrations once open)."""
        return self._read("SELECT version FROM schema_version")[0][0]

    # --- team and environments ----------------------------------------------------------------

    def team(self) -> Team:
        """The single team row (default name and slug ``tracehive``)."""
        name, slug = self._read("SELECT name, slug FROM team WHERE id = 1")[0]
        return Team(name, slug)

    def ensure_bootstrap(self) -> str | None:
        """On a catalog without environments, create ``development`` with an ingest+query key.

        Returns that key string (for the server to print once: it cannot be shown again), or
        None when any environment exists. Safe when several processes race: one creates.
        """
        with self._write() as cur:
            if cur.execute("SELECT 1 FROM environments LIMIT 1").fetchone():
                return None
            env = self._insert_environment(cur, BOOTSTRAP_ENVIRONMENT)
            return self._insert_key(cur, env.id, frozenset({INGEST, QUERY}), "bootstrap")

    def create_environment(self, name: str) -> Environment:
        """Create an environment; raises ``EnvironmentExists`` when its slug is taken."""
        validate_environment_name(name)
        with self._write() as cur:
            return self._insert_environment(cur, name)

    def _insert_environment(self, cur: sqlite3.Cursor, name: str) -> Environment:
        clean, slug = validate_environment_name(name), environment_slug(name)
        if cur.execute("SELECT 1 FROM environments WHERE slug = ?", (slug,)).fetchone():
            raise EnvironmentExists(f"environment {slug!r} already exists")
        env_id = cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM environments").fetchone()[0]
        if env_id > _MAX_ENV_ID:
            raise CatalogError(f"at most {_MAX_ENV_ID} environments")
        created = int(time.time())
        cur.execute(
            "INSERT INTO environments (id, name, slug, retention_days, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (env_id, clean, slug, DEFAULT_RETENTION_DAYS, created),
        )
        return Environment(env_id, clean, slug, DEFAULT_RETENTION_DAYS, created)

    def environments(self) -> list[Environment]:
        """All environments, oldest first."""
        rows = self._read(
            "SELECT id, name, slug, retention_days, created_at FROM environments ORDER BY id"
        )
        return [Environment(*r) for r in rows]

    def environment(self, name: str) -> Environment | None:
        """The environment called ``name`` (matched by slug: ``Prod`` finds ``prod``), or None."""
        try:
            slug = environment_slug(name)
        except InvalidName:
            return None
        rows = self._read(
            "SELECT id, name, slug, retention_days, created_at FROM environments WHERE slug = ?",
            (slug,),
        )
        return Environment(*rows[0]) if rows else None

    def environment_by_id(self, env_id: int) -> Environment | None:
        """The environment with id ``env_id``, or None."""
        rows = self._read(
            "SELECT id, name, slug, retention_days, created_at FROM environments WHERE id = ?",
            (env_id,),
        )
        return Environment(*rows[0]) if rows else None

    def _require_env(self, env: str | Environment) -> Environment:
        if isinstance(env, Environment):
            found, label = self.environment_by_id(env.id), env.name
        else:
            found, label = self.environment(env), env
        if found is None:
            raise UnknownEnvironment(f"no environment named {label!r}")
        return found

    def set_retention(self, env: str | Environment, days: int) -> Environment:
        """Set how many days of data ``env`` keeps (1..36500); returns the updated environment."""
        if isinstance(days, bool) or not isinstance(days, int):
            raise TypeError("days must be an int")
        if not 1 <= days <= MAX_RETENTION_DAYS:
            raise ValueError(f"retention must be between 1 and {MAX_RETENTION_DAYS} days")
        found = self._require_env(env)
        with self._write() as cur:
            cur.execute("UPDATE environments SET retention_days = ? WHERE id = ?", (days, found.id))
        return Environment(found.id, found.name, found.slug, days, found.created_at)

    # --- keys ---------------------------------------------------------------------------------

    def create_key(self, env_name: str, permissions: Iterable[str], name: str = "") -> str:
        """Create a key in an existing environment and return its string (shown once only).

        Raises ``UnknownEnvironment`` when the environment does not exist: creating one is a
        deliberate act (``create_environment``; the CLI ``keys create`` does it explicitly and
        says so), so a typo in ``--env`` cannot silently start a new environment here.
        Raises ``InvalidPermission`` for unknown or no permissions.
        """
        perms = parse_permissions(permissions)
        label = (name or "").strip()
        if len(label) > 255:
            raise InvalidName("key name is longer than 255 characters")
        env = self._require_env(env_name)
        with self._write() as cur:
            return self._insert_key(cur, env.id, perms, label)

    def _insert_key(
        self, cur: sqlite3.Cursor, env_id: int, perms: frozenset[str], name: str
    ) -> str:
        for _ in range(5):  # 60-bit ids: a collision is astronomically rare, but be correct
            key, key_id, secret_hash = generate_key()
            if not cur.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone():
                break
        else:  # pragma: no cover
            raise CatalogError("could not allocate a key id")
        cur.execute(
            "INSERT INTO api_keys (id, env_id, name, secret_sha256, permissions, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, env_id, name, secret_hash, format_permissions(perms), int(time.time())),
        )
        return key

    def list_keys(self, env: str | None = None) -> list[KeyInfo]:
        """Every key (revoked ones included), optionally of one environment; never secrets."""
        sql = f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN environments e ON e.id = k.env_id"
        params: tuple[Any, ...] = ()
        if env is not None:
            sql += " WHERE k.env_id = ?"
            params = (self._require_env(env).id,)
        return [_key_info(r) for r in self._read(sql + " ORDER BY k.env_id, k.rowid", params)]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key, given its id or its full string; False if it was already revoked.

        Raises ``UnknownKey`` for an id no key has. This process forgets the key at once; other
        processes within their ``cache_ttl``.
        """
        parsed = parse_key(key_id)
        kid = parsed[0] if parsed else key_id.strip().lower()
        if not is_key_id(kid):
            raise UnknownKey(f"not a key id: {key_id[:32]!r}")
        with self._write() as cur:
            row = cur.execute("SELECT revoked_at FROM api_keys WHERE id = ?", (kid,)).fetchone()
            if row is None:
                raise UnknownKey(f"no key with id {kid!r}")
            if row[0] is None:
                cur.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (int(time.time()), kid)
                )
        with self._lock:
            for cached in [k for k in self._key_cache if k.startswith(f"thk_{kid}_")]:
                del self._key_cache[cached]
        return row[0] is None

    def authenticate(self, key_string: str) -> KeyInfo | None:
        """The active key for ``key_string`` (an ``X-Honeycomb-Team`` value), or None.

        Results (misses too) are cached for ``cache_ttl`` seconds, so a revocation made by another
        process takes effect within that time.
        """
        if not isinstance(key_string, str):
            return None
        key_string = key_string.strip()
        now = self._clock()
        cached = self._key_cache.get(key_string)  # dict reads are atomic: no lock on the hot path
        if cached is not None and cached[1] > now:
            return cached[0]
        parsed = parse_key(key_string)
        if parsed is None:
            return None  # malformed: no lookup, and nothing to cache
        key_id, secret = parsed
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_KEY_COLUMNS}, k.secret_sha256 FROM api_keys k"
                " JOIN environments e ON e.id = k.env_id WHERE k.id = ?",
                (key_id,),
            ).fetchone()
            info: KeyInfo | None = None
            if row is not None and row[7] is None and secret_matches(secret, row[8]):
                info = _key_info(row[:8])
            if len(self._key_cache) >= _MAX_KEY_CACHE:
                self._key_cache.clear()
            self._key_cache[key_string] = (info, now + self._ttl)
        return info

    # --- datasets -----------------------------------------------------------------------------

    def dataset_ids(self, env_id: int, names: list[str], create: bool) -> dict[str, int]:
        """Ids of datasets by name (case-insensitive), creating missing ones when ``create``.

        The result is keyed by the names exactly as given; without ``create`` an unknown name is
        left out. A created dataset keeps the casing of its first writer. Raises ``InvalidName``
        for a bad name (nothing is created then) and ``UnknownEnvironment`` for a bad env_id.
        """
        result: dict[str, int] = {}
        missing: dict[str, list[str]] = {}  # slug -> names given for it
        for name in names:
            if name in result:
                continue
            slug = dataset_slug(name)
            hit = self._dataset_cache.get((env_id, slug))
            if hit is not None:
                result[name] = hit.id
            else:
                missing.setdefault(slug, []).append(name)
        if not missing:
            return result
        if create:
            now = int(time.time())
            try:
                with self._write() as cur:
                    cur.executemany(
                        "INSERT INTO datasets (env_id, slug, name, created_at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (env_id, slug) DO NOTHING",
                        [
                            (env_id, slug, validate_dataset_name(given[0]), now)
                            for slug, given in missing.items()
                        ],
                    )
            except sqlite3.IntegrityError:  # the foreign key: no such environment
                raise UnknownEnvironment(f"no environment with id {env_id}") from None
        for dataset in self._load_datasets(env_id, list(missing)):
            self._dataset_cache[(env_id, dataset.slug)] = dataset
            for name in missing[dataset.slug]:
                result[name] = dataset.id
        return result

    def _load_datasets(self, env_id: int, slugs: list[str]) -> list[Dataset]:
        found: list[Dataset] = []
        for start in range(0, len(slugs), 500):  # stay under SQLite's bound-parameter limit
            chunk = slugs[start : start + 500]
            rows = self._read(
                "SELECT id, env_id, name, slug, created_at FROM datasets"
                f" WHERE env_id = ? AND slug IN ({','.join('?' * len(chunk))})",
                (env_id, *chunk),
            )
            found.extend(Dataset(*r) for r in rows)
        return found

    def datasets(self, env_id: int) -> list[Dataset]:
        """Every dataset of an environment, by name."""
        rows = self._read(
            "SELECT id, env_id, name, slug, created_at FROM datasets WHERE env_id = ?"
            " ORDER BY slug",
            (env_id,),
        )
        return [Dataset(*r) for r in rows]

    def dataset_by_name(self, env_id: int, name: str) -> Dataset | None:
        """The dataset called ``name`` in any casing, or None (also for an invalid name)."""
        try:
            slug = dataset_slug(name)
        except InvalidName:
            return None
        hit = self._dataset_cache.get((env_id, slug))
        if hit is not None:
            return hit
        found = self._load_datasets(env_id, [slug])
        if not found:
            return None
        self._dataset_cache[(env_id, slug)] = found[0]
        return found[0]


# --- /1/auth -----------------------------------------------------------------------------------

_ACCESS_BY_PERMISSION: dict[str, tuple[str, ...]] = {
    INGEST: ("events", "markers", "createDatasets"),
    QUERY: ("queries", "columns", "boards"),
}
_ACCESS_FIELDS = (
    "events",
    "markers",
    "triggers",
    "boards",
    "queries",
    "columns",
    "createDatasets",
    "slos",
    "recipients",
    "privateBoards",
)


def who_am_i(key: KeyInfo, team: Team) -> dict[str, Any]:
    """The ``GET /1/auth`` response body for ``key`` (PROTOCOLS.md §7.1).

    ``type`` is ``ingest`` for a key that can only ingest, else ``configuration``.
    ``api_key_access`` carries both ``createDatasets`` (OpenAPI) and ``create_datasets`` (what
    the Terraform client decodes), as §7.1 advises.
    """
    if ADMIN in key.permissions:
        granted = set(_ACCESS_FIELDS)
    else:
        granted = {f for p in key.permissions for f in _ACCESS_BY_PERMISSION.get(p, ())}
    access: dict[str, bool] = {f: f in granted for f in _ACCESS_FIELDS}
    access["create_datasets"] = access["createDatasets"]
    only_ingest = INGEST in key.permissions and not key.permissions & {QUERY, ADMIN}
    return {
        "id": key.id,
        "type": "ingest" if only_ingest else "configuration",
        "api_key_access": access,
        "environment": {"name": key.env_name, "slug": key.env_slug},
        "team": {"name": team.name, "slug": team.slug},
    }
