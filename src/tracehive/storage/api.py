"""The storage contract: what every engine adapter (DuckDB now, ClickHouse later) must do.

No SQL here. Each adapter implements ``Store``; ``tests/storage/test_conformance.py`` runs the same
suite against every adapter. An operation an engine cannot do is refused with
``UnsupportedQuery`` naming it, never approximated silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from tracehive.model.batch import MetricBatch
    from tracehive.query.spec import QuerySpec
    from tracehive.storage.schema import ColumnInfo


class StorageError(Exception):
    """The engine failed; the caller may retry the write later (nothing is acknowledged twice)."""


class UnsupportedQuery(ValueError):
    """The query asks for something this engine cannot compute exactly."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows a read may see: one environment and some of its datasets (None = all)."""

    env_id: int
    dataset_ids: tuple[int, ...] | None = None


@dataclass(slots=True)
class QueryData:
    """The result of one query, engine-neutral: ``results`` rows and ``series`` rows are dicts
    keyed by breakdown names and result names (``COUNT``, ``P90(duration_ms)``, ...)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)  # each has "time" (epoch s) + keys
    start_time: int = 0
    end_time: int = 0
    granularity: int = 0


@dataclass(slots=True)
class TraceSummary:
    trace_id: bytes
    start_ns: int
    duration_ms: float
    span_count: int
    error: bool
    root_service: str | None
    root_name: str | None
    services: list[str]


class Store(Protocol):
    """An event store. Methods are called from worker threads, never from the event loop."""

    def write(
        self,
        table: pa.Table | None,
        metrics: list[tuple[int, list[int], MetricBatch]],
        wal_end: int,
        partial: int = 0,
    ) -> None:
        """Append events (Arrow, shaped by ``storage.arrow.to_arrow``: fixed columns by physical
        name, attributes as ``"<type>:<key>"``) and metric points ``(env_id, dataset ids per
        point, batch)``. MUST record ``(wal_end, partial)`` in the same transaction (see
        ``wal_position``); with no rows it still records it. ``partial`` counts the rows of
        record ``wal_end + 1`` this and earlier writes stored (a record split at a row group)."""

    def wal_position(self) -> tuple[int, int]:
        """The highest ``(wal_end, partial)`` durably written; ``(0, 0)`` for an empty store."""

    def columns(self, scope: Scope) -> list[ColumnInfo]:
        """Every query-visible column with data in the scope (fixed ones first), each name once:
        a name stored in several typed columns (a key seen with two value types, or a well-known
        name beside attributes of that name) is listed with the type queries read it as
        (``schema.read_type``)."""

    def run_query(
        self, scope: Scope, spec: QuerySpec, now_s: int, include_series: bool = True
    ) -> QueryData:
        """Run a validated Honeycomb query spec. MUST weight COUNT-like results by samplerate."""

    def get_trace(self, env_id: int, trace_id: bytes) -> list[dict[str, Any]]:
        """All rows of one trace (any dataset of the environment), as query-name dicts."""

    def search_traces(
        self,
        scope: Scope,
        spec: QuerySpec,
        trace_filters: list[dict[str, Any]],
        now_s: int,
        limit: int,
    ) -> list[TraceSummary]:
        """Traces with at least one row matching ``spec.filters`` in the time window, whose
        trace-level fields match ``trace_filters`` (``duration_ms``, ``root.name``,
        ``root.service.name``, ``service.name`` (any service touched), ``span_count``,
        ``error``). At most ``limit`` of them, MUST be ordered by trace start descending, then
        trace id ascending (the same order on every engine, so pages and tests agree)."""

    def delete_before(self, env_id: int, ts_ns: int) -> int:
        """Retention: remove rows older than ``ts_ns``; returns the count removed."""

    def resolve(self, name: str, scope: Scope | None = None) -> Any:
        """A query name -> the engine's column description, or None when unknown.

        Resolution is per scope, like ``columns``: fixed (well-known) names are always known; an
        attribute name is known only if a dataset of the scope wrote it (``dataset_ids=None``: any
        dataset of the environment), and only the value types written there count. So a query
        of one environment gets "unknown column" for a name only another environment wrote
        (it must not learn other environments' field names), and ``run_query`` /
        ``search_traces`` MUST resolve within their scope. A well-known name that the scope
        also wrote as an attribute (a value the fixed column could not take) reads both: the
        fixed value where set, else the attribute's. ``scope=None`` means the whole store (tools
        and benchmarks only)."""

    def checkpoint(self) -> None:
        """Make written data compact on disk (no-op where the engine does it itself)."""

    def close(self) -> None:
        """Flush and release the engine."""
