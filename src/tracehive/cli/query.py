"""``tracehive query``: run a Honeycomb query spec against a server (``--url``) or a data dir
(``--data``, when no server is running on it), print a table or JSON.

Flags build the spec: ``--calc 'P90(duration_ms)'``, ``--filter 'http.status_code >= 500'``,
``--breakdown name``, ``--order 'P90(duration_ms) desc'``; ``--spec FILE`` reads a whole spec.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table

_CALC = re.compile(r"^\s*([A-Z0-9_]+)\s*(?:\(\s*([^)]*?)\s*\))?\s*$")
_FILTER_OPS = [
    "does-not-start-with",
    "does-not-end-with",
    "does-not-contain",
    "does-not-exist",
    "starts-with",
    "ends-with",
    "contains",
    "exists",
    "not-in",
    "in",
    ">=",
    "<=",
    "!=",
    "=",
    ">",
    "<",
]
_BARS = " ▁▂▃▄▅▆▇█"


def parse_calc(text: str) -> dict[str, Any]:
    m = _CALC.match(text)
    if not m:
        raise click.BadParameter(f"{text!r}: expected OP or OP(column), e.g. P90(duration_ms)")
    calc: dict[str, Any] = {"op": m.group(1)}
    if m.group(2):
        calc["column"] = m.group(2)
    return calc


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_filter(text: str) -> dict[str, Any]:
    """``col op [value]``; the value is JSON when it parses (numbers, true, lists), else text."""
    for op in _FILTER_OPS:
        m = re.match(rf"^\s*(\S+)\s+{re.escape(op)}(?:\s+(.*))?$", text)
        if m:
            f: dict[str, Any] = {"column": m.group(1), "op": op}
            if m.group(2) is not None:
                v = _value(m.group(2).strip())
                if op in ("in", "not-in") and not isinstance(v, list):
                    v = [_value(x.strip()) for x in str(m.group(2)).split(",")]
                f["value"] = v
            return f
    raise click.BadParameter(f"{text!r}: expected 'column op value', e.g. 'name = GET /'")


def parse_order(text: str) -> dict[str, Any]:
    parts = text.rsplit(None, 1)
    direction = "ascending"
    if len(parts) == 2 and parts[1].lower() in ("asc", "ascending", "desc", "descending"):
        direction = "descending" if parts[1].lower().startswith("desc") else "ascending"
        text = parts[0]
    m = _CALC.match(text)
    if m and (m.group(2) or m.group(1) in ("COUNT", "CONCURRENCY")):
        order: dict[str, Any] = {"op": m.group(1)}
        if m.group(2):
            order["column"] = m.group(2)
    else:
        order = {"column": text.strip()}
    order["order"] = direction
    return order


def build_spec(
    spec_file,
    calcs,
    filters,
    breakdowns,
    orders,
    limit,
    time_range,
    start,
    end,
    granularity,
    combination,
) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(Path(spec_file).read_text()) if spec_file else {}
    if calcs:
        spec["calculations"] = [parse_calc(c) for c in calcs]
    if filters:
        spec["filters"] = [parse_filter(f) for f in filters]
    if breakdowns:
        spec["breakdowns"] = list(breakdowns)
    if orders:
        spec["orders"] = [parse_order(o) for o in orders]
    for name, value in (
        ("limit", limit),
        ("time_range", time_range),
        ("start_time", start),
        ("end_time", end),
        ("granularity", granularity),
        ("filter_combination", combination),
    ):
        if value is not None:
            spec[name] = value
    return spec


def _via_http(url: str, key: str, dataset: str, spec: dict[str, Any]) -> dict[str, Any]:
    headers = {"x-honeycomb-team": key}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30) as client:
        r = client.post(f"/1/queries/{dataset}", json=spec)
        if r.status_code != 200:
            raise click.ClickException(f"query rejected ({r.status_code}): {_err(r)}")
        qid = r.json()["id"]
        r = client.post(f"/1/query_results/{dataset}", json={"query_id": qid})
        if r.status_code != 201:
            raise click.ClickException(f"query failed ({r.status_code}): {_err(r)}")
        result = r.json()
        deadline = time.monotonic() + 60
        while not result.get("complete"):
            if time.monotonic() > deadline:
                raise click.ClickException("query did not complete within 60 s")
            time.sleep(0.1)
            r = client.get(f"/1/query_results/{dataset}/{result['id']}")
            if r.status_code != 200:
                raise click.ClickException(f"query failed ({r.status_code}): {_err(r)}")
            result = r.json()
        return result


def _err(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", r.text))
    except ValueError:
        return r.text


def _via_data(data_dir: str, env: str, dataset: str, spec: dict[str, Any]) -> dict[str, Any]:
    from tracehive.query.spec import SpecError
    from tracehive.services import DataDirLocked, Services, UnknownDataset
    from tracehive.settings import Config

    try:
        services = Services(Config.from_env(data_dir=data_dir, grpc_port="-1"))
    except DataDirLocked:
        raise click.ClickException(
            f"a server is running on {data_dir}: query it with --url and --key"
        ) from None
    try:
        environment = services.catalog.environment(env)
        if environment is None:
            raise click.ClickException(f"no environment {env!r} in {data_dir}")
        scope = services.scope(environment.id, dataset)
        query = services.queries.create_query(
            environment.id, None if dataset == "__all__" else dataset, spec
        )
        return services.queries.run_to_result(environment.id, scope, query["id"], {})
    except UnknownDataset:
        raise click.ClickException(f"dataset {dataset!r} not found") from None
    except SpecError as exc:
        raise click.ClickException(f"invalid query: {exc}") from None
    finally:
        services.close()


def _cell(value: Any) -> str:
    if isinstance(value, dict) and "buckets" in value:
        counts = [b.get("count", 0) for b in value["buckets"]]
        step = max(1, -(-len(counts) // 24))  # at most 24 characters wide
        counts = [sum(counts[i : i + step]) for i in range(0, len(counts), step)]
        top = max(counts) if counts and max(counts) > 0 else 1
        bars = "".join(_BARS[min(8, round(8 * c / top))] for c in counts)
        lo = value["buckets"][0]["lower"] if value["buckets"] else 0
        hi = value["buckets"][-1]["upper"] if value["buckets"] else 0
        return f"{lo:.4g} {bars} {hi:.4g}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def render(result: dict[str, Any], console: Console) -> None:
    rows = [r.get("data", r) for r in result.get("data", {}).get("results", [])]
    if not rows:
        console.print("no results")
        return
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    table = Table(show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold", no_wrap=c.startswith("HEATMAP("))
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


@click.command()
@click.option("--url", help="A running server, e.g. http://127.0.0.1:4318 (needs --key).")
@click.option("--key", envvar="TRACEHIVE_KEY", help="API key with the query permission.")
@click.option("--data", "data_dir", help="A data dir with no server running on it.")
@click.option("--env", default="development", show_default=True, help="Environment (--data).")
@click.option("--dataset", default="__all__", show_default=True)
@click.option("--spec", "spec_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--calc", "calcs", multiple=True, help="OP or OP(column), repeatable.")
@click.option("--filter", "filters", multiple=True, help="'column op value', repeatable.")
@click.option("--breakdown", "breakdowns", multiple=True)
@click.option("--order", "orders", multiple=True, help="'P90(duration_ms) desc' or 'name asc'.")
@click.option("--limit", type=int)
@click.option("--time-range", type=int, help="Seconds [7200].")
@click.option("--start", type=int, help="Epoch seconds.")
@click.option("--end", type=int, help="Epoch seconds.")
@click.option("--granularity", type=int, help="Series step in seconds.")
@click.option("--any", "combination", flag_value="OR", default=None, help="OR the filters.")
@click.option("--json", "as_json", is_flag=True, help="Print the query result as JSON.")
def query(
    url,
    key,
    data_dir,
    env,
    dataset,
    spec_file,
    calcs,
    filters,
    breakdowns,
    orders,
    limit,
    time_range,
    start,
    end,
    granularity,
    combination,
    as_json,
) -> None:
    """Run a query (Honeycomb Query Specification) and print the results."""
    if bool(url) == bool(data_dir):
        raise click.UsageError("give exactly one of --url or --data")
    if url and not key:
        raise click.UsageError("--url needs --key (or TRACEHIVE_KEY)")
    spec = build_spec(
        spec_file,
        calcs,
        filters,
        breakdowns,
        orders,
        limit,
        time_range,
        start,
        end,
        granularity,
        combination,
    )
    result = _via_http(url, key, dataset, spec) if url else _via_data(data_dir, env, dataset, spec)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    else:
        render(result, Console())


COMMANDS = [query]
