"""Where a query's passes read from: the ``events`` table, or a small materialized projection.

Every pass is written against *logical* columns (``g0`` breakdown, ``ts``, ``w`` weight, ``x0``
numeric value, ``y0`` distinct value, ``f0`` calculation-local predicate, ``dur``). A ``Source``
maps them to SQL: expressions over ``events`` with the query's WHERE, or plain columns of a temp
table holding just the matching rows. Materializing pays off when the filters are selective and
the plan needs several passes: the filters (a high-cardinality string compare costs ~200 ms at
10M rows) are then evaluated once.

The sample (``TABLESAMPLE n% (system)``: whole vectors, ~20 ms at 10M rows) only *plans*:
histogram grids, where to zoom for percentiles, whether breakdowns are high-cardinality. Results
never come from it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import duckdb

from tracehive.storage.duckdb.compile import Params

SAMPLE_PERCENT = 2
RETRY_PERCENT = 25
SMALL_SAMPLE_ROWS = 2048
MAX_SAMPLE_GROUPS = 5000
MATERIALIZE_MAX_ROWS = 262_144
_PARAM = re.compile(r"\$(p\d+)")
_names = itertools.count()


def temp_name(kind: str) -> str:
    return f"_th_{kind}_{next(_names)}"


def hash_sql(keys: list[str], params: Params, seed: int) -> str:
    """A 64-bit key for a group (or group and time bucket); callers check it is unique."""
    return f"hash({', '.join([*keys, params(seed)])})"


def execute(con: duckdb.DuckDBPyConnection, sql: str, params: Params) -> duckdb.DuckDBPyConnection:
    """Run with only the parameters the statement uses (DuckDB rejects extra ones)."""
    used = {name: params.values[name] for name in dict.fromkeys(_PARAM.findall(sql))}
    return con.execute(sql, used)


@dataclass
class Exprs:
    """Logical name -> SQL over ``events``, deduplicated by SQL text within a prefix."""

    sql: dict[str, str] = field(default_factory=dict)

    def add(self, prefix: str, sql: str) -> str:
        for name, existing in self.sql.items():
            if existing == sql and name.rstrip("0123456789") == prefix:
                return name
        name = f"{prefix}{sum(1 for n in self.sql if n.rstrip('0123456789') == prefix)}"
        self.sql[name] = sql
        return name


@dataclass
class Source:
    from_: str
    where: str
    params: Params
    exprs: dict[str, str]
    materialized: bool = False

    def e(self, name: str) -> str:
        return self.exprs[name]

    def params_copy(self) -> Params:
        p = Params()
        p.values = dict(self.params.values)
        return p

    def restricted(self, condition: str) -> Source:
        return Source(
            self.from_,
            f"({self.where}) AND {condition}",
            self.params,
            self.exprs,
            self.materialized,
        )


def events_source(where: str, params: Params, exprs: Exprs) -> Source:
    return Source("events", where, params, dict(exprs.sql))


def try_materialize(con: duckdb.DuckDBPyConnection, src: Source) -> Source | None:
    """The matching rows' projection as a temp table, or None when there are more than
    ``MATERIALIZE_MAX_ROWS`` (the LIMIT stops the scan early then, bounding the wasted work)."""
    name = temp_name("m")
    cols = ", ".join(
        f"COALESCE({sql}, FALSE) AS {n}" if n.startswith("f") else f"{sql} AS {n}"
        for n, sql in src.exprs.items()
    )
    params = src.params_copy()
    limit = params(MATERIALIZE_MAX_ROWS + 1)
    execute(
        con,
        f"CREATE TEMP TABLE {name} AS SELECT {cols} FROM {src.from_} "
        f"WHERE {src.where} LIMIT {limit}",
        params,
    )
    (n,) = con.execute(f"SELECT count(*) FROM {name}").fetchone()  # type: ignore[misc]
    if n > MATERIALIZE_MAX_ROWS:
        con.execute(f"DROP TABLE {name}")
        return None
    return Source(name, "TRUE", Params(), {n: n for n in src.exprs}, materialized=True)


@dataclass
class Sample:
    """What the sample says: estimated matching rows, sampled groups, and per numeric column
    (min, max, non-null count, sample quantiles at the requested probabilities) per group."""

    est_rows: float
    groups: int
    stats: dict[str, list[tuple[Any, Any, int, list[Any] | None]]]
    probs: dict[str, list[float]]
    exact: bool = False  # computed over every row (a materialized source), not a sample


def sample(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    groups: list[str],
    columns: dict[str, list[float]],
) -> Sample:
    """``columns``: numeric logical column -> probabilities whose sample quantiles are wanted.
    System sampling picks whole vectors, so a small table can yield nothing at 2%; then a
    larger sample (still cheap there) is taken."""
    if src.materialized:  # small: exact statistics are cheap
        return _sample(con, src, groups, columns, 100)
    smp = _sample(con, src, groups, columns, SAMPLE_PERCENT)
    if smp.est_rows * SAMPLE_PERCENT / 100 < SMALL_SAMPLE_ROWS:
        smp = _sample(con, src, groups, columns, RETRY_PERCENT)
    return smp


def _sample(
    con: duckdb.DuckDBPyConnection,
    src: Source,
    groups: list[str],
    columns: dict[str, list[float]],
    percent: int,
) -> Sample:
    params = src.params_copy()
    select = [f"{src.e(g)} AS {g}" for g in groups] + ["count(*)"]
    for x, probs in columns.items():
        select += [f"min({src.e(x)})", f"max({src.e(x)})", f"count({src.e(x)})"]
        select.append(f"quantile_disc({src.e(x)}, {params(probs)})" if probs else "NULL")
    group_by = " GROUP BY ALL" if groups else ""
    sample_sql = f" TABLESAMPLE {int(percent)}% (system)" if percent < 100 else ""
    rows = execute(
        con,
        f"SELECT {', '.join(select)} FROM {src.from_}{sample_sql} WHERE {src.where}{group_by} "
        f"LIMIT {MAX_SAMPLE_GROUPS + 1}",
        params,
    ).fetchall()
    total = sum(r[len(groups)] for r in rows)
    stats: dict[str, list[tuple[Any, Any, int, list[Any] | None]]] = {}
    for j, x in enumerate(columns):
        at = len(groups) + 1 + 4 * j
        stats[x] = [(r[at], r[at + 1], r[at + 2], r[at + 3]) for r in rows if r[at + 2]]
    exact = percent == 100 and len(rows) <= MAX_SAMPLE_GROUPS  # else some groups are missing
    return Sample(total * 100 / percent, len(rows), stats, columns, exact)
