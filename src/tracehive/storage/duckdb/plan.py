"""A query spec resolved against the store's columns: logical expressions, per-calculation
evaluation plans, the WHERE. Every unknown column or type mismatch is a ``SpecError`` here,
before any SQL runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracehive.query.spec import PERCENTILES, Calculation, QuerySpec, SpecError
from tracehive.storage.api import Scope, UnsupportedQuery
from tracehive.storage.duckdb.compile import (
    NumExpr,
    Params,
    Resolver,
    compile_filters,
    distinct_expr,
    numeric_expr,
    scope_where,
    value_expr,
)
from tracehive.storage.duckdb.dialect import CALC_KIND, NUMERIC_KINDS, RATE_BASE, UNSUPPORTED_OPS
from tracehive.storage.duckdb.source import Exprs

NS = 1_000_000_000


@dataclass(frozen=True)
class CalcPlan:
    index: int
    calc: Calculation
    kind: str  # dialect.CALC_KIND
    x: str | None = None  # logical numeric column
    num: NumExpr | None = None
    y: str | None = None  # logical value column (COUNT_DISTINCT)
    pred: str | None = None  # logical calculation-local predicate
    p: float | None = None  # percentile quantile
    rate_base: str | None = None  # avg | sum | max

    @property
    def key(self) -> str:
        return self.calc.key


@dataclass
class Plan:
    spec: QuerySpec
    start_s: int
    end_s: int
    step_s: int
    where: str
    params: Params
    exprs: Exprs
    groups: list[str]  # logical breakdown columns g0.., in breakdown order
    calcs: list[CalcPlan]
    include_series: bool
    limit: int
    has_filters: bool = False
    scope_where: str = "TRUE"  # environment, datasets and time window only (no filters)
    dist_columns: list[str] = field(default_factory=list)  # x of percentile/heatmap calcs

    @property
    def has_rates(self) -> bool:
        return any(c.kind == "rate" for c in self.calcs)

    @property
    def need_tb(self) -> bool:
        return self.include_series or self.has_rates

    @property
    def step_ns(self) -> int:
        return self.step_s * NS

    def kinds(self) -> set[str]:
        return {c.kind for c in self.calcs}

    @property
    def passes(self) -> int:
        """Full passes over the source in direct mode (decides materializing)."""
        kinds = self.kinds()
        n = 1 + len(self.dist_columns[1:])
        n += "percentile" in kinds
        n += "distinct" in kinds
        n += len({c.pred for c in self.calcs if c.kind == "concurrency"})
        n += bool(self.dist_columns)  # the sample (and a possible exact min/max)
        return n


def build_plan(
    spec: QuerySpec,
    resolve: Resolver,
    scope: Scope,
    now_s: int,
    include_series: bool,
    limit: int | None,
) -> Plan:
    start_s, end_s = spec.window(now_s)
    params = Params()
    conds = scope_where(scope, start_s * NS, end_s * NS, params)
    in_scope = " AND ".join(conds)
    filters = compile_filters(spec.filters, spec.filter_combination, resolve, params, "filters")
    if filters is not None:
        conds.append(filters)
    exprs = Exprs()
    groups = []
    for i, name in enumerate(spec.breakdowns):
        resolved = resolve(name)
        if resolved is None:
            raise SpecError(f"unknown column {name!r}", f"breakdowns[{i}]")
        exprs.sql[f"g{i}"] = value_expr(resolved)
        groups.append(f"g{i}")
    exprs.sql.update(ts="ts_ns", w="1" if spec.usage_mode else "samplerate", dur="dur_ns")
    calcs = [_calc(i, c, resolve, params, exprs) for i, c in enumerate(spec.calculations)]
    if limit is None:
        limit = min(spec.limit or 1000, 1000 if include_series else 10_000)
    plan = Plan(
        spec,
        start_s,
        end_s,
        spec.step_s(),
        " AND ".join(conds),
        params,
        exprs,
        groups,
        calcs,
        include_series,
        limit,
        has_filters=filters is not None,
        scope_where=in_scope,
    )
    for c in calcs:
        if c.kind in ("percentile", "heatmap") and c.x not in plan.dist_columns:
            plan.dist_columns.append(c.x)  # type: ignore[arg-type]
    return plan


def _calc(i: int, calc: Calculation, resolve: Resolver, params: Params, exprs: Exprs) -> CalcPlan:
    path = f"calculations[{i}]"
    if calc.op in UNSUPPORTED_OPS:
        raise UnsupportedQuery(f"{calc.op} is not supported: {UNSUPPORTED_OPS[calc.op]}")
    kind = CALC_KIND[calc.op]
    pred_sql = compile_filters(
        calc.filters, calc.filter_combination, resolve, params, f"{path}.filters"
    )
    pred = exprs.add("f", pred_sql) if pred_sql else None
    if calc.column is None:
        return CalcPlan(i, calc, kind, pred=pred)
    resolved = resolve(calc.column)
    if resolved is None:
        raise SpecError(f"unknown column {calc.column!r}", f"{path}.column")
    if kind == "distinct":
        return CalcPlan(i, calc, kind, y=exprs.add("y", distinct_expr(resolved)), pred=pred)
    assert kind in NUMERIC_KINDS
    num = numeric_expr(calc.column, resolved, f"{path}.column", calc.op)
    return CalcPlan(
        i,
        calc,
        kind,
        x=exprs.add("x", num.sql),
        num=num,
        pred=pred,
        p=PERCENTILES.get(calc.op),
        rate_base=RATE_BASE.get(calc.op),
    )
