"""``tracehive keys ...`` and ``tracehive envs ...``: manage API keys and environments.

These open ``<data>/catalog.sqlite`` directly, so they work with or without a server running on
the same directory (SQLite WAL + busy timeout, see ``tenancy.catalog``). A running server sees a
revoked key stop working within 5 s and a new key or environment at once.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tracehive.tenancy.catalog import (
    MAX_RETENTION_DAYS,
    Catalog,
    CatalogError,
    Environment,
    EnvironmentExists,
    KeyInfo,
)
from tracehive.tenancy.keys import ALL_PERMISSIONS, InvalidPermission, parse_permissions
from tracehive.tenancy.names import InvalidName

__all__ = ["COMMANDS", "envs_group", "keys_group"]

DATA_ENV_VAR = "TRACEHIVE_DATA"

data_option = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=DATA_ENV_VAR,
    default="./data",
    show_default=True,
    show_envvar=True,
    help="Data directory of the tracehive server.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _open(data_dir: Path) -> Catalog:
    try:
        return Catalog.open(data_dir)
    except (CatalogError, OSError, sqlite3.Error) as exc:
        raise click.ClickException(f"cannot open the catalog in {data_dir}: {exc}") from None


def _when(epoch_s: int | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _permissions(_ctx: click.Context, _param: click.Parameter, value: str) -> frozenset[str]:
    try:
        return parse_permissions(value)
    except InvalidPermission as exc:
        raise click.BadParameter(str(exc)) from None  # a usage error: exit code 2


def _print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2))


def _short(iso: object) -> str:
    # Tables show minutes only ("2026-01-31 12:00") so they fit 80 columns; --json has seconds.
    return str(iso or "")[:16].replace("T", " ")


def _table(*headers: str) -> Table:
    table = Table()
    for h in headers:
        table.add_column(h, overflow="fold")  # ids must never be cut to "abc…"
    return table


# --- keys ---------------------------------------------------------------------------------------


@click.group("keys")
def keys_group() -> None:
    """Create, list and revoke API keys (sent as the X-Honeycomb-Team header)."""


@keys_group.command("create")
@data_option
@click.option("--env", "env_name", required=True, help="Environment of the key (created if new).")
@click.option(
    "--permissions",
    required=True,
    callback=_permissions,
    help=f"Comma list of {', '.join(ALL_PERMISSIONS)} (admin implies the others).",
)
@click.option("--name", default="", help="A label for the key, shown by `keys list`.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the key, nothing else.")
def create_key(
    data_dir: Path, env_name: str, permissions: frozenset[str], name: str, quiet: bool
) -> None:
    """Create a key and print it. It is shown only this once: only a hash is stored."""
    with _open(data_dir) as catalog:
        try:
            env = catalog.environment(env_name)
            if env is None:
                # The CLI is where people set things up, so a new environment name is taken as
                # intent (Catalog.create_key itself refuses unknown environments).
                try:
                    env = catalog.create_environment(env_name)
                    if not quiet:
                        click.echo(f"Created environment {env.name!r} (slug {env.slug}).", err=True)
                except EnvironmentExists:  # another process created it just now
                    env = catalog.environment(env_name)
                    assert env is not None
            key = catalog.create_key(env.name, permissions, name)
        except (InvalidName, CatalogError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(key)
    if not quiet:
        perms = ",".join(p for p in ALL_PERMISSIONS if p in permissions)
        click.echo(
            f"Key for environment {env.name!r} with permissions {perms}. "
            "Store it now: it cannot be shown again.",
            err=True,
        )


def _key_json(k: KeyInfo) -> dict[str, object]:
    return {
        "id": k.id,
        "env": k.env_name,
        "env_slug": k.env_slug,
        "name": k.name,
        "permissions": [p for p in ALL_PERMISSIONS if p in k.permissions],
        "created_at": _when(k.created_at),
        "revoked_at": _when(k.revoked_at),
    }


@keys_group.command("list")
@data_option
@click.option("--env", "env_name", default=None, help="Only keys of this environment.")
@json_option
def list_keys(data_dir: Path, env_name: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    with _open(data_dir) as catalog:
        try:
            keys = catalog.list_keys(env_name)
        except CatalogError as exc:
            raise click.ClickException(str(exc)) from None
    rows = [_key_json(k) for k in keys]
    if as_json:
        _print_json(rows)
        return
    table = _table("id", "env", "name", "permissions", "created", "revoked")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["env"]),
            str(r["name"]),
            ",".join(r["permissions"]),  # type: ignore[arg-type]
            _short(r["created_at"]),
            _short(r["revoked_at"]),
        )
    Console(soft_wrap=True).print(table)


@keys_group.command("revoke")
@data_option
@click.argument("key")
def revoke_key(data_dir: Path, key: str) -> None:
    """Revoke KEY (a key id from `keys list`, or the full key). Servers stop accepting it
    within 5 seconds."""
    with _open(data_dir) as catalog:
        try:
            revoked = catalog.revoke_key(key)
        except CatalogError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo("Revoked." if revoked else "Already revoked.")


# --- envs ---------------------------------------------------------------------------------------


@click.group("envs")
def envs_group() -> None:
    """List and create environments, and set their retention."""


def _env_json(e: Environment, datasets: int, keys: int) -> dict[str, object]:
    return {
        "id": e.id,
        "name": e.name,
        "slug": e.slug,
        "retention_days": e.retention_days,
        "datasets": datasets,
        "active_keys": keys,
        "created_at": _when(e.created_at),
    }


@envs_group.command("list")
@data_option
@json_option
def list_envs(data_dir: Path, as_json: bool) -> None:
    """List environments with their retention, dataset and key counts."""
    with _open(data_dir) as catalog:
        keys = catalog.list_keys()
        rows = [
            _env_json(
                e,
                len(catalog.datasets(e.id)),
                sum(1 for k in keys if k.env_id == e.id and k.revoked_at is None),
            )
            for e in catalog.environments()
        ]
    if as_json:
        _print_json(rows)
        return
    table = _table("id", "name", "slug", "retention", "datasets", "keys", "created")
    for r in rows:
        cells = [str(r[c]) for c in ("id", "name", "slug")]
        cells += [f"{r['retention_days']} days", str(r["datasets"]), str(r["active_keys"])]
        table.add_row(*cells, _short(r["created_at"]))
    Console(soft_wrap=True).print(table)


@envs_group.command("create")
@data_option
@click.argument("name")
def create_env(data_dir: Path, name: str) -> None:
    """Create environment NAME (1..64 characters)."""
    with _open(data_dir) as catalog:
        try:
            env = catalog.create_environment(name)
        except (InvalidName, CatalogError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Created environment {env.name!r} (id {env.id}, slug {env.slug}).")


@envs_group.command("retention")
@data_option
@click.argument("name")
@click.argument("days", type=click.IntRange(1, MAX_RETENTION_DAYS))
def set_retention(data_dir: Path, name: str, days: int) -> None:
    """Keep DAYS days of data in environment NAME (older data is deleted)."""
    with _open(data_dir) as catalog:
        try:
            env = catalog.set_retention(name, days)
        except CatalogError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Environment {env.name!r} now keeps {env.retention_days} days.")


COMMANDS: list[click.Command] = [keys_group, envs_group]


if __name__ == "__main__":  # ``python -m tracehive.cli.keys keys list``, without the full CLI
    click.Group(commands=COMMANDS)()
