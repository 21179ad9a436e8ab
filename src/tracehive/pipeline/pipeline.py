"""Admission, durability and writing, in that order.

    request -> ``admit`` (503 when too much is pending) -> decode (ingest) -> ``prepare`` (datasets
    resolved, Arrow) -> ``submit`` (WAL group commit; the 2xx waits for this) -> writer -> store

Pending rows are counted from admission of a prepared record until the store has them; that
count, not a queue length, is what bounds memory under overload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from tracehive.pipeline.records import Prepared, Record
from tracehive.pipeline.wal import Wal
from tracehive.pipeline.writer import Item, Writer

log = logging.getLogger("tracehive.pipeline")


class Overloaded(Exception):
    """Too many rows accepted but not yet stored: answer 503/429 with Retry-After."""

    retry_after_s = 1


class Pipeline:
    def __init__(
        self,
        store,
        data_dir: Path,
        *,
        max_pending_rows: int,
        flush_rows: int,
        flush_interval_s: float,
        wal_segment_bytes: int,
    ) -> None:
        self.store = store
        self.max_pending_rows = max_pending_rows
        self._pending = 0
        self._lock = threading.Lock()
        self.rows_written = 0
        self.wal = Wal(data_dir / "wal", wal_segment_bytes, self._on_durable)
        self.writer = Writer(
            store.write,
            self._on_written,
            flush_rows,
            flush_interval_s,
            data_dir / "deadletter",
        )

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, materialize: Callable[[Record], Prepared]) -> int:
        """Replay what the store does not have yet, then accept writes. Returns replayed count."""
        applied, partial = self.store.wal_position()
        replayed = 0
        batch: list[Item] = []
        rows = 0
        for lsn, payload in self.wal.recover(applied):
            try:
                prepared = materialize(Record.decode(payload))
            except Exception as exc:  # a record we cannot decode again: never lose the rest
                log.error("WAL record %d cannot be replayed: %s", lsn, exc)
                prepared = Prepared()
            offset = 0
            if lsn == applied + 1 and partial and prepared.table is not None:
                # The head of this record is in the store already (split at a row group).
                prepared = Prepared(prepared.table.slice(partial), prepared.metrics)
                offset = partial
            batch.append(Item(lsn, prepared, offset))
            rows += prepared.rows
            replayed += 1
            if rows >= self.writer.flush_rows:
                self.writer.write_items(batch)
                batch, rows = [], 0
        if batch:
            self.writer.write_items(batch)
        self._pending = 0
        self.wal.trim(self.store.wal_position()[0])
        self.wal.start()
        self.writer.start()
        return replayed

    def stop(self) -> None:
        """Everything acknowledged reaches the store before this returns."""
        self.wal.stop()
        self.writer.stop()
        self.wal.trim(self.store.wal_position()[0])

    # -- the write path ---------------------------------------------------------------------
    def admit(self) -> None:
        """Cheap check before reading/decoding a request."""
        if self._pending >= self.max_pending_rows:
            raise Overloaded()

    def submit(self, record: Record, prepared: Prepared) -> Future[int]:
        """Log ``record`` durably; the future completes (with its lsn) once it is on disk."""
        rows = prepared.rows
        with self._lock:
            if self._pending + rows > self.max_pending_rows and self._pending > 0:
                raise Overloaded()
            self._pending += rows
        fut = self.wal.append(record.encode(), prepared)
        fut.add_done_callback(lambda f: f.exception() and self._release(rows))
        return fut

    def _release(self, rows: int) -> None:
        with self._lock:
            self._pending = max(0, self._pending - rows)

    @property
    def pending_rows(self) -> int:
        return self._pending

    # -- callbacks --------------------------------------------------------------------------
    def _on_durable(self, lsn: int, prepared: object) -> None:
        self.writer.put(lsn, prepared)  # type: ignore[arg-type]

    def _on_written(self, wal_end: int, rows: int) -> None:
        self._release(rows)
        self.rows_written += rows
        self.wal.trim(wal_end)
