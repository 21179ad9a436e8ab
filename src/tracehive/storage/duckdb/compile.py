"""Query names -> SQL expressions, and filters -> SQL predicates (DuckDB).

Column SQL comes only from schema objects (``FixedColumn.sql()``, generated ``a<N>`` names);
every literal is a bound ``$pN`` parameter. A key seen with several value types has several
typed columns: a filter tests each column that can hold the literal (OR), breakdowns and
COUNT_DISTINCT read a ``COALESCE`` of casts (``schema.read_type``: the common type, else DOUBLE
when all numeric, else VARCHAR), numeric calculations read the numeric columns only.

A well-known name with attribute columns of the same name (a field whose value did not convert,
see ``schema``) resolves to ``[fixed, *attributes]``: the row's value is the fixed column's where
it is not NULL, else the attribute's. Breakdowns read the ``COALESCE``; filters test an attribute
column only where the fixed value is NULL, so a filter and a breakdown see the same value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tracehive.model.ids import InvalidId, span_id_from_hex, trace_id_from_any
from tracehive.query.spec import Filter, Scalar, SpecError
from tracehive.storage.api import Scope
from tracehive.storage.duckdb import trace_ids
from tracehive.storage.duckdb.dialect import COMPARISONS, NEGATED, STRING_OPS
from tracehive.storage.schema import NUMERIC_TYPES, FixedColumn, TypedColumn, ValueType, read_type

#: A fixed column alone, or the typed columns a name reads (a fixed one first, if any).
Resolved = FixedColumn | list[TypedColumn]
Resolver = Callable[[str], Resolved | None]
NS_PER_MS = 1_000_000
READ_SQL_TYPE: dict[ValueType, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
}


class Params:
    """Collects bound parameters; calling it with a value returns its placeholder."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


@dataclass(frozen=True, slots=True)
class Part:
    """One typed physical form of a query column."""

    sql: str  # the user-facing value
    type: str  # string | integer | float | boolean
    literal: str  # plain | duration | trace_id | span_id (see FixedColumn)
    physical: str
    unless: str | None = None  # a column whose value wins when not NULL (the fixed one)


@dataclass(frozen=True, slots=True)
class NumExpr:
    """A numeric column for calculations: ``sql`` is the raw value (``dur_ns`` for
    duration_ms, so histograms work on integers); user values are ``raw / div``."""

    sql: str
    div: float | None
    is_int: bool

    def user(self, raw: float | int | None) -> float | int | None:
        if raw is None or self.div is None:
            return raw
        return raw / self.div


def _fixed_of(resolved: list[TypedColumn]) -> FixedColumn | None:
    return next((c for c in resolved if isinstance(c, FixedColumn)), None)


def parts_of(resolved: Resolved) -> list[Part]:
    if isinstance(resolved, FixedColumn):
        return [Part(resolved.sql(), resolved.type, resolved.literal, resolved.physical)]
    fixed = _fixed_of(resolved)
    unless = None if fixed is None else fixed.sql()
    return [
        Part(c.sql(), c.type, c.literal, c.physical)
        if isinstance(c, FixedColumn)
        else Part(c.physical, c.type, "plain", c.physical, unless)
        for c in resolved
    ]


def numeric_expr(name: str, resolved: Resolved, path: str, op: str) -> NumExpr:
    if isinstance(resolved, FixedColumn):
        if resolved.literal == "duration":
            return NumExpr(resolved.physical, float(NS_PER_MS), True)
        if resolved.type in NUMERIC_TYPES:
            return NumExpr(resolved.sql(), None, resolved.type == "integer")
        raise SpecError(f"{op} needs a numeric column; {name!r} is {resolved.type}", path)
    nums = [c for c in resolved if c.type in NUMERIC_TYPES]
    if not nums:
        kinds = "/".join(sorted({c.type for c in resolved}))
        raise SpecError(f"{op} needs a numeric column; {name!r} is {kinds}", path)
    fixed = _fixed_of(resolved)
    if isinstance(nums[0], FixedColumn) and len(nums) == 1:
        return numeric_expr(name, nums[0], path, op)  # e.g. duration_ms beside a text attribute
    sqls = [c.sql() for c in nums]
    if fixed is not None and fixed not in nums:
        # Where the (non-numeric) fixed column is set, the row's value is not a number.
        sqls = [f"(CASE WHEN {fixed.sql()} IS NULL THEN {s} END)" for s in sqls]
    is_int = all(c.type == "integer" for c in nums)
    if len(sqls) == 1:
        return NumExpr(sqls[0], None, is_int)
    # The fixed column coalesces first: it wins where set, as in value_expr.
    return NumExpr(_coalesce(sqls, "BIGINT" if is_int else "DOUBLE"), None, is_int)


