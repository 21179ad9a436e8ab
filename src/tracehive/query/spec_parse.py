"""Strict validation of a Query Specification JSON value (see ``query.spec`` for the model).

Every rejection is a ``SpecError`` whose ``field`` is the JSON path of the offending value, so the
API's 400 says exactly what to fix. Nothing here raises anything else, whatever the input (a
hypothesis test feeds it arbitrary JSON).
"""

from __future__ import annotations

import math
from typing import Any

from tracehive.query.spec import (
    CALC_OPS,
    COMPARE_OFFSETS,
    DEFAULT_TIME_RANGE,
    FILTER_OPS,
    HAVING_OPS,
    LIST_FILTER_OPS,
    MAX_BREAKDOWNS,
    MAX_LIMIT,
    NO_COLUMN_OPS,
    NO_VALUE_FILTER_OPS,
    ORDER_DIRECTIONS,
    Calculation,
    Filter,
    Having,
    Order,
    QuerySpec,
    Scalar,
    SpecError,
)

MAX_ITEMS = 100  # calculations, filters, orders, havings
MAX_IN_VALUES = 1000
MAX_NAME = 1024
MAX_STRING_VALUE = 65_536  # Honeycomb's string field limit
MAX_EPOCH_S = 9_000_000_000  # keeps every time in int64 nanoseconds

TOP_FIELDS = frozenset(
    {
        "calculations",
        "filters",
        "filter_combination",
        "breakdowns",
        "orders",
        "havings",
        "limit",
        "time_range",
        "start_time",
        "end_time",
        "granularity",
        "calculated_fields",
        "formulas",
        "compare_time_offset_seconds",
        "usage_mode",
        "id",  # an echoed spec posted back; ignored
    }
)
#: Accepted but refused when non-empty: each would change results and is not implemented.
UNSUPPORTED_LISTS = {
    "calculated_fields": "calculated fields are not supported",
    "formulas": "formulas are not supported",
}


def parse_spec_obj(obj: Any) -> QuerySpec:
    if not isinstance(obj, dict):
        raise SpecError("a query specification must be a JSON object")
    for key in obj:
        if key not in TOP_FIELDS:
            raise SpecError("unknown field", str(key)[:100])
    for key, message in UNSUPPORTED_LISTS.items():
        if _items(obj.get(key), key, MAX_ITEMS):
            raise SpecError(message, key)
    calcs = tuple(
        _calculation(c, f"calculations[{i}]")
        for i, c in enumerate(_items(obj.get("calculations"), "calculations", MAX_ITEMS))
    )
    if not calcs:
        calcs = (Calculation("COUNT"),)
    breakdowns = _breakdowns(obj.get("breakdowns"))
    _check_keys(calcs, breakdowns)
    spec_fields: dict[str, Any] = {
        "calculations": calcs,
        "filters": _filters(obj.get("filters"), "filters"),
        "filter_combination": _combination(obj.get("filter_combination"), "filter_combination"),
        "breakdowns": breakdowns,
        "orders": tuple(
            _order(o, f"orders[{i}]", calcs, breakdowns)
            for i, o in enumerate(_items(obj.get("orders"), "orders", MAX_ITEMS))
        ),
        "havings": tuple(
            _having(h, f"havings[{i}]", calcs)
            for i, h in enumerate(_items(obj.get("havings"), "havings", MAX_ITEMS))
        ),
        "limit": _opt_int(obj.get("limit"), "limit", 1, MAX_LIMIT),
        "usage_mode": _opt_bool(obj.get("usage_mode"), "usage_mode"),
    }
    offset = _opt_int(obj.get("compare_time_offset_seconds"), "compare_time_offset_seconds", 1)
    if offset is not None and offset not in COMPARE_OFFSETS:
        raise SpecError(f"must be one of {sorted(COMPARE_OFFSETS)}", "compare_time_offset_seconds")
    spec_fields["compare_time_offset_seconds"] = offset
    spec_fields.update(_time(obj))
    return QuerySpec(**spec_fields)


