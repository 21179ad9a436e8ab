"""The embedded store: one DuckDB file under the data dir (``store.duckdb``).

Writes come from a single writer thread (the pipeline's); reads use their own cursors, so queries
run concurrently with ingest (DuckDB's MVCC). See ``storage/schema.py`` for the table design.

Query names resolve per scope: the attribute columns a scope knows are those its datasets wrote
(``dataset_columns``, mirrored in memory and cached per scope until a write adds a column to that
environment), so an environment never learns another's field names. The physical ``a<N>``
columns themselves are shared by every environment.
"""

from __future__ import annotations

import contextlib
import threading
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tracehive.model.batch import MetricBatch
from tracehive.storage.api import QueryData, Scope, StorageError, TraceSummary
from tracehive.storage.arrow import split_attr_field
from tracehive.storage.duckdb import trace_ids
from tracehive.storage.duckdb.compile import Resolved
from tracehive.storage.duckdb.trace_index import rebuild_sql, trace_key, trace_keys
from tracehive.storage.schema import (
    ATTR_SQL_TYPE,
    FIXED,
    PHYSICAL_FIXED,
    AttrColumn,
    ColumnInfo,
    read_type,
)

#: Beyond this many attribute columns new keys are dropped (and counted) rather than widening the
#: table further; DuckDB handles wide tables, but each column costs per row group.
MAX_ATTR_COLUMNS = 4000

#: Scopes whose resolved names are cached (a query's scope is one dataset or ``__all__``).
MAX_CACHED_SCOPES = 1024

#: Block size of a new store file (see ``DuckDBStore.__init__``).
BLOCK_SIZE = 64 * 1024
#: The store's schema version; older ones are migrated on open (``_migrate``).
SCHEMA_VERSION = 4

if TYPE_CHECKING:
    from collections.abc import Callable

    from tracehive.query.spec import QuerySpec

ScopeKey = tuple[int, tuple[int, ...] | None]