def value_expr(resolved: Resolved) -> str:
    """The column's value for grouping and COUNT_DISTINCT."""
    if isinstance(resolved, FixedColumn):
        return resolved.sql()
    if len(resolved) == 1:
        return resolved[0].sql()
    return _coalesce([c.sql() for c in resolved], READ_SQL_TYPE[read_type(resolved)])


def distinct_expr(resolved: Resolved) -> str:
    """The column's value for COUNT_DISTINCT: ``value_expr``, except that an id column counts
    its stored value, which its hex text maps one to one onto (formatting 10M trace ids as
    text: ~1.4 s, counting the stored ones: ~0.1 s)."""
    if isinstance(resolved, FixedColumn) and resolved.literal in ("trace_id", "span_id"):
        return resolved.physical
    return value_expr(resolved)


def _coalesce(columns: list[str], sql_type: str) -> str:
    return "COALESCE(" + ", ".join(f"CAST({c} AS {sql_type})" for c in columns) + ")"


def scope_where(scope: Scope, start_ns: int, end_ns: int, params: Params) -> list[str]:
    conds = [f"env_id = {params(scope.env_id)}"]
    if scope.dataset_ids is not None:
        if not scope.dataset_ids:
            conds.append("FALSE")
        else:
            conds.append(f"dataset_id IN ({', '.join(params(d) for d in scope.dataset_ids)})")
    conds += [f"ts_ns >= {params(start_ns)}", f"ts_ns < {params(end_ns)}"]
    return conds


def compile_filters(
    filters: tuple[Filter, ...], combination: str, resolve: Resolver, params: Params, path: str
) -> str | None:
    """The filters as one predicate (None when there are none)."""
    preds = [
        compile_filter(f, resolve(f.column), params, f"{path}[{i}]") for i, f in enumerate(filters)
    ]
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    return "(" + f" {combination} ".join(preds) + ")"


def compile_filter(f: Filter, resolved: Resolved | None, params: Params, path: str) -> str:
    if resolved is None:
        # An unknown column exists nowhere; any other test of it is a mistake worth a 400.
        if f.op == "exists":
            return "FALSE"
        if f.op == "does-not-exist":
            return "TRUE"
        raise SpecError(f"unknown column {f.column!r}", f"{path}.column")
    positive_op = NEGATED.get(f.op, f.op)
    parts = parts_of(resolved)
    # Beside other typed columns, an id column just cannot hold a value that is not an id.
    lenient = len(parts) > 1
    try:
        preds = [
            p if part.unless is None else f"({part.unless} IS NULL AND {p})"
            for part in parts
            if (p := _part(part, positive_op, f.value, params, lenient))
        ]
    except InvalidId as exc:
        raise SpecError(str(exc), f"{path}.value") from None
    if not preds:
        kinds = "/".join(sorted({p.type for p in parts}))
        raise SpecError(
            f"{f.value!r} cannot be compared with {f.column!r} ({kinds}) using {f.op!r}",
            f"{path}.value",
        )
    positive = preds[0] if len(preds) == 1 else "(" + " OR ".join(preds) + ")"
    return f"(NOT COALESCE({positive}, FALSE))" if f.op in NEGATED else positive


