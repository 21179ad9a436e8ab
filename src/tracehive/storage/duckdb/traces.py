"""Trace search: traces with a row matching the spec's filters, summarized and filtered by
trace-level fields.

What it answers. A trace matches when at least one of its rows in the scope and time window passes
``spec.filters`` (``filter_combination``). Its summary covers every row of the trace in the
environment (any dataset) within the window: ``start_ns`` the earliest span (any row if it has no
span), ``duration_ms`` from that start to the latest span end, ``span_count`` (signal ``span``),
``error`` (any row with error), the root (the span without a parent, else the earliest span) and
the services touched. ``trace_filters`` then test those fields with the spec's filter ops
(``service.name`` = any service touched). Newest first (``start_ns`` descending, then trace id),
at most ``limit``.

How, without summarizing every trace of the window (docs/PERFORMANCE.md, "Trace search"):

1. **Candidates, newest first.** Matching rows are read in time slices going back from the window
   end (``ts_ns`` zone maps skip the rest of the table); a slice yields the matching trace ids
   and, per trace, the earliest matching ``span``/``link`` row. That time bounds the trace's start
   from above (a trace's start is its earliest span in the window, and a link row carries its
   span's start); a trace matched only through other rows (logs, span events, events-API rows)
   gets no bound (the window end). The first slice is 1/1024 of the window; the next ones are
   sized from the density seen so far, and grow geometrically while they come back empty.
2. **Summaries of a few candidates.** The candidates with the highest bound are summarized in a
   batch: the trace index (``trace_index.py``: id prefix -> write batches) gives their
   ``seq`` values, and the summary reads only the row groups of those writes (``seq`` zone maps),
   every row of those traces in the environment and window. Trace filters apply here (when they
   test only duration, span count or error, on those cheap aggregates first, and the full summary
   is computed for the passing traces only); the batch size follows the pass rate seen so far.
3. **Final when nothing unseen can outrank it.** A summarized trace is final once its start is
   later than every pending candidate's bound and than the scanned slice's lower edge (a trace
   with no matching row there starts earlier). The loop scans or summarizes until ``limit`` traces
   are final or the window is exhausted; slice and batch sizes grow geometrically (each capped),
   so the number of statements stays logarithmic and a search that must read the whole window
   does it in time-local batches of bounded size.
4. **Check for late spans.** A trace matched only by non-span rows older than the scanned slice
   could still start later than the results (its spans come after its logs, or its earlier spans
   precede the window). Such a trace has a span after the last result's start, so its write
   batches are found through the trace index from the batches holding those recent spans; only
   those batches are searched for old non-span matches, and any trace found is summarized like
   the others. Without filters and dataset scope every trace's spans match, so the check is
   skipped; on span-only data zone maps on ``signal`` end it in one cheap statement.

Everything runs in one read transaction, so the statements see one snapshot.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from tracehive.query.spec import QuerySpec, SpecError
from tracehive.query.spec_parse import parse_filter
from tracehive.storage.api import Scope, TraceSummary
from tracehive.storage.duckdb import trace_ids
from tracehive.storage.duckdb.compile import (
    Params,
    Resolver,
    compile_filter,
    compile_filters,
    scope_where,
)
from tracehive.storage.duckdb.dialect import NEGATED, STRING_OPS
from tracehive.storage.duckdb.source import execute
from tracehive.storage.duckdb.trace_index import keys_of
from tracehive.storage.schema import FixedColumn

log = logging.getLogger(__name__)

NS = 1_000_000_000

#: Trace-level fields as columns of the summary relation (plain literals: values as users see).
SUMMARY_FIELDS: dict[str, FixedColumn] = {
    "duration_ms": FixedColumn("duration_ms", "duration_ms", "{c}", "float"),
    "span_count": FixedColumn("span_count", "span_count", "{c}", "integer"),
    "error": FixedColumn("error", "error", "{c}", "boolean"),
    "root.name": FixedColumn("root.name", "root_name", "{c}", "string"),
    "root.service.name": FixedColumn("root.service.name", "root_service", "{c}", "string"),
}
TRACE_FILTER_FIELDS = (*SUMMARY_FIELDS, "service.name")

SPAN = "signal = 'span'"
#: Rows whose time is never before their trace's start (a link row carries its span's start).
ANCHOR = "signal IN ('span', 'link')"
START_SQL = f"coalesce(min(ts_ns) FILTER (WHERE {SPAN}), min(ts_ns))"
#: The root span: a span without parent first, then the earliest, then the lowest span id, so
#: the root's service and name always come from the same span.
ROOT_ORDER = "{'r': parent_id IS NOT NULL, 't': ts_ns, 's': span_id}"
#: The summary columns: the first four are cheap, the others cost more per trace.
SUMMARY_COLUMNS = {
    "start_ns": START_SQL,
    "duration_ms": f"""coalesce((max(ts_ns + dur_ns) FILTER (WHERE {SPAN})
                     - min(ts_ns) FILTER (WHERE {SPAN})) / 1e6, 0.0)""",
    "span_count": f"count(*) FILTER (WHERE {SPAN})",
    "error": "coalesce(bool_or(error), FALSE)",
    "root_service": f"arg_min(service, {ROOT_ORDER}) FILTER (WHERE {SPAN})",
    "root_name": f"arg_min(name, {ROOT_ORDER}) FILTER (WHERE {SPAN})",
    "services": "list(DISTINCT service ORDER BY service) FILTER (WHERE service IS NOT NULL)",
}
CHEAP_COLUMNS = ("start_ns", "duration_ms", "span_count", "error")
#: Trace filters on these fields are tested on the cheap columns first (``_Search.prefilter``).
CHEAP_FIELDS = {"duration_ms", "span_count", "error"}


def _summary_sql(columns: Iterable[str]) -> str:
    return (
        f"SELECT {trace_ids.as_bytes()} AS tid, "
        + ", ".join(f"{SUMMARY_COLUMNS[c]} AS {c}" for c in columns)
        + " FROM events"
    )


SUMMARY_SQL = _summary_sql(SUMMARY_COLUMNS)

#: The first slice is this fraction of the window (at least ``MIN_SLICE_NS``); later slices are
#: sized from the candidate density seen so far.
FIRST_SLICE_FRACTION = 1024
MIN_SLICE_NS = NS
#: Bounds on one statement's work: candidates expected from a slice, traces per summary batch,
#: and how fast a batch may grow when few traces pass the trace filters.
MAX_SLICE_CANDIDATES = 50_000
MAX_SCAN_GROWTH = 3  # a slice is at most this many times what was scanned before it
MAX_BATCH = 20_000
MAX_BATCH_GROWTH = 8


def search_traces(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    spec: QuerySpec,
    trace_filters: list[dict[str, Any]],
    resolve: Resolver,
    now_s: int,
    limit: int,
) -> list[TraceSummary]:
    if not isinstance(trace_filters, list):
        raise SpecError("must be a list", "trace_filters")
    start_s, end_s = spec.window(now_s)
    params = Params()
    matched = [*scope_where(scope, start_s * NS, end_s * NS, params), "trace_id IS NOT NULL"]
    filters = compile_filters(spec.filters, spec.filter_combination, resolve, params, "filters")
    if filters:
        matched.append(filters)
    having = [_trace_filter(f, i, params) for i, f in enumerate(trace_filters)]
    fields = {f["column"] for f in trace_filters}  # valid filters: _trace_filter checked them
    search = _Search(
        con,
        params,
        env_id=scope.env_id,
        window=(start_s * NS, end_s * NS),
        matched=" AND ".join(matched),
        having=" AND ".join(having) if having else "TRUE",
        # Without filters and dataset scope every span matches, so a trace's matches bound its
        # start; otherwise a trace matched only by older non-span rows needs the final check.
        check_late_spans=bool(filters) or scope.dataset_ids is not None,
        pass_prior=0.5 if having else 1.0,
        prefilter=bool(having) and fields <= CHEAP_FIELDS,
    )
    if limit < 1:
        return []
    con.execute("BEGIN TRANSACTION")
    try:
        return search.run(int(limit))
    finally:
        con.execute("ROLLBACK")


class _Search:
    """The state of one search: the scanned slice ``[lo, end)``, pending candidates with their
    start bounds, summarized traces and the ones that passed the trace filters."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        params: Params,
        *,
        env_id: int,
        window: tuple[int, int],
        matched: str,
        having: str,
        check_late_spans: bool,
        pass_prior: float,
        prefilter: bool,
    ) -> None:
        self.con = con
        self.params = params
        self.env = params(env_id)
        self.w0, self.w1 = window
        self.matched = matched
        self.having = having
        self.check_late_spans = check_late_spans
        self.pass_prior = pass_prior
        self.prefilter = prefilter  # test the trace filters on the cheap columns first
        self.lo = self.w1  # [lo, w1) has been scanned
        self.found = 0  # candidates found in [lo, w1) (a trace found in two slices: twice)
        self.last_found = 0  # ... in the last slice
        self.pending: dict[bytes, int] = {}  # trace id -> upper bound of its start
        self.seen: set[bytes] = set()  # summarized
        self.passed: list[TraceSummary] = []
        self.batch = 0
        self.checked_lo: int | None = None

    # -- the loop ---------------------------------------------------------------------------
    def run(self, limit: int) -> list[TraceSummary]:
        while True:
            self.passed.sort(key=lambda t: (-t.start_ns, t.trace_id))
            final = self._final_count()
            if final >= limit or (self.lo <= self.w0 and not self.pending):
                if final >= limit and self._check(self.passed[limit - 1].start_ns):
                    continue
                return self.passed[:limit]
            rate = self._pass_rate()
            batch = self._batch_size(limit - final, rate)
            # Scan further back only when the pending candidates cannot fill the page.
            short = math.ceil((limit - len(self.passed)) / rate) - len(self.pending)
            if self.lo > self.w0 and (not self.pending or short > 0):
                self._scan(max(short, batch - len(self.pending), 1))
            else:
                self._summarize(batch)

    def _final_count(self) -> int:
        """How many leading traces of ``passed`` no unseen or pending trace can outrank."""
        bounds = [self.lo - 1] if self.lo > self.w0 else []
        if self.pending:
            bounds.append(max(self.pending.values()))
        if not bounds:
            return len(self.passed)
        bound = max(bounds)
        n = 0
        for t in self.passed:
            if t.start_ns <= bound:
                break
            n += 1
        return n

    def _pass_rate(self) -> float:
        """The fraction of summarized traces passing the trace filters (a prior at first)."""
        if not self.seen:
            return self.pass_prior
        return min(max(len(self.passed), 1) / len(self.seen), 1.0)

    def _batch_size(self, want: int, rate: float) -> int:
        """Traces to summarize next: enough for ``want`` passes at ``rate``, with a margin."""
        size = math.ceil(want / rate * 1.25) + 4
        if self.batch:
            size = min(size, self.batch * MAX_BATCH_GROWTH)
        return max(1, min(size, MAX_BATCH))

    # -- step 1: candidates from a time slice -----------------------------------------------
    def _scan(self, needed: int) -> None:
        """Scan the next slice back from ``lo``: long enough for ``needed`` more candidates at
        the density seen so far, growing geometrically while slices come back empty."""
        scanned, left = self.w1 - self.lo, self.lo - self.w0
        first = max((self.w1 - self.w0) // FIRST_SLICE_FRACTION, MIN_SLICE_NS)
        if not scanned:
            length = first
        elif not self.last_found:
            length = scanned * MAX_SCAN_GROWTH
        else:
            density = self.found / scanned  # candidates per ns so far
            length = min(max(int(needed / density * 1.25), first), scanned * MAX_SCAN_GROWTH)
            length = min(length, int(MAX_SLICE_CANDIDATES / density))
        length = max(min(length, left), 1)
        hi, lo = self.lo, self.lo - length
        if lo - self.w0 < length // 4:  # do not leave a sliver for another statement
            lo = self.w0
        p = self.params
        sql = (
            f"SELECT {trace_ids.as_bytes()}, min(ts_ns) FILTER (WHERE {ANCHOR}) FROM events "
            f"WHERE {self.matched} AND ts_ns >= {p(lo)} AND ts_ns < {p(hi)} GROUP BY trace_id"
        )
        rows = execute(self.con, sql, p).fetchall()
        self.found += len(rows)
        self.last_found = len(rows)
        for tid, first in rows:
            tid = bytes(tid)
            if tid in self.seen:
                continue
            bound = self.w1 if first is None else int(first)
            old = self.pending.get(tid)
            self.pending[tid] = bound if old is None else min(old, bound)
        self.lo = lo

    # -- step 2: summaries of the best pending candidates ------------------------------------
    def _summarize(self, size: int) -> None:
        ranked = sorted(self.pending.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
        ids = [tid for tid, _ in ranked]
        for tid in ids:
            del self.pending[tid]
        self.seen.update(ids)
        self.batch = max(self.batch, len(ids))
        with _registered(self.con, CANDIDATES, _id_table(ids)):
            seqs = [
                int(r[0])
                for r in self.con.execute(
                    f"SELECT DISTINCT seq FROM trace_index "
                    f"WHERE trace_key IN (SELECT trace_key FROM {CANDIDATES})"
                ).fetchall()
            ]
            found, rows = self._summaries(_seq_filter(seqs)) if seqs else (0, [])
            if found < len(ids):  # a trace not in the index (should not happen): no seq
                _index_gap("a candidate trace has no trace_index row")
                found, rows = self._summaries("TRUE")  # filter, the whole window
        for r in rows:
            self.passed.append(
                TraceSummary(
                    bytes(r[0]),
                    int(r[1]),
                    float(r[2]),
                    int(r[3]),
                    bool(r[4]),
                    r[5],
                    r[6],
                    list(r[7] or []),
                )
            )

    def _summaries(self, seq_filter: str) -> tuple[int, list[tuple[Any, ...]]]:
        """How many of the candidates were found, and the summaries of those that pass."""
        p = self.params
        where = (
            f"env_id = {self.env} AND ts_ns >= {p(self.w0)} AND ts_ns < {p(self.w1)} "
            f"AND {seq_filter} AND trace_id IN (SELECT {trace_ids.JOIN_SQL} FROM {{ids}})"
        )
        passes = f"coalesce({self.having}, FALSE)"
        names = ", ".join(SUMMARY_COLUMNS)
        if not self.prefilter:
            sql = (
                f"WITH s AS ({SUMMARY_SQL} WHERE {where.format(ids=CANDIDATES)} "
                f"GROUP BY trace_id) SELECT tid, {names}, {passes} FROM s"
            )
            rows = execute(self.con, sql, p).fetchall()
            return len(rows), [r[:-1] for r in rows if r[-1]]
        # Trace filters on cheap columns only: test them first, summarize the passing traces.
        sql = (
            f"WITH s AS ({_summary_sql(CHEAP_COLUMNS)} WHERE {where.format(ids=CANDIDATES)} "
            f"GROUP BY trace_id) SELECT tid, {passes} FROM s"
        )
        tested = execute(self.con, sql, p).fetchall()
        keep = [bytes(r[0]) for r in tested if r[1]]
        if not keep:
            return len(tested), []
        with _registered(self.con, PASSING, trace_ids.id_table(keep)):
            sql = f"{SUMMARY_SQL} WHERE {where.format(ids=PASSING)} GROUP BY trace_id"
            return len(tested), execute(self.con, sql, p).fetchall()

    # -- step 4: traces matched only by older non-span rows --------------------------------
    def _check(self, last_start: int) -> bool:
        """Add as pending any unseen trace matched only by non-span rows before ``lo`` that has
        a span at or after ``last_start`` (it could outrank the results). True if any.

        Such a trace has a row in a write batch (seq) holding a span at or after
        ``last_start``, so the trace index leads from those recent batches to every batch of
        their traces; only those batches are searched for the old non-span matches."""
        if not self.check_late_spans or self.lo <= self.w0 or self.checked_lo == self.lo:
            return False
        self.checked_lo = self.lo
        p = self.params
        window_before = f"env_id = {self.env} AND ts_ns >= {p(self.w0)} AND ts_ns < {p(self.lo)}"
        sql = f"SELECT 1 FROM events WHERE {window_before} AND NOT ({ANCHOR}) LIMIT 1"
        if not execute(self.con, sql, p).fetchall():  # span-only data: zone maps on signal
            return False
        later = f"env_id = {self.env} AND ts_ns >= {p(last_start)} AND ts_ns < {p(self.w1)}"
        sql = f"SELECT DISTINCT seq FROM events WHERE {later} AND {SPAN}"
        recent = [int(r[0]) for r in execute(self.con, sql, p).fetchall()]
        if not recent:
            return False
        sql = (
            "SELECT DISTINCT seq FROM trace_index WHERE trace_key IN "
            f"(SELECT trace_key FROM trace_index WHERE {_seq_filter(recent)})"
        )
        seqs = [int(r[0]) for r in self.con.execute(sql).fetchall()]
        if not seqs:
            _index_gap("write batches with spans have no trace_index rows")
        in_seqs = _seq_filter(seqs) if seqs else "TRUE"  # no seqs: an incomplete index
        sql = (
            f"SELECT {trace_ids.as_bytes()} FROM events WHERE {self.matched} "
            f"AND ts_ns < {p(self.lo)} AND NOT ({ANCHOR}) AND {in_seqs} GROUP BY trace_id"
        )
        ids = {bytes(r[0]) for r in execute(self.con, sql, p).fetchall()}
        ids -= self.seen | self.pending.keys()
        if not ids:
            return False
        with _registered(self.con, CANDIDATES, _id_table(sorted(ids))):
            sql = (
                f"SELECT {trace_ids.as_bytes()} FROM events WHERE {later} AND {SPAN} "
                f"AND trace_id IN (SELECT {trace_ids.JOIN_SQL} FROM {CANDIDATES}) GROUP BY trace_id"
            )
            late = [bytes(r[0]) for r in execute(self.con, sql, p).fetchall()]
        for tid in late:
            self.pending[tid] = self.w1
        return bool(late)


#: The names under which trace ids are visible to the search's own cursor.
CANDIDATES = "_trace_search_candidates"
PASSING = "_trace_search_passing"
#: Seq ranges in one filter; closer ranges are merged beyond this (reading a little more).
MAX_SEQ_RANGES = 64


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    con.register(name, table)
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            con.unregister(name)


_gaps_logged: set[str] = set()


def _index_gap(what: str) -> None:
    """The trace index is written with the events, in one transaction, so a gap is a bug: the
    search stays exact by reading the whole window, and says so once per process."""
    if what not in _gaps_logged:
        _gaps_logged.add(what)
        log.warning("trace search: %s; reading the whole window instead (slow)", what)


def _id_table(ids: list[bytes]) -> pa.Table:
    """Trace ids (``trace_ids.id_table``) with their trace-index keys (``trace_index.keys_of``)."""
    table = trace_ids.id_table(ids)
    return table.append_column("trace_key", pa.array(keys_of(table.column(trace_ids.HI))))


def _seq_filter(seqs: list[int]) -> str:
    """``seq`` in the given values, as ranges of consecutive values (literals: DuckDB prunes row
    groups with them); past ``MAX_SEQ_RANGES`` the closest ranges are merged."""
    seqs = sorted(set(seqs))
    ranges = [[seqs[0], seqs[0]]]
    for s in seqs[1:]:
        if s == ranges[-1][1] + 1:
            ranges[-1][1] = s
        else:
            ranges.append([s, s])
    if len(ranges) > MAX_SEQ_RANGES:  # keep the widest gaps, merge across the others
        by_width = sorted(range(len(ranges) - 1), key=lambda i: ranges[i][1] - ranges[i + 1][0])
        cuts = set(by_width[: MAX_SEQ_RANGES - 1])
        merged = [ranges[0]]
        for i, r in enumerate(ranges[1:]):
            if i in cuts:
                merged.append(r)
            else:
                merged[-1][1] = r[1]
        ranges = merged
    parts = [f"seq = {a}" if a == b else f"seq BETWEEN {a} AND {b}" for a, b in ranges]
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def _trace_filter(obj: Any, i: int, params: Params) -> str:
    path = f"trace_filters[{i}]"
    f = parse_filter(obj, path)
    if f.column not in TRACE_FILTER_FIELDS:
        raise SpecError(f"must be one of {', '.join(TRACE_FILTER_FIELDS)}", f"{path}.column")
    if f.column != "service.name":
        return compile_filter(f, SUMMARY_FIELDS[f.column], params, path)
    return _any_service(f.op, f.value, params)


def _any_service(op: str, value: Any, params: Params) -> str:
    """``service.name`` on a trace: true when any service it touched passes the op."""
    positive = NEGATED.get(op, op)
    if positive == "exists":
        test = "len(services) > 0"
    elif positive == "in":
        test = f"list_has_any(services, [{', '.join(params(str(v)) for v in value)}])"
    elif positive in STRING_OPS:
        cond = STRING_OPS[positive].format(c="s", v=params(str(value)))
        test = f"len(list_filter(services, lambda s: {cond})) > 0"
    else:
        sql_op = {"=": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[positive]
        test = f"len(list_filter(services, lambda s: s {sql_op} {params(str(value))})) > 0"
    test = f"coalesce({test}, FALSE)"
    return f"(NOT {test})" if op in NEGATED else test
