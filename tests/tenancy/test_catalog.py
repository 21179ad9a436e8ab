"""tenancy.catalog: environments, datasets and keys in a real SQLite file."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracehive.tenancy.catalog import (
    ADMIN,
    CATALOG_FILE,
    INGEST,
    QUERY,
    Catalog,
    CatalogError,
    EnvironmentExists,
    InvalidName,
    KeyInfo,
    Team,
    UnknownEnvironment,
    UnknownKey,
    who_am_i,
)
from tracehive.tenancy.keys import InvalidPermission, parse_key

KEY_RE = re.compile(r"thk_[a-z2-7]{12}_[A-Za-z0-9_-]{32,}")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog.open(tmp_path) as c:
        yield c


# --- opening ------------------------------------------------------------------------------------


def test_open_is_idempotent_and_uses_wal(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "nested" / "dir") as c:
        c.create_environment("prod")
        assert c.schema_version == 1
    with Catalog.open(tmp_path / "nested" / "dir") as c:
        assert [e.name for e in c.environments()] == ["prod"]
        assert c.schema_version == 1
    conn = sqlite3.connect(tmp_path / "nested" / "dir" / CATALOG_FILE)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    finally:
        conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Catalog.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / CATALOG_FILE)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(CatalogError, match="newer"):
        Catalog.open(tmp_path)


def test_cache_ttl_is_at_most_five_seconds(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Catalog.open(tmp_path, cache_ttl=6)


def test_team_default(catalog: Catalog) -> None:
    assert catalog.team() == Team("tracehive", "tracehive")


# --- environments -------------------------------------------------------------------------------


def test_bootstrap_once(tmp_path: Path) -> None:
    with Catalog.open(tmp_path) as c:
        key = c.ensure_bootstrap()
        assert key is not None and KEY_RE.fullmatch(key)
        assert c.ensure_bootstrap() is None
        info = c.authenticate(key)
        assert info is not None
        assert info.permissions == {INGEST, QUERY}
        assert (info.env_name, info.env_slug) == ("development", "development")
    with Catalog.open(tmp_path) as c:
        assert c.ensure_bootstrap() is None


def test_no_bootstrap_when_an_environment_exists(catalog: Catalog) -> None:
    catalog.create_environment("prod")
    assert catalog.ensure_bootstrap() is None


def test_bootstrap_races_create_one_environment(tmp_path: Path) -> None:
    catalogs = [Catalog.open(tmp_path) for _ in range(4)]
    keys: list[str | None] = []
    threads = [
        threading.Thread(target=lambda c=c: keys.append(c.ensure_bootstrap())) for c in catalogs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(k is not None for k in keys) == 1
    assert len(catalogs[0].environments()) == 1
    for c in catalogs:
        c.close()


def test_create_environment(catalog: Catalog) -> None:
    env = catalog.create_environment("  My Prod  ")
    assert (env.id, env.name, env.slug, env.retention_days) == (1, "My Prod", "my-prod", 60)
    assert env.created_at > 0
    assert catalog.create_environment("staging").id == 2
    assert catalog.environment("MY PROD") == env
    assert catalog.environment("my-prod") == env
    assert catalog.environment("nope") is None
    assert catalog.environment_by_id(1) == env
    with pytest.raises(EnvironmentExists):
        catalog.create_environment("my prod")


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "tab\there", "\x7f", "!!!", 5])
def test_bad_environment_names(catalog: Catalog, name: object) -> None:
    with pytest.raises(InvalidName):
        catalog.create_environment(name)  # type: ignore[arg-type]
    assert isinstance(InvalidName("x"), ValueError)


def test_set_retention(catalog: Catalog) -> None:
    env = catalog.create_environment("prod")
    assert catalog.set_retention("Prod", 7).retention_days == 7
    assert catalog.environment("prod").retention_days == 7  # type: ignore[union-attr]
    assert catalog.set_retention(env, 30).retention_days == 30
    for days in (0, -1, 36501):
        with pytest.raises(ValueError):
            catalog.set_retention("prod", days)
    with pytest.raises(UnknownEnvironment):
        catalog.set_retention("missing", 7)


# --- keys ---------------------------------------------------------------------------------------


def test_create_and_authenticate(catalog: Catalog) -> None:
    catalog.create_environment("prod")
    key = catalog.create_key("Prod", {"ingest"}, name="ci")
    assert KEY_RE.fullmatch(key)
    info = catalog.authenticate(key)
    assert info is not None
    assert (info.env_id, info.env_name, info.env_slug, info.name) == (1, "prod", "prod", "ci")
    assert info.permissions == frozenset({INGEST})
    assert info.allows(INGEST) and not info.allows(QUERY)
    assert catalog.authenticate(f"  {key} ") == info  # header whitespace


def test_wrong_secret_malformed_and_legacy_keys_fail(catalog: Catalog) -> None:
    catalog.create_environment("prod")
    key = catalog.create_key("prod", {"ingest"})
    key_id, secret = parse_key(key)  # type: ignore[misc]
    forged = f"thk_{key_id}_{'A' * len(secret)}"
    for attempt in (forged, "", "thk_", key[:-1] + "!", "hcaik_01hxyz", key.upper(), "x" * 10_000):
        assert catalog.authenticate(attempt) is None
    assert catalog.authenticate(None) is None  # type: ignore[arg-type]


def test_create_key_errors(catalog: Catalog) -> None:
    with pytest.raises(UnknownEnvironment):
        catalog.create_key("missing", {INGEST})
    catalog.create_environment("prod")
    for perms in (set(), {"write"}, {"ingest", "root"}):
        with pytest.raises(InvalidPermission):
            catalog.create_key("prod", perms)
    with pytest.raises(InvalidName):
        catalog.create_key("prod", {INGEST}, name="n" * 256)


def test_list_keys_never_has_secrets(catalog: Catalog) -> None:
    catalog.create_environment("prod")
    catalog.create_environment("dev")
    k1 = catalog.create_key("prod", {"query", "ingest"}, "one")
    k2 = catalog.create_key("dev", "admin", "two")  # type: ignore[arg-type]
    keys = catalog.list_keys()
    assert [k.id for k in keys] == [parse_key(k1)[0], parse_key(k2)[0]]  # type: ignore[index]
    assert keys[0].permissions == {INGEST, QUERY}
    assert keys[0].revoked_at is None and keys[0].created_at > 0
    assert [k.name for k in catalog.list_keys("DEV")] == ["two"]
    for k in keys:
        assert all(parse_key(k1)[1] not in str(v) for v in vars_of(k))  # type: ignore[index]
    with pytest.raises(UnknownEnvironment):
        catalog.list_keys("missing")


def vars_of(info: KeyInfo) -> list[object]:
    return [getattr(info, f) for f in info.__slots__]  # type: ignore[attr-defined]


def test_revoke(catalog: Catalog) -> None:
    catalog.create_environment("prod")
    a = catalog.create_key("prod", {INGEST})
    b = catalog.create_key("prod", {INGEST})
    assert catalog.authenticate(a) is not None  # now cached
    assert catalog.revoke_key(parse_key(a)[0]) is True  # type: ignore[index]
    assert catalog.authenticate(a) is None  # same process: at once
    assert catalog.revoke_key(a) is False  # already revoked; a full key string works too
    assert catalog.authenticate(b) is not None
    assert catalog.revoke_key(b) is True
    assert catalog.authenticate(b) is None
    assert all(k.revoked_at is not None for k in catalog.list_keys())
    for unknown in ("aaaaaaaaaaaa", "nonsense", ""):
        with pytest.raises(UnknownKey):
            catalog.revoke_key(unknown)


def test_revocation_reaches_other_process_within_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    server = Catalog.open(tmp_path, clock=clock)  # the default ttl: 5 s
    cli = Catalog.open(tmp_path)
    try:
        cli.create_environment("prod")
        key = cli.create_key("prod", {INGEST})
        assert server.authenticate(key) is not None
        cli.revoke_key(key)
        clock.now += 4.9
        assert server.authenticate(key) is not None  # still cached: proves the cache works
        clock.now += 0.2
        assert server.authenticate(key) is None  # 5.1 s after the lookup: gone
    finally:
        server.close()
        cli.close()


def test_revocation_with_real_clock(tmp_path: Path) -> None:
    server = Catalog.open(tmp_path, cache_ttl=0.2)
    cli = Catalog.open(tmp_path)
    try:
        cli.create_environment("prod")
        key = cli.create_key("prod", {INGEST})
        assert server.authenticate(key) is not None
        cli.revoke_key(key)
        deadline = time.monotonic() + 5
        while server.authenticate(key) is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        server.close()
        cli.close()


def test_expired_entry_is_looked_up_again(tmp_path: Path) -> None:
    clock = FakeClock()
    with Catalog.open(tmp_path, clock=clock) as c:
        c.create_environment("prod")
        key = c.create_key("prod", {INGEST})
        assert c.authenticate(key) is not None
        clock.now += 10
        assert c.authenticate(key) is not None  # re-read after expiry, still valid


def test_secrets_never_reach_disk(tmp_path: Path) -> None:
    c = Catalog.open(tmp_path)
    c.create_environment("prod")
    keys = [c.create_key("prod", {INGEST}) for _ in range(5)]
    keys.append(c.ensure_bootstrap() or c.create_key("prod", {QUERY}))
    for k in keys:
        assert c.authenticate(k) is not None

    def files() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())

    blob = files()  # while open: the WAL file holds the recent writes
    for k in keys:
        key_id, secret = parse_key(k)  # type: ignore[misc]
        assert key_id.encode() in blob  # sanity: we are looking at the right bytes
        assert secret.encode() not in blob
        assert k.encode() not in blob
    c.close()
    blob = files()
    for k in keys:
        assert parse_key(k)[1].encode() not in blob  # type: ignore[index]


# --- datasets -----------------------------------------------------------------------------------


def test_datasets_are_case_insensitive(catalog: Catalog) -> None:
    env = catalog.create_environment("prod").id
    ids = catalog.dataset_ids(env, ["Checkout", "checkout", " CHECKOUT ", "cart"], create=True)
    assert ids["Checkout"] == ids["checkout"] == ids[" CHECKOUT "] != ids["cart"]
    ds = catalog.dataset_by_name(env, "CHECKOUT")
    assert ds is not None and (ds.name, ds.slug) == ("Checkout", "checkout")
    assert catalog.dataset_ids(env, ["CHECKOUT"], create=True) == {"CHECKOUT": ds.id}
    assert [d.name for d in catalog.datasets(env)] == ["cart", "Checkout"]
    assert catalog.dataset_by_name(env, "missing") is None
    assert catalog.dataset_by_name(env, "") is None


def test_dataset_ids_without_create(catalog: Catalog) -> None:
    env = catalog.create_environment("prod").id
    assert catalog.dataset_ids(env, ["a"], create=False) == {}
    catalog.dataset_ids(env, ["A"], create=True)
    assert set(catalog.dataset_ids(env, ["a", "b"], create=False)) == {"a"}
    assert catalog.datasets(env)[0].name == "A"


def test_datasets_are_per_environment(catalog: Catalog) -> None:
    prod = catalog.create_environment("prod").id
    dev = catalog.create_environment("dev").id
    a = catalog.dataset_ids(prod, ["api"], create=True)["api"]
    b = catalog.dataset_ids(dev, ["API"], create=True)["API"]
    assert a != b
    assert catalog.dataset_by_name(dev, "api").name == "API"  # type: ignore[union-attr]


def test_dataset_name_validation(catalog: Catalog) -> None:
    env = catalog.create_environment("prod").id
    assert catalog.dataset_ids(env, ["x" * 255], create=True)
    for bad in ("", "  ", "x" * 256, "new\nline", "nul\x00"):
        with pytest.raises(InvalidName):
            catalog.dataset_ids(env, ["fine", bad], create=True)
    assert [d.name for d in catalog.datasets(env)] == ["x" * 255]  # nothing half-created
    with pytest.raises(UnknownEnvironment):
        catalog.dataset_ids(999, ["fine"], create=True)


def test_concurrent_dataset_creation_one_id_per_name(tmp_path: Path) -> None:
    catalogs = [Catalog.open(tmp_path) for _ in range(2)]  # "server" and "cli"
    env = catalogs[0].create_environment("prod").id
    names = [f"svc-{i}" for i in range(40)]
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        catalog = catalogs[n % 2]
        casings = [name.upper() if (i + n) % 2 else name for i, name in enumerate(names)]
        try:
            barrier.wait()
            for start in range(0, len(casings), 5):
                results.append(catalog.dataset_ids(env, casings[start : start + 5], create=True))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    by_slug: dict[str, set[int]] = {}
    for result in results:
        for name, ds_id in result.items():
            by_slug.setdefault(name.lower(), set()).add(ds_id)
    assert len(by_slug) == 40
    assert all(len(ids) == 1 for ids in by_slug.values())
    assert len({next(iter(ids)) for ids in by_slug.values()}) == 40
    for c in catalogs:
        assert len(c.datasets(env)) == 40
        c.close()


# --- /1/auth ------------------------------------------------------------------------------------


def key_info(*perms: str) -> KeyInfo:
    return KeyInfo("abcdefghijkl", 1, "Production", "production", frozenset(perms), "")


def test_who_am_i_ingest_key() -> None:
    body = who_am_i(key_info(INGEST), Team("tracehive", "tracehive"))
    assert body == {
        "id": "abcdefghijkl",
        "type": "ingest",
        "api_key_access": {
            "events": True,
            "markers": True,
            "triggers": False,
            "boards": False,
            "queries": False,
            "columns": False,
            "createDatasets": True,
            "slos": False,
            "recipients": False,
            "privateBoards": False,
            "create_datasets": True,
        },
        "environment": {"name": "Production", "slug": "production"},
        "team": {"name": "tracehive", "slug": "tracehive"},
    }


def test_who_am_i_configuration_keys() -> None:
    team = Team("t", "t")
    query = who_am_i(key_info(QUERY), team)
    assert query["type"] == "configuration"
    assert {k for k, v in query["api_key_access"].items() if v} == {"queries", "columns", "boards"}
    both = who_am_i(key_info(INGEST, QUERY), team)
    assert both["type"] == "configuration"
    assert both["api_key_access"]["events"] and both["api_key_access"]["queries"]
    admin = who_am_i(key_info(ADMIN), team)
    assert admin["type"] == "configuration"
    assert all(admin["api_key_access"].values())
    assert key_info(ADMIN).allows(INGEST) and key_info(ADMIN).allows(QUERY)
