"""The batch writer: coalesces durable records into large store writes.

DuckDB appends ~100-200k rows/s in big Arrow inserts but far less in small ones
(MEASUREMENTS.md: buffer >= 64k rows per insert), so rows wait here until ``flush_rows`` are
pending or the oldest is ``flush_interval`` old. Each write records the WAL position it covers in
the same transaction, which is what makes replay exactly-once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from tracehive.pipeline.records import Prepared

log = logging.getLogger("tracehive.pipeline")

#: A write that fails this many times in a row is split; records that still fail alone are moved
#: to the dead-letter directory so one poison record cannot stop ingest forever.
MAX_ATTEMPTS = 3


class Writer:
    def __init__(
        self,
        write: Callable[[pa.Table | None, list, int], None],
        on_written: Callable[[int, int], None],
        flush_rows: int,
        flush_interval_s: float,
        deadletter_dir: Path,
    ) -> None:
        self._write = write
        self._on_written = on_written  # (wal_end, rows) after each successful write
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.deadletter_dir = deadletter_dir
        self._queue: queue.SimpleQueue[tuple[int, Prepared] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._flush_now = threading.Event()
        self.writes = 0
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tracehive-writer", daemon=True)
        self._thread.start()

    def put(self, lsn: int, prepared: Prepared) -> None:
        self._queue.put((lsn, prepared))

    def stop(self) -> None:
        """Write everything queued, then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def flush_soon(self) -> None:
        self._flush_now.set()

    def _run(self) -> None:
        pending: list[tuple[int, Prepared]] = []
        rows = 0
        first_at = 0.0
        stopping = False
        while not stopping:
            timeout = None
            if pending:
                timeout = max(0.0, first_at + self.flush_interval_s - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout if timeout is None else min(timeout, 0.05))
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            if item is None:
                stopping = True
            elif item:
                if not pending:
                    first_at = time.monotonic()
                pending.append(item)  # type: ignore[arg-type]
                rows += item[1].rows  # type: ignore[index]
            due = pending and (
                stopping
                or rows >= self.flush_rows
                or time.monotonic() >= first_at + self.flush_interval_s
                or self._flush_now.is_set()
            )
            if due:
                self._flush_now.clear()
                self._flush(pending)
                pending, rows = [], 0

    def _flush(self, items: list[tuple[int, Prepared]]) -> None:
        attempt = 0
        while True:
            try:
                self._write_items(items)
                return
            except Exception as exc:
                attempt += 1
                self.failures += 1
                log.warning("store write failed (attempt %d): %s", attempt, exc)
                if attempt < MAX_ATTEMPTS:
                    time.sleep(min(2.0, 0.1 * 2**attempt))
                    continue
                if len(items) == 1:
                    self._deadletter(items[0], exc)
                    self._write(None, [], items[0][0])  # still move the WAL position past it
                    self._on_written(items[0][0], items[0][1].rows)
                    return
                for one in items:  # isolate the poison record
                    self._flush([one])
                return

    def _write_items(self, items: list[tuple[int, Prepared]]) -> None:
        if not items:
            return
        tables = [p.table for _lsn, p in items if p.table is not None]
        metrics = [m for _lsn, p in items for m in p.metrics]
        table = None
        if tables:
            table = tables[0] if len(tables) == 1 else pa.concat_tables(
                tables, promote_options="default"
            )
        wal_end = items[-1][0]
        self._write(table, metrics, wal_end)
        self.writes += 1
        self._on_written(wal_end, sum(p.rows for _l, p in items))

    def _deadletter(self, item: tuple[int, Prepared], exc: Exception) -> None:
        self.deadletter_dir.mkdir(parents=True, exist_ok=True)
        lsn, prepared = item
        (self.deadletter_dir / f"{lsn:020d}.txt").write_text(
            f"lsn {lsn}: {prepared.rows} rows not written: {exc}\n"
        )
        if prepared.table is not None:
            with pa.OSFile(str(self.deadletter_dir / f"{lsn:020d}.arrow"), "wb") as sink:
                with pa.ipc.new_file(sink, prepared.table.schema) as ipc:
                    ipc.write_table(prepared.table)
        log.error("record %d moved to dead letters after %d attempts: %s", lsn, MAX_ATTEMPTS, exc)
