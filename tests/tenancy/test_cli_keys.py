"""cli.keys: ``tracehive keys ...`` and ``tracehive envs ...``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tracehive.cli.keys import COMMANDS, envs_group, keys_group
from tracehive.tenancy.catalog import INGEST, QUERY, Catalog
from tracehive.tenancy.keys import parse_key

KEY_RE = re.compile(r"thk_[a-z2-7]{12}_[A-Za-z0-9_-]{32,}")


def run(group, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(group, list(args), env=env, catch_exceptions=False)


def create(data: Path, env: str = "prod", perms: str = "ingest", *extra: str) -> str:
    result = run(keys_group, "create", "--data", str(data), "--env", env, "--permissions", perms,
                 "--quiet", *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_commands_exported() -> None:
    assert [c.name for c in COMMANDS] == ["keys", "envs"]


def test_create_quiet_prints_only_the_key(tmp_path: Path) -> None:
    result = run(keys_group, "create", "--data", str(tmp_path), "--env", "Production",
                 "--permissions", "ingest,query", "--quiet")  # fmt: skip
    assert result.exit_code == 0
    assert KEY_RE.fullmatch(result.stdout.rstrip("\n"))
    assert result.stdout.count("\n") == 1
    assert result.stderr == ""
    with Catalog.open(tmp_path) as c:
        info = c.authenticate(result.stdout.strip())
        assert info is not None
        assert info.permissions == {INGEST, QUERY}
        assert info.env_name == "Production"


def test_create_reports_new_environment(tmp_path: Path) -> None:
    result = run(keys_group, "create", "--data", str(tmp_path), "--env", "staging",
                 "--permissions", "admin", "--name", "ops laptop")  # fmt: skip
    assert result.exit_code == 0
    assert "Created environment 'staging'" in result.stderr
    assert "cannot be shown again" in result.stderr
    key = result.stdout.strip()
    assert KEY_RE.fullmatch(key)
    again = run(keys_group, "create", "--data", str(tmp_path), "--env", "STAGING",
                "--permissions", "ingest")  # fmt: skip
    assert "Created environment" not in again.stderr  # same environment, by slug
    with Catalog.open(tmp_path) as c:
        assert [k.name for k in c.list_keys("staging")] == ["ops laptop", ""]


@pytest.mark.parametrize("perms", ["ingest,write", "", "root"])
def test_bad_permissions_exit_2(tmp_path: Path, perms: str) -> None:
    result = run(keys_group, "create", "--data", str(tmp_path), "--env", "prod",
                 "--permissions", perms)  # fmt: skip
    assert result.exit_code == 2
    assert "permission" in result.stderr
    assert result.stdout == ""


def test_bad_environment_name_is_an_error(tmp_path: Path) -> None:
    result = run(keys_group, "create", "--data", str(tmp_path), "--env", "x" * 65,
                 "--permissions", "ingest")  # fmt: skip
    assert result.exit_code == 1
    assert "longer than 64" in result.stderr


def test_list_json_and_table(tmp_path: Path) -> None:
    k1 = create(tmp_path, "prod", "ingest", "--name", "ci")
    k2 = create(tmp_path, "dev", "query,admin")
    result = run(keys_group, "list", "--data", str(tmp_path), "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == [parse_key(k1)[0], parse_key(k2)[0]]  # type: ignore[index]
    assert rows[0]["env"] == "prod" and rows[0]["name"] == "ci"
    assert rows[0]["permissions"] == ["ingest"]
    assert rows[1]["permissions"] == ["query", "admin"]
    assert rows[0]["revoked_at"] is None and rows[0]["created_at"].endswith("Z")
    for k in (k1, k2):
        assert parse_key(k)[1] not in result.stdout  # type: ignore[index]
    only_dev = json.loads(run(keys_group, "list", "--data", str(tmp_path), "--env", "dev",
                              "--json").stdout)  # fmt: skip
    assert [r["env"] for r in only_dev] == ["dev"]
    table = run(keys_group, "list", "--data", str(tmp_path)).stdout
    assert parse_key(k1)[0] in table and "ingest" in table and "ci" in table  # type: ignore[index]
    missing = run(keys_group, "list", "--data", str(tmp_path), "--env", "nope")
    assert missing.exit_code == 1 and "nope" in missing.stderr


def test_revoke_by_id_and_by_key(tmp_path: Path) -> None:
    k1 = create(tmp_path)
    k2 = create(tmp_path)
    r = run(keys_group, "revoke", "--data", str(tmp_path), parse_key(k1)[0])  # type: ignore[index]
    assert r.exit_code == 0 and "Revoked" in r.stdout
    r = run(keys_group, "revoke", "--data", str(tmp_path), k2)
    assert r.exit_code == 0 and "Revoked" in r.stdout
    r = run(keys_group, "revoke", "--data", str(tmp_path), k2)
    assert r.exit_code == 0 and "Already revoked" in r.stdout
    r = run(keys_group, "revoke", "--data", str(tmp_path), "zzzzzzzzzzzz")
    assert r.exit_code == 1 and "no key" in r.stderr
    with Catalog.open(tmp_path) as c:
        assert c.authenticate(k1) is None and c.authenticate(k2) is None
    rows = json.loads(run(keys_group, "list", "--data", str(tmp_path), "--json").stdout)
    assert all(r["revoked_at"] for r in rows)


def test_envs(tmp_path: Path) -> None:
    d = str(tmp_path)
    r = run(envs_group, "create", "--data", d, "Production")
    assert r.exit_code == 0 and "production" in r.stdout
    assert run(envs_group, "create", "--data", d, "production").exit_code == 1
    assert run(envs_group, "create", "--data", d, "").exit_code == 1
    r = run(envs_group, "retention", "--data", d, "production", "14")
    assert r.exit_code == 0 and "14 days" in r.stdout
    assert run(envs_group, "retention", "--data", d, "production", "0").exit_code == 2
    assert run(envs_group, "retention", "--data", d, "production", "many").exit_code == 2
    assert run(envs_group, "retention", "--data", d, "missing", "3").exit_code == 1
    create(tmp_path, "production")
    with Catalog.open(tmp_path) as c:
        c.dataset_ids(1, ["api", "web"], create=True)
    rows = json.loads(run(envs_group, "list", "--data", d, "--json").stdout)
    assert rows == [
        {
            "id": 1,
            "name": "Production",
            "slug": "production",
            "retention_days": 14,
            "datasets": 2,
            "active_keys": 1,
            "created_at": rows[0]["created_at"],
        }
    ]
    table = run(envs_group, "list", "--data", d).stdout
    assert "Production" in table and "14 days" in table


def test_data_dir_from_environment_variable(tmp_path: Path) -> None:
    data = tmp_path / "from-env"
    r = run(keys_group, "create", "--env", "prod", "--permissions", "ingest", "-q",
            env={"TRACEHIVE_DATA": str(data)})  # fmt: skip
    assert r.exit_code == 0
    assert (data / "catalog.sqlite").exists()


def test_end_to_end_subprocess_against_a_running_server(tmp_path: Path) -> None:
    """The real CLI, in its own process, while a "server" Catalog is open on the same dir."""
    env = {**os.environ, "TRACEHIVE_DATA": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tracehive.cli.keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    with Catalog.open(tmp_path, cache_ttl=0.5) as server:
        bootstrap = server.ensure_bootstrap()
        assert bootstrap is not None
        created = cli("keys", "create", "--env", "prod", "--permissions", "ingest", "--quiet")
        assert created.returncode == 0, created.stderr
        assert created.stderr == ""
        key = created.stdout.strip()
        assert KEY_RE.fullmatch(key)
        info = server.authenticate(key)  # a new key is visible at once
        assert info is not None and info.env_name == "prod"

        listed = cli("keys", "list", "--json")
        assert listed.returncode == 0
        assert {r["env"] for r in json.loads(listed.stdout)} == {"development", "prod"}

        revoked = cli("keys", "revoke", key)
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + 5  # the promise: within 5 s (here the ttl is 0.5 s)
        while server.authenticate(key) is not None:
            assert time.monotonic() < deadline, "revocation did not reach the server"
            time.sleep(0.05)
        assert server.authenticate(bootstrap) is not None

        bad = cli("keys", "create", "--env", "prod", "--permissions", "nope")
        assert bad.returncode == 2