def _time(obj: dict[str, Any]) -> dict[str, Any]:
    time_range = _opt_int(obj.get("time_range"), "time_range", 1, MAX_EPOCH_S)
    start = _opt_int(obj.get("start_time"), "start_time", 0, MAX_EPOCH_S)
    end = _opt_int(obj.get("end_time"), "end_time", 0, MAX_EPOCH_S)
    if start is not None and end is not None:
        if time_range is not None:
            raise SpecError(
                "time_range cannot be combined with both start_time and end_time", "time_range"
            )
        if end <= start:
            raise SpecError("must be after start_time", "end_time")
        span = end - start
    else:
        time_range = DEFAULT_TIME_RANGE if time_range is None else time_range
        span = time_range
        if end is not None and end - span < 0:
            raise SpecError("the window would start before the epoch", "time_range")
    granularity = _opt_int(obj.get("granularity"), "granularity", 1, MAX_EPOCH_S)
    if granularity is not None and granularity > span:
        raise SpecError(f"must be at most the time range ({span})", "granularity")
    if granularity is not None and granularity * 1000 < span:
        raise SpecError(
            f"must be at least the time range / 1000 ({math.ceil(span / 1000)})", "granularity"
        )
    return {
        "time_range": time_range,
        "start_time": start,
        "end_time": end,
        "granularity": granularity,
    }


def _calculation(c: Any, path: str) -> Calculation:
    c = _object(c, path, {"op", "column", "name", "filters", "filter_combination"})
    op = c.get("op")
    if not isinstance(op, str) or op not in CALC_OPS:
        raise SpecError(f"unknown calculation op {str(op)[:40]!r}", f"{path}.op")
    column = c.get("column")
    if op in NO_COLUMN_OPS:
        if column not in (None, ""):
            raise SpecError(f"{op} takes no column", f"{path}.column")
        column = None
    else:
        column = _name(column, f"{path}.column", f"{op} needs a column")
    name = c.get("name")
    if name is not None:
        name = _name(name, f"{path}.name")
    return Calculation(
        op,
        column,
        name,
        _filters(c.get("filters"), f"{path}.filters"),
        _combination(c.get("filter_combination"), f"{path}.filter_combination"),
    )


def _check_keys(calcs: tuple[Calculation, ...], breakdowns: tuple[str, ...]) -> None:
    seen = set(breakdowns)
    for i, calc in enumerate(calcs):
        if calc.key in seen:
            field = f"calculations[{i}].name" if calc.name else f"calculations[{i}]"
            raise SpecError(f"duplicate result name {calc.key!r}", field)
        seen.add(calc.key)


def _filters(value: Any, path: str) -> tuple[Filter, ...]:
    return tuple(_filter(f, f"{path}[{i}]") for i, f in enumerate(_items(value, path, MAX_ITEMS)))


def parse_filter(f: Any, path: str) -> Filter:
    """One ``{"column", "op", "value"}`` filter (also used for trace-level filters)."""
    return _filter(f, path)


def _filter(f: Any, path: str) -> Filter:
    f = _object(f, path, {"column", "op", "value"})
    column = _name(f.get("column"), f"{path}.column")
    op = f.get("op")
    if not isinstance(op, str) or op not in FILTER_OPS:
        raise SpecError(f"unknown filter op {str(op)[:40]!r}", f"{path}.op")
    value = f.get("value")
    if op in NO_VALUE_FILTER_OPS:
        if value is not None:
            raise SpecError(f"{op} takes no value", f"{path}.value")
        return Filter(column, op)
    if op in LIST_FILTER_OPS:
        if not isinstance(value, list) or not value:
            raise SpecError(f"{op} needs a non-empty array of values", f"{path}.value")
        if len(value) > MAX_IN_VALUES:
            raise SpecError(f"at most {MAX_IN_VALUES} values", f"{path}.value")
        return Filter(
            column, op, tuple(_scalar(v, f"{path}.value[{i}]") for i, v in enumerate(value))
        )
    return Filter(column, op, _scalar(value, f"{path}.value"))


