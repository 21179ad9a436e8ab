"""The Honeycomb Query Specification: the query model every front end and engine shares.

``parse_spec`` validates a JSON body strictly (PROTOCOLS.md §7.5) and raises ``SpecError`` naming
the offending path (``calculations[1].op``), which the API answers as 400 ``{"error": ...}``.
``QuerySpec.to_json`` echoes the spec in Honeycomb's shape: what was given, with the defaults the
API fills in (``calculations`` [COUNT], ``time_range`` 7200) and without the ones it omits
(``filter_combination`` AND, empty lists). ``parse_spec(spec.to_json()) == spec``.

Refused rather than ignored, because each would change results: ``calculated_fields`` and
``formulas`` (non-empty). ``compare_time_offset_seconds`` is validated and echoed but, as on
Honeycomb, the query results API does not use it. ``usage_mode`` (ignore sample rates) is honoured.
Column names are checked against the data only when the query runs (a dataset's columns change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class SpecError(ValueError):
    """An invalid query; ``field`` names the offending part (``filters[0].value``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.reason = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


#: Percentile calculations -> quantile (P001 is the 0.1th percentile).
PERCENTILES: dict[str, float] = {
    "P001": 0.001,
    "P01": 0.01,
    "P05": 0.05,
    "P10": 0.1,
    "P20": 0.2,
    "P25": 0.25,
    "P50": 0.5,
    "P75": 0.75,
    "P80": 0.8,
    "P90": 0.9,
    "P95": 0.95,
    "P99": 0.99,
    "P999": 0.999,
}
RATE_OPS = ("RATE_AVG", "RATE_SUM", "RATE_MAX")
CALC_OPS: tuple[str, ...] = (
    "COUNT",
    "CONCURRENCY",
    "SUM",
    "AVG",
    "COUNT_DISTINCT",
    "HEATMAP",
    "MAX",
    "MIN",
    *PERCENTILES,
    *RATE_OPS,
)
NO_COLUMN_OPS = frozenset({"COUNT", "CONCURRENCY"})
FILTER_OPS: tuple[str, ...] = (
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "starts-with",
    "does-not-start-with",
    "ends-with",
    "does-not-end-with",
    "exists",
    "does-not-exist",
    "contains",
    "does-not-contain",
    "in",
    "not-in",
)
NO_VALUE_FILTER_OPS = frozenset({"exists", "does-not-exist"})
LIST_FILTER_OPS = frozenset({"in", "not-in"})
HAVING_OPS = ("=", "!=", ">", ">=", "<", "<=")
ORDER_DIRECTIONS = ("ascending", "descending")
COMPARE_OFFSETS = frozenset({1800, 3600, 7200, 28800, 86400, 604800, 2419200, 15724800})
DEFAULT_TIME_RANGE = 7200
MAX_LIMIT = 10_000  # 1000 with series; the result layer clamps (PROTOCOLS.md §7.4)
MAX_BREAKDOWNS = 100

#: Automatic granularity: about range/100, snapped to the nearest of these steps (seconds).
NICE_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
)

Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Filter:
    column: str
    op: str
    value: Scalar | tuple[Scalar, ...] | None = None  # a tuple for in / not-in

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"column": self.column, "op": self.op}
        if self.op in LIST_FILTER_OPS:
            out["value"] = list(self.value)  # type: ignore[arg-type]
        elif self.op not in NO_VALUE_FILTER_OPS:
            out["value"] = self.value
        return out


@dataclass(frozen=True, slots=True)
class Calculation:
    op: str
    column: str | None = None
    name: str | None = None
    filters: tuple[Filter, ...] = ()  # calculation-local filters (newer API)
    filter_combination: str = "AND"

    @property
    def key(self) -> str:
        """The result key: the name if given, else ``COUNT`` or ``P90(duration_ms)``."""
        if self.name:
            return self.name
        return self.op if self.column is None else f"{self.op}({self.column})"

    def matches(self, op: str | None, column: str | None) -> bool:
        return self.op == op and self.column == column

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        if self.column is not None:
            out["column"] = self.column
        if self.name is not None:
            out["name"] = self.name
        if self.filters:
            out["filters"] = [f.to_json() for f in self.filters]
        if self.filter_combination != "AND":
            out["filter_combination"] = self.filter_combination
        return out


@dataclass(frozen=True, slots=True)
class Order:
    column: str | None = None
    op: str | None = None
    order: str = "ascending"

    @property
    def descending(self) -> bool:
        return self.order == "descending"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.op is not None:
            out["op"] = self.op
        if self.column is not None:
            out["column"] = self.column
        out["order"] = self.order
        return out


@dataclass(frozen=True, slots=True)
class Having:
    calculate_op: str
    op: str
    value: float | int
    column: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"calculate_op": self.calculate_op}
        if self.column is not None:
            out["column"] = self.column
        out["op"] = self.op
        out["value"] = self.value
        return out


@dataclass(frozen=True, slots=True)
class QuerySpec:
    calculations: tuple[Calculation, ...] = (Calculation("COUNT"),)
    filters: tuple[Filter, ...] = ()
    filter_combination: str = "AND"
    breakdowns: tuple[str, ...] = ()
    orders: tuple[Order, ...] = ()
    havings: tuple[Having, ...] = ()
    limit: int | None = None
    time_range: int | None = DEFAULT_TIME_RANGE  # None only when start and end are both given
    start_time: int | None = None
    end_time: int | None = None
    granularity: int | None = None
    compare_time_offset_seconds: int | None = None
    usage_mode: bool = False

    # -- time -----------------------------------------------------------------------------
    @property
    def range_s(self) -> int:
        if self.start_time is not None and self.end_time is not None:
            return self.end_time - self.start_time
        return self.time_range or DEFAULT_TIME_RANGE

    def window(self, now_s: int) -> tuple[int, int]:
        """[start, end) in epoch seconds: ``time_range`` after ``start_time``, before
        ``end_time``, or before now."""
        if self.start_time is not None and self.end_time is not None:
            return self.start_time, self.end_time
        if self.start_time is not None:
            return self.start_time, self.start_time + self.range_s
        end = self.end_time if self.end_time is not None else now_s
        return end - self.range_s, end

    def step_s(self) -> int:
        """The series granularity: as given, or about range/100 snapped to a nice step."""
        if self.granularity is not None:
            return self.granularity
        target = self.range_s / 100
        return min(NICE_STEPS, key=lambda s: abs(math.log(s / target)))

    # -- echo -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"calculations": [c.to_json() for c in self.calculations]}
        if self.filters:
            out["filters"] = [f.to_json() for f in self.filters]
        if self.filter_combination != "AND":
            out["filter_combination"] = self.filter_combination
        if self.breakdowns:
            out["breakdowns"] = list(self.breakdowns)
        if self.orders:
            out["orders"] = [o.to_json() for o in self.orders]
        if self.havings:
            out["havings"] = [h.to_json() for h in self.havings]
        for name in (
            "limit",
            "time_range",
            "start_time",
            "end_time",
            "granularity",
            "compare_time_offset_seconds",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.usage_mode:
            out["usage_mode"] = True
        return out


def parse_spec(obj: Any) -> QuerySpec:
    """Validate a Query Specification JSON value; raises ``SpecError`` naming the field."""
    from tracehive.query.spec_parse import parse_spec_obj  # the validator imports this module

    return parse_spec_obj(obj)