class DuckDBStore:
    """``storage.api.Store`` on an embedded DuckDB database."""

    def __init__(self, path: Path | str, *, memory_limit: str = "512MB", threads: int = 2):
        self.path = str(path)
        try:
            self._con = duckdb.connect(
                self.path,
                config={
                    "memory_limit": memory_limit,
                    "threads": threads,
                    # Fewer, larger checkpoints: appends run ~2x faster (MEASUREMENTS.md).
                    "checkpoint_threshold": "128MB",
                    # Lets DuckDB parallelize and compress appends better (measured: ~1.4x
                    # faster, fewer bytes); queries never rely on physical row order.
                    "preserve_insertion_order": False,
                    # New files only (a file keeps the block size it was created with). 64 KiB
                    # blocks waste less at the ends of column segments: -2.8 B/span on both
                    # bench payloads vs the default 256 KiB; 32 KiB and smaller cost +13 B.
                    "default_block_size": str(BLOCK_SIZE),
                },
            )
        except duckdb.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        self._write_lock = threading.Lock()
        try:
            self._create_schema()
        except BaseException:
            self._con.close()  # a refused or failed store is not left open (nor locked)
            raise
        self._attr_by_field: dict[str, AttrColumn] = {}
        self._attr_by_name: dict[str, list[AttrColumn]] = {}
        self._attr_ids: dict[str, int] = {}
        self._attr_by_id: dict[int, AttrColumn] = {}
        self._load_attr_columns()
        # dataset_columns in memory: env -> dataset -> ids of the attribute columns written there.
        # Only the writer thread adds to it (after its commit), under _names_lock.
        self._written: dict[int, dict[int, set[int]]] = {}
        # scope -> attribute name -> its typed columns written in the scope (ids ascending)
        self._scoped_names: dict[ScopeKey, dict[str, tuple[AttrColumn, ...]]] = {}
        self._names_lock = threading.Lock()
        self._load_dataset_columns()
        self.dropped_attr_values = 0

    # -- schema -----------------------------------------------------------------------------
    def _create_schema(self) -> None:
        cols = ", ".join(f"{name} {type_}" for name, type_ in PHYSICAL_FIXED)
        self._con.execute(f"CREATE TABLE IF NOT EXISTS events ({cols})")
        ddl = resources.files("tracehive.storage.duckdb").joinpath("ddl.sql").read_text()
        self._con.execute(ddl)
        (version,) = self._con.execute(
            "SELECT value FROM store_state WHERE key = 'schema_version'"
        ).fetchone()  # type: ignore[misc]
        if version != SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Schemas 1-3 kept trace ids as BLOBs (now UHUGEINT, trace_ids.py); 1 and 2 had trace
        index keys of another width (rebuilt). One transaction: a failed migration leaves the
        store as it was."""
        if version not in (1, 2, 3):
            raise StorageError(f"{self.path}: store schema version {version} is not supported")
        con = self._con
        con.execute("BEGIN")
        try:
            con.execute(
                f"ALTER TABLE events ALTER COLUMN trace_id SET DATA TYPE {trace_ids.SQL_TYPE} "
                f"USING {trace_ids.FROM_BLOB_SQL}"
            )
            if version in (1, 2):
                for sql in rebuild_sql():
                    con.execute(sql)
            con.execute(
                "UPDATE store_state SET value = ? WHERE key = 'schema_version'", [SCHEMA_VERSION]
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StorageError(
                f"{self.path}: migrating the store from schema {version} failed "
                f"(the store is unchanged): {exc}"
            ) from exc

    def _load_attr_columns(self) -> None:
        rows = self._con.execute(
            "SELECT id, key, attr_type, physical FROM attr_columns ORDER BY id"
        ).fetchall()
        for id_, key, attr_type, physical in rows:
            self._remember(id_, AttrColumn(key, physical, attr_type))

    def _load_dataset_columns(self) -> None:
        rows = self._con.execute("SELECT env_id, dataset_id, column_id FROM dataset_columns")
        for env_id, dataset_id, column_id in rows.fetchall():
            self._written.setdefault(env_id, {}).setdefault(dataset_id, set()).add(column_id)

    def _remember(self, id_: int, col: AttrColumn) -> None:
        field = f"{col.attr_type}:{col.name}"
        self._attr_by_field[field] = col
        self._attr_ids[field] = id_
        self._attr_by_id[id_] = col
        self._attr_by_name.setdefault(col.name, []).append(col)

    def _add_attr_columns(self, fields: list[str]) -> None:
        """Add a typed physical column per new attribute field (``"s:http.method"``)."""
        next_id = len(self._attr_ids) + 1
        for field in fields:
            if next_id > MAX_ATTR_COLUMNS:
                return
            key, attr_type = split_attr_field(field)  # type: ignore[misc]
            physical = f"a{next_id}"
            self._con.execute(
                f"ALTER TABLE events ADD COLUMN {physical} {ATTR_SQL_TYPE[attr_type]}"
            )
            self._con.execute(
                "INSERT INTO attr_columns VALUES (?, ?, ?, ?)", [next_id, key, attr_type, physical]
            )
            self._remember(next_id, AttrColumn(key, physical, attr_type))
            next_id += 1

    # -- writes -----------------------------------------------------------------------------
    def write(
        self,
        table: pa.Table | None,
        metrics: list[tuple[int, list[int], MetricBatch]],
        wal_end: int,
        partial: int = 0,
    ) -> None:
        """Append events (an Arrow table shaped by ``storage.arrow.to_arrow``) and metric points,
        and record ``wal_end``, all in one transaction (exactly-once replay depends on it)."""
        with self._write_lock:
            try:
                self._write(table, metrics, wal_end, partial)
            except duckdb.Error as exc:
                try:
                    self._con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise StorageError(str(exc)) from exc

    def _write(
        self,
        table: pa.Table | None,
        metrics: list[tuple[int, list[int], MetricBatch]],
        wal_end: int,
        partial: int,
    ) -> None:
        con = self._con
        if table is None or table.num_rows == 0:
            con.execute("BEGIN")
            for env_id, dataset_ids, batch in metrics:
                self._insert_metrics(env_id, dataset_ids, batch)
            self._set_position(wal_end, partial)
            con.execute("COMMIT")
            return
        new = [
            f
            for f in table.column_names
            if split_attr_field(f) is not None and f not in self._attr_by_field
        ]
        if new:
            self._add_attr_columns(new)
        keep, physical = [], []
        for i, f in enumerate(table.column_names):
            if split_attr_field(f) is None:
                keep.append(i)
                physical.append(f)
            elif f in self._attr_by_field:
                keep.append(i)
                physical.append(self._attr_by_field[f].physical)
            else:
                self.dropped_attr_values += table.column(i).length() - table.column(i).null_count
        seq = int(self._con.execute("SELECT value FROM store_state WHERE key='seq'").fetchone()[0])
        seq += 1
        t = table.select(keep).rename_columns(physical)
        t = t.append_column("seq", pa.array(np.full(t.num_rows, seq, dtype=np.uint64)))
        hi, lo = trace_ids.split(t.column("trace_id"))
        t = t.drop_columns(["trace_id"]).append_column(trace_ids.HI, hi)
        t = t.append_column(trace_ids.LO, lo)
        keys = trace_keys(hi)
        now_ns = time.time_ns()
        ds_cols = self._dataset_column_rows(table, now_ns)
        con.execute("BEGIN")
        for env_id, dataset_ids, batch in metrics:
            self._insert_metrics(env_id, dataset_ids, batch)
        con.register("_incoming", t)
        try:
            con.execute(INSERT_EVENTS_SQL)
        finally:
            # in an aborted transaction unregister fails too; keep the insert's error, not that
            with contextlib.suppress(duckdb.Error):
                con.unregister("_incoming")
        if len(keys):
            tk = pa.table({"trace_key": keys, "seq": np.full(len(keys), seq, np.uint64)})
            con.register("_tk", tk)
            con.execute("INSERT INTO trace_index SELECT * FROM _tk")
            con.unregister("_tk")
        if ds_cols:
            con.executemany(
                "INSERT INTO dataset_columns VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE "
                "SET last_written_ns = excluded.last_written_ns",
                ds_cols,
            )
        con.execute("UPDATE store_state SET value = ? WHERE key = 'seq'", [seq])
        self._set_position(wal_end, partial)
        con.execute("COMMIT")
        self._note_written(ds_cols)

    def _note_written(self, ds_cols: list[tuple[int, int, int, int]]) -> None:
        """Record committed (env, dataset, column) rows; a new one drops its environment's cached
        name maps (rare: once per new key and dataset)."""
        new = [r for r in ds_cols if r[2] not in self._written.get(r[0], {}).get(r[1], ())]
        if not new:
            return
        with self._names_lock:
            for env_id, dataset_id, column_id, _ in new:
                self._written.setdefault(env_id, {}).setdefault(dataset_id, set()).add(column_id)
            envs = {r[0] for r in new}
            self._scoped_names = {k: v for k, v in self._scoped_names.items() if k[0] not in envs}

    def _dataset_column_rows(self, table: pa.Table, now_ns: int) -> list[tuple[int, int, int, int]]:
        """(env, dataset, column id, now) for attribute columns written per dataset. Only those
        not recorded yet (``_written``), plus a refresh of last_written once a minute."""
        pairs = pc.unique(
            pc.add(
                pc.multiply(pc.cast(table.column("env_id"), pa.uint64()), 2**32),
                pc.cast(table.column("dataset_id"), pa.uint64()),
            )
        ).to_pylist()
        out = []
        # (a store opened on existing data refreshes on its first write: its _written came from
        # the table, not from writes of this process)
        refresh = (now_ns // 60_000_000_000) != getattr(self, "_last_refresh_min", None)
        self._last_refresh_min = now_ns // 60_000_000_000
        for pair in pairs:
            env_id, dataset_id = pair >> 32, pair & 0xFFFFFFFF
            mask = None
            if len(pairs) > 1:
                mask = pc.and_(
                    pc.equal(table.column("env_id"), env_id),
                    pc.equal(table.column("dataset_id"), dataset_id),
                )
            for f in table.column_names:
                col_id = self._attr_ids.get(f)
                if col_id is None:
                    continue
                if not refresh and col_id in self._written.get(env_id, {}).get(dataset_id, ()):
                    continue
                column = table.column(f)
                if mask is not None:
                    column = pc.filter(column, mask)
                if column.null_count < len(column):
                    out.append((env_id, dataset_id, col_id, now_ns))
        return out

    def _insert_metrics(self, env_id: int, dataset_ids: list[int], metrics: MetricBatch) -> None:
        rows = [
            (
                env_id,
                ds,
                p.ts_ns,
                p.start_ts_ns,
                p.name,
                p.kind,
                p.service,
                p.unit,
                p.description,
                p.value,
                p.is_monotonic,
                p.temporality,
                p.count,
                p.sum,
                p.min,
                p.max,
                p.bucket_counts,
                p.explicit_bounds,
                p.scale,
                p.zero_count,
                p.positive_offset,
                p.positive_counts,
                p.negative_offset,
                p.negative_counts,
                [{"q": q, "v": v} for q, v in p.quantiles] if p.quantiles is not None else None,
                orjson.dumps(p.attributes, default=str).decode(),
            )
            for p, ds in zip(metrics.points, dataset_ids, strict=True)
        ]
        if rows:
            self._con.executemany(
                "INSERT INTO metric_points VALUES (" + ", ".join(["?"] * 26) + ")", rows
            )

    def _set_position(self, wal_end: int, partial: int) -> None:
        """Record the WAL position, never moving it back (an older write may come late)."""
        lsn, old_partial = self.wal_position()
        if (wal_end, partial) > (lsn, old_partial):
            self._con.execute(
                "UPDATE store_state SET value = CASE key WHEN 'wal_position' THEN ? ELSE ? END "
                "WHERE key IN ('wal_position', 'wal_partial')",
                [wal_end, partial],
            )

    def wal_position(self) -> tuple[int, int]:
        rows = dict(
            self._con.cursor()
            .execute(
                "SELECT key, value FROM store_state WHERE key IN ('wal_position', 'wal_partial')"
            )
            .fetchall()
        )
        return int(rows.get("wal_position", 0)), int(rows.get("wal_partial", 0))

    # -- reads ------------------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    def resolver(self, scope: Scope | None) -> Callable[[str], Resolved | None]:
        """``resolve`` bound to a scope (the name map is looked up once, not per name)."""
        attrs = self._attr_by_name if scope is None else self._names_in(scope)

        def resolve(name: str) -> Resolved | None:
            fixed = FIXED.get(name)
            cols = attrs.get(name)
            if not cols:
                return fixed
            return [fixed, *cols] if fixed is not None else list(cols)

        return resolve

    def resolve(self, name: str, scope: Scope | None = None) -> Resolved | None:
        """A query name -> its fixed column, or its typed columns (a fixed one first: see
        ``compile``), or None. Attribute columns count only where the scope wrote them;
        ``scope=None`` is the whole store (tools and benchmarks, never a user's query)."""
        return self.resolver(scope)(name)

    def _names_in(self, scope: Scope) -> dict[str, tuple[AttrColumn, ...]]:
        ids = scope.dataset_ids
        key: ScopeKey = (scope.env_id, None if ids is None else tuple(sorted(set(ids))))
        names = self._scoped_names.get(key)
        if names is not None:
            return names
        with self._names_lock:  # built and cached atomically with respect to _note_written
            names = self._scoped_names.get(key)
            if names is None:
                col_ids: set[int] = set()
                for dataset_id, cols in self._written.get(scope.env_id, {}).items():
                    if ids is None or dataset_id in ids:
                        col_ids |= cols
                by_name: dict[str, list[AttrColumn]] = {}
                for col_id in sorted(col_ids):
                    col = self._attr_by_id.get(col_id)
                    if col is not None:
                        by_name.setdefault(col.name, []).append(col)
                names = {k: tuple(v) for k, v in by_name.items()}
                if len(self._scoped_names) >= MAX_CACHED_SCOPES:
                    self._scoped_names = {}
                self._scoped_names[key] = names
        return names

    def columns(self, scope: Scope) -> list[ColumnInfo]:
        """Fixed columns first, then each attribute name once. A name with several typed
        columns (two value types, or a well-known name beside attributes of that name) is listed
        once, with the type queries read it as (``schema.read_type``)."""
        sql = (
            "SELECT column_id, max(last_written_ns) FROM dataset_columns WHERE env_id = ?"
            + _dataset_filter(scope)
            + " GROUP BY column_id ORDER BY column_id"
        )
        attrs: dict[str, list[AttrColumn]] = {}
        last: dict[str, int] = {}
        for col_id, written in self.cursor().execute(sql, _scope_params(scope)).fetchall():
            col = self._attr_by_id.get(col_id)
            if col is None:
                continue
            attrs.setdefault(col.name, []).append(col)
            last[col.name] = max(written, last.get(col.name, 0))
        out = []
        for c in FIXED.values():
            also = attrs.pop(c.name, None)
            if also:
                out.append(ColumnInfo(c.name, read_type([c, *also]), True, last[c.name]))
            else:
                out.append(ColumnInfo(c.name, c.type, True))
        out += [ColumnInfo(n, read_type(cols), False, last[n]) for n, cols in attrs.items()]
        return out

    def run_query(
        self, scope: Scope, spec: QuerySpec, now_s: int, include_series: bool = True
    ) -> QueryData:
        from tracehive.storage.duckdb.query import run_query

        return run_query(self.cursor(), scope, spec, self.resolver(scope), now_s, include_series)

    def search_traces(
        self,
        scope: Scope,
        spec: QuerySpec,
        trace_filters: list[dict[str, Any]],
        now_s: int,
        limit: int,
    ) -> list[TraceSummary]:
        from tracehive.storage.duckdb.traces import search_traces

        return search_traces(
            self.cursor(), scope, spec, trace_filters, self.resolver(scope), now_s, limit
        )

    def get_trace(self, env_id: int, trace_id: bytes) -> list[dict[str, Any]]:
        """Every row of the trace, with query names (fixed) and attribute names as keys."""
        cur = self.cursor()
        key = trace_key(trace_id)
        seqs = [
            r[0]
            for r in cur.execute(
                "SELECT DISTINCT seq FROM trace_index WHERE trace_key = ?", [key]
            ).fetchall()
        ]
        if not seqs:
            return []
        seq_filter = " OR ".join(["seq = ?"] * len(seqs))
        attrs = [c for cols in self._attr_by_name.values() for c in cols]
        select = ", ".join(
            ["dataset_id", "signal", "ts_ns", "dur_ns", "span_id", "parent_id"]
            + [f'{c.sql()} AS "{n}"' for n, c in FIXED.items() if n not in _TRACE_RAW]
            + [c.physical for c in attrs]
        )
        sql = (
            f"SELECT {select} FROM events WHERE env_id = ? AND ({seq_filter}) "
            f"AND trace_id = {trace_ids.param_sql('?')} "
            "ORDER BY ts_ns"
        )
        rel = cur.execute(sql, [env_id, *seqs, trace_ids.to_int(trace_id)])
        names = [d[0] for d in rel.description]
        physical_to_attr = {c.physical: c for c in attrs}
        out = []
        for row in rel.fetchall():
            rec: dict[str, Any] = {"attributes": {}}
            for name, value in zip(names, row, strict=True):
                col = physical_to_attr.get(name)
                if col is None:
                    rec[name] = value
                elif value is not None:
                    rec["attributes"][col.name] = value
            out.append(rec)
        return out

    # -- maintenance ------------------------------------------------------------------------
    def delete_before(self, env_id: int, ts_ns: int) -> int:
        with self._write_lock:
            cur = self._con.cursor()
            n = cur.execute(
                "DELETE FROM events WHERE env_id = ? AND ts_ns < ?", [env_id, ts_ns]
            ).fetchone()[0]
            cur.execute("DELETE FROM metric_points WHERE env_id = ? AND ts_ns < ?", [env_id, ts_ns])
            # trace_index rows whose seq no longer has events are harmless (the lookup finds no
            # rows); they are trimmed when no event of that seq remains.
            cur.execute(
                "DELETE FROM trace_index WHERE seq < (SELECT coalesce(min(seq), 0) FROM events)"
            )
            return int(n)

    def checkpoint(self) -> None:
        with self._write_lock:
            self._con.execute("CHECKPOINT")

    def close(self) -> None:
        with self._write_lock:
            try:
                self._con.execute("CHECKPOINT")
            finally:
                self._con.close()


_TRACE_RAW = {"duration_ms"}

# Each row group's rows clustered by dataset, then by trace, traces in order of their first row's
# time: a trace's id and parent ids repeat (RLE), its rows sit together for trace reads, and ts_ns
# grows nearly monotonically, so DuckDB bit-packs its deltas. Measured (bench/ingest_otlp.py, both
# payloads): trace order saves 4 B/span against arrival or time order, the dataset first 0.4,
# traces by their start 1.0. (A window ``min() OVER (PARTITION BY trace)`` costs ~25% more CPU per
# write than this aggregate and join.)
INSERT_EVENTS_SQL = f"""
INSERT INTO events BY NAME
WITH rows AS (
    SELECT * EXCLUDE ({trace_ids.HI}, {trace_ids.LO}), {trace_ids.JOIN_SQL} AS trace_id
    FROM _incoming
), starts AS (
    SELECT trace_id, min(ts_ns) AS trace_start FROM rows WHERE trace_id IS NOT NULL
    GROUP BY trace_id
)
SELECT rows.* FROM rows LEFT JOIN starts USING (trace_id)
ORDER BY env_id, dataset_id, coalesce(trace_start, ts_ns), trace_id, ts_ns
"""


def _dataset_filter(scope: Scope) -> str:
    if scope.dataset_ids is None:
        return ""
    if not scope.dataset_ids:
        return " AND false"
    return " AND dataset_id IN (" + ", ".join(["?"] * len(scope.dataset_ids)) + ")"


def _scope_params(scope: Scope) -> list[int]:
    return [scope.env_id, *(scope.dataset_ids or ())]
