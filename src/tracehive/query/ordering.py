"""Havings, orders and limit over computed result rows (engine-neutral).

Default order (no ``orders``): the first calculation that can be ordered (not HEATMAP), descending,
as Honeycomb's query builder shows results; ties and unordered terms fall back to the breakdown
values ascending, so output is deterministic. Nulls sort last in either direction. A having on a
null value (e.g. AVG of a group without values) is false.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from tracehive.query.spec import QuerySpec

Row = dict[str, Any]

HAVING_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def calc_key(spec: QuerySpec, op: str | None, column: str | None) -> str:
    for calc in spec.calculations:
        if calc.matches(op, column):
            return calc.key
    raise KeyError((op, column))  # parse_spec guarantees a match


def apply_havings(spec: QuerySpec, rows: list[Row]) -> list[Row]:
    for having in spec.havings:
        key = calc_key(spec, having.calculate_op, having.column)
        cmp = HAVING_CMP[having.op]
        rows = [r for r in rows if r.get(key) is not None and cmp(r[key], having.value)]
    return rows


def order_terms(spec: QuerySpec) -> list[tuple[str, bool]]:
    """(row key, descending) in priority order."""
    terms: list[tuple[str, bool]] = []
    for order in spec.orders:
        if order.op is None:
            terms.append((str(order.column), order.descending))
        else:
            terms.append((calc_key(spec, order.op, order.column), order.descending))
    if not spec.orders:
        first = next((c for c in spec.calculations if c.op != "HEATMAP"), None)
        if first is not None:
            terms.append((first.key, True))
    terms += [(b, False) for b in spec.breakdowns]
    return terms


def sort_rows(rows: list[Row], terms: list[tuple[str, bool]]) -> list[Row]:
    """Stable multi-key sort, least significant term first; nulls last for every term."""
    for key, descending in reversed(terms):
        present = [r for r in rows if r.get(key) is not None]
        missing = [r for r in rows if r.get(key) is None]
        try:
            present.sort(key=lambda r, k=key: r[k], reverse=descending)
        except TypeError:  # mixed types in one column: order by type name, then value
            present.sort(key=lambda r, k=key: (type(r[k]).__name__, str(r[k])), reverse=descending)
        rows = present + missing
    return rows


def finish(spec: QuerySpec, rows: list[Row], limit: int) -> list[Row]:
    """Havings, then order, then the first ``limit`` rows."""
    return sort_rows(apply_havings(spec, rows), order_terms(spec))[:limit]
