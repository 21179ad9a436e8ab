"""The running product: catalog, store, pipeline and query service wired together.

``Services`` is what the HTTP/gRPC surfaces, the CLI and (later) the UI are given; none of them
reaches past it. It owns the data dir: one server per data dir (``server.lock``).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
import time
from pathlib import Path

from tracehive.ingest.dispatch import IngestResult, decode_record
from tracehive.pipeline import Pipeline, Prepared, Record
from tracehive.query.saved import SavedQueries
from tracehive.query.service import QueryService
from tracehive.settings import Config
from tracehive.storage.api import Scope
from tracehive.storage.arrow import to_arrow
from tracehive.storage.duckdb.backend import DuckDBStore
from tracehive.tenancy.catalog import Catalog

log = logging.getLogger("tracehive")

ALL_DATASETS = "__all__"


class DataDirLocked(RuntimeError):
    pass


class UnknownDataset(LookupError):
    pass


class Services:
    def __init__(self, config: Config) -> None:
        self.config = config
        data = config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(data / "server.lock", "a+")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise DataDirLocked(f"another tracehive server is using {data}") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()
        self.catalog = Catalog.open(data)
        self.bootstrap_key = self.catalog.ensure_bootstrap()
        self.store = DuckDBStore(
            data / "store.duckdb",
            memory_limit=config.duckdb_memory_limit,
            threads=config.duckdb_threads,
        )
        self.pipeline = Pipeline(
            self.store,
            data,
            max_pending_rows=config.max_pending_rows,
            flush_rows=config.flush_rows,
            flush_interval_s=config.flush_interval_ms / 1000,
            wal_segment_bytes=config.wal_segment_bytes,
        )
        self.replayed = self.pipeline.start(self.materialize)
        self.queries = QueryService(self.store, SavedQueries(data))
        self._stop = threading.Event()
        self._retention = threading.Thread(
            target=self._retention_loop, name="tracehive-retention", daemon=True
        )
        self._retention.start()

    # -- ingest -----------------------------------------------------------------------------
    def decode(self, record: Record) -> IngestResult:
        return decode_record(record, self.config.max_decoded_bytes)

    def prepare(self, env_id: int, result: IngestResult) -> Prepared:
        """Resolve (and create) datasets, and turn events into Arrow."""
        prepared = Prepared()
        events = result.events
        if events is not None and events.n:
            names = events.cols["dataset"]
            ids = self.catalog.dataset_ids(env_id, list(set(names)), create=True)
            dataset_ids = [ids[name] for name in names]
            prepared.table = to_arrow(events, env_id, dataset_ids)
        metrics = result.metrics
        if metrics is not None and metrics.n:
            names = [p.dataset for p in metrics.points]
            ids = self.catalog.dataset_ids(env_id, list(set(names)), create=True)
            prepared.metrics.append((env_id, [ids[n] for n in names], metrics))
        return prepared

    def materialize(self, record: Record) -> Prepared:
        return self.prepare(record.env_id, self.decode(record))

    def _decode_and_prepare(self, record: Record) -> tuple[IngestResult, Prepared]:
        result = self.decode(record)
        return result, self.prepare(record.env_id, result)

    async def ingest(self, record: Record) -> IngestResult:
        """Decode, prepare and durably log a request. Raises ``Overloaded`` (503), the decoders'
        errors (400/413/415) and ``WalError`` (503)."""
        self.pipeline.admit()
        result, prepared = await asyncio.to_thread(self._decode_and_prepare, record)
        if prepared.rows:
            await asyncio.wrap_future(self.pipeline.submit(record, prepared))
        return result

    # -- reads ------------------------------------------------------------------------------
    def scope(self, env_id: int, dataset: str) -> Scope:
        """``__all__`` is the whole environment; other names must exist (case-insensitive)."""
        if dataset == ALL_DATASETS:
            return Scope(env_id, None)
        ds = self.catalog.dataset_by_name(env_id, dataset)
        if ds is None:
            raise UnknownDataset(dataset)
        return Scope(env_id, (ds.id,))

    # -- retention --------------------------------------------------------------------------
    def enforce_retention(self, now_ns: int | None = None) -> int:
        now_ns = time.time_ns() if now_ns is None else now_ns
        removed = 0
        for env in self.catalog.environments():
            cutoff = now_ns - env.retention_days * 86_400 * 1_000_000_000
            removed += self.store.delete_before(env.id, cutoff)
        return removed

    def _retention_loop(self) -> None:
        while not self._stop.wait(self.config.retention_check_s):
            try:
                removed = self.enforce_retention()
                if removed:
                    log.info("retention removed %d rows", removed)
            except Exception:
                log.exception("retention failed")

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting, flush everything acknowledged into the store, release the dir."""
        self._stop.set()
        self.pipeline.stop()
        self.queries.close()
        self.store.close()
        self.catalog.close()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


def data_dir_of(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()