def _breakdowns(value: Any) -> tuple[str, ...]:
    out = tuple(
        _name(b, f"breakdowns[{i}]")
        for i, b in enumerate(_items(value, "breakdowns", MAX_BREAKDOWNS))
    )
    for i, b in enumerate(out):
        if b in out[:i]:
            raise SpecError(f"duplicate breakdown {b!r}", f"breakdowns[{i}]")
    return out


def _order(o: Any, path: str, calcs: tuple[Calculation, ...], breakdowns: tuple[str, ...]) -> Order:
    o = _object(o, path, {"op", "column", "order"})
    op, column, order = o.get("op"), o.get("column"), o.get("order", "ascending")
    if order not in ORDER_DIRECTIONS:
        raise SpecError("must be 'ascending' or 'descending'", f"{path}.order")
    if column is not None:
        column = _name(column, f"{path}.column")
    if op is None:
        if column is None:
            raise SpecError("an order needs an op or a column", path)
        if column not in breakdowns and not any(c.name == column for c in calcs):
            raise SpecError(f"{column!r} is not a breakdown or a named calculation", path)
        return Order(column, None, order)
    if not isinstance(op, str) or op not in CALC_OPS:
        raise SpecError(f"unknown calculation op {str(op)[:40]!r}", f"{path}.op")
    if op == "HEATMAP":
        raise SpecError("results cannot be ordered by a HEATMAP", f"{path}.op")
    if not any(c.matches(op, column) for c in calcs):
        raise SpecError("must reference a calculation of the query", path)
    return Order(column, op, order)


def _having(h: Any, path: str, calcs: tuple[Calculation, ...]) -> Having:
    h = _object(h, path, {"calculate_op", "column", "op", "value"})
    calc_op, column, op, value = h.get("calculate_op"), h.get("column"), h.get("op"), h.get("value")
    if not isinstance(calc_op, str) or calc_op not in CALC_OPS or calc_op == "HEATMAP":
        raise SpecError(f"invalid calculate_op {str(calc_op)[:40]!r}", f"{path}.calculate_op")
    if column is not None:
        column = _name(column, f"{path}.column")
    if not any(c.matches(calc_op, column) for c in calcs):
        raise SpecError("must reference a calculation of the query", path)
    if not isinstance(op, str) or op not in HAVING_OPS:
        raise SpecError(f"unknown having op {str(op)[:40]!r}", f"{path}.op")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError("must be a number", f"{path}.value")
    return Having(calc_op, op, value, column)


# -- primitives -------------------------------------------------------------------------------
def _items(value: Any, path: str, max_len: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError("must be an array", path)
    if len(value) > max_len:
        raise SpecError(f"at most {max_len} items", path)
    return value


def _object(value: Any, path: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError("must be an object", path)
    for key in value:
        if key not in keys:
            raise SpecError("unknown field", f"{path}.{str(key)[:100]}")
    return value


def _name(value: Any, path: str, missing: str = "must be a non-empty string") -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(missing, path)
    if len(value) > MAX_NAME:
        raise SpecError(f"longer than {MAX_NAME} characters", path)
    return value


def _scalar(value: Any, path: str) -> Scalar:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError("must be a finite number", path)
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE:
            raise SpecError(f"longer than {MAX_STRING_VALUE} characters", path)
        return value
    raise SpecError("must be a string, number or boolean", path)


def _combination(value: Any, path: str) -> str:
    if value is None:
        return "AND"
    if value not in ("AND", "OR"):
        raise SpecError("must be 'AND' or 'OR'", path)
    return str(value)


def _opt_int(value: Any, path: str, lo: int, hi: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError("must be an integer", path)
    if value < lo or (hi is not None and value > hi):
        raise SpecError(f"must be between {lo} and {hi}" if hi else f"must be at least {lo}", path)
    return value


def _opt_bool(value: Any, path: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SpecError("must be true or false", path)
    return value