def _part(part: Part, op: str, value: Any, params: Params, lenient: bool = False) -> str | None:
    """The predicate for one typed column, or None when it cannot hold the literal (an id
    column: ``InvalidId`` unless ``lenient``)."""
    if op == "exists":
        return f"({part.physical if part.literal != 'plain' else part.sql} IS NOT NULL)"
    if part.literal == "duration" and (op in COMPARISONS or op == "in"):
        return _duration(part, op, value, params)
    if part.literal in ("trace_id", "span_id") and op in ("=", "in"):
        return _ids(part, op, value, params, lenient)
    if op in STRING_OPS:
        text = _as_string(value)
        if part.literal in ("trace_id", "span_id"):
            text = text.lower()
        column = part.sql if part.type == "string" else f"CAST({part.sql} AS VARCHAR)"
        return "(" + STRING_OPS[op].format(c=column, v=params(text)) + ")"
    if op == "in":
        coerced = [c for v in value if (c := _coerce(v, part.type)) is not None]
        if not coerced:
            return None
        return f"({part.sql} IN ({', '.join(params(c) for c in dict.fromkeys(coerced))}))"
    return _compare(part, op, value, params)


def _compare(part: Part, op: str, value: Scalar, params: Params) -> str | None:
    sql_op = COMPARISONS[op]
    if part.type == "string" and op != "=" and _is_number(value):
        # Ordering a string column by a number compares numerically where the text is a number.
        return f"(TRY_CAST({part.sql} AS DOUBLE) {sql_op} {params(float(value))})"
    if part.type == "boolean" and op != "=":
        return None
    coerced = _coerce(value, part.type)
    if coerced is None:
        return None
    return f"({part.sql} {sql_op} {params(coerced)})"


def _duration(part: Part, op: str, value: Any, params: Params) -> str | None:
    """duration_ms literals compared on the physical ns column (zone maps prune on it)."""
    if op == "in":
        ns = [n for v in value if (n := _ms_to_ns(v)) is not None and n == int(n)]
        if not ns:
            return None
        return f"({part.physical} IN ({', '.join(params(int(n)) for n in dict.fromkeys(ns))}))"
    ns = _ms_to_ns(value)
    if ns is None:
        return None
    lo, hi = math.floor(ns), math.ceil(ns)
    if op == "=":
        return f"({part.physical} = {params(lo)})" if lo == hi else "FALSE"
    bound = {">": lo, ">=": hi, "<": hi, "<=": lo}[op]  # integer ns against an exact decimal
    return f"({part.physical} {COMPARISONS[op]} {params(bound)})"


def _ids(part: Part, op: str, value: Any, params: Params, lenient: bool) -> str | None:
    values = value if op == "in" else (value,)
    parse = _trace_id if part.literal == "trace_id" else span_id_from_hex
    ids = []
    for v in values:
        try:
            ids.append(parse(str(v)))
        except InvalidId:
            if not lenient:
                raise  # the caller names the field
    if not ids:
        return None
    if part.literal == "trace_id":
        placeholders = [trace_ids.param_sql(params(i)) for i in dict.fromkeys(ids)]
    else:
        placeholders = [params(i) for i in dict.fromkeys(ids)]
    if op == "=":
        return f"({part.physical} = {placeholders[0]})"
    return f"({part.physical} IN ({', '.join(placeholders)}))"


def _trace_id(text: str) -> int:
    return trace_ids.to_int(trace_id_from_any(text))


def _ms_to_ns(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value).strip()) * NS_PER_MS
    except InvalidOperation:
        return None
    return d if d.is_finite() and abs(d) < 2**62 else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _coerce(value: Any, type_: str) -> Scalar | None:
    """The literal as the column's type, or None when it cannot be one."""
    if type_ == "string":
        return _as_string(value)
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            number: float | int = int(value.strip())
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                return None
        value = number
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if type_ == "integer" and isinstance(value, int) and not -(2**63) <= value < 2**64:
        return None
    return float(value) if type_ == "float" else value
