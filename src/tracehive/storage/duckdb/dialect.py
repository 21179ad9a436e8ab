"""DuckDB specifics of the query compiler, as data (sqlglot/ibis style: tables, not if-chains).

``compile.py`` builds filters from these tables; ``query.py`` picks the evaluation strategy of a
calculation from ``CALC_KIND``. An operation listed in ``UNSUPPORTED_OPS`` is refused by name.
"""

from __future__ import annotations

from tracehive.query.spec import PERCENTILES

#: Negative filter ops are the NOT of a positive one. Honeycomb's negations also match rows
#: where the column is missing (``!=`` includes events without the field), hence
#: ``NOT COALESCE(positive, FALSE)``.
NEGATED: dict[str, str] = {
    "!=": "=",
    "does-not-start-with": "starts-with",
    "does-not-end-with": "ends-with",
    "does-not-contain": "contains",
    "not-in": "in",
    "does-not-exist": "exists",
}

#: Comparison filter ops -> SQL operator.
COMPARISONS: dict[str, str] = {"=": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}

#: String filter ops -> SQL template over a VARCHAR expression ``{c}`` and a parameter ``{v}``.
#: Case-sensitive, as DuckDB's functions are.
STRING_OPS: dict[str, str] = {
    "starts-with": "starts_with({c}, {v})",
    "ends-with": "ends_with({c}, {v})",
    "contains": "contains({c}, {v})",
}

#: How each calculation op is evaluated (see query.py):
#: count/sum/avg/min/max are decomposable aggregates computed per cell and rolled up;
#: percentile/heatmap go through the exact histogram machinery (distribution.py);
#: distinct and concurrency need their own statement; rate derives from per-bucket aggregates.
CALC_KIND: dict[str, str] = {
    "COUNT": "count",
    "SUM": "sum",
    "AVG": "avg",
    "MIN": "min",
    "MAX": "max",
    "COUNT_DISTINCT": "distinct",
    "CONCURRENCY": "concurrency",
    "HEATMAP": "heatmap",
    "RATE_AVG": "rate",
    "RATE_SUM": "rate",
    "RATE_MAX": "rate",
    **dict.fromkeys(PERCENTILES, "percentile"),
}

#: Ops whose column must be numeric (the others take any column, or none).
NUMERIC_KINDS = frozenset({"sum", "avg", "min", "max", "percentile", "heatmap", "rate"})

#: The per-bucket aggregate a RATE_* op differences (Honeycomb: "the difference between
#: subsequent field values after applying the X operator").
RATE_BASE: dict[str, str] = {"RATE_AVG": "avg", "RATE_SUM": "sum", "RATE_MAX": "max"}

#: Ops this engine cannot compute exactly: op -> reason. Empty today; the compiler refuses any op
#: listed here with an ``UnsupportedQuery`` naming it rather than approximating.
UNSUPPORTED_OPS: dict[str, str] = {}
