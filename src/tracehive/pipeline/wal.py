"""The write-ahead log: what makes a 2xx durable before the store has the rows.

Requests hand their raw body (as received, still compressed) to ``Wal.append``; one thread writes
every pending record with a single ``write`` + ``fdatasync`` (group commit: one fsync per burst,
not per request, MEASUREMENTS.md: ~3,800 fsyncs/s on this disk) and only then completes the
futures the requests wait on. On start, records past the store's recorded position are replayed.

Segment files ``wal-<first lsn>.log``; a record is ``<u32 length><u32 crc32><u64 lsn><payload>``,
the crc covering lsn and payload. A torn tail (crash mid-write) is detected by length/crc and
cut off: those records were never acknowledged.
"""

from __future__ import annotations

import itertools
import os
import queue
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

_HEAD = struct.Struct("<IIQ")
MAX_RECORD = 1 << 30


class WalError(Exception):
    pass


def _segment_path(directory: Path, first_lsn: int) -> Path:
    return directory / f"wal-{first_lsn:020d}.log"


def _segments(directory: Path) -> list[tuple[int, Path]]:
    out = []
    for p in directory.glob("wal-*.log"):
        try:
            out.append((int(p.stem[4:]), p))
        except ValueError:
            continue
    return sorted(out)


def read_segment(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """Yield (lsn, payload, end offset) for each intact record; stop at the first bad one."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + _HEAD.size <= len(data):
        length, crc, lsn = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if length > MAX_RECORD or end > len(data):
            return
        payload = data[pos + _HEAD.size : end]
        if zlib.crc32(payload, zlib.crc32(data[pos + 8 : pos + 16])) != crc:
            return
        yield lsn, payload, end
        pos = end


def encode_record(lsn: int, payload: bytes) -> bytes:
    lsn_bytes = struct.pack("<Q", lsn)
    crc = zlib.crc32(payload, zlib.crc32(lsn_bytes))
    return struct.pack("<II", len(payload), crc) + lsn_bytes + payload


class Wal:
    """Append-only, group-committed log. ``on_durable(lsn, item)`` runs on the WAL thread, in
    lsn order, after the record is on disk and before the appender's future completes."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int,
        on_durable: Callable[[int, object], None],
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._on_durable = on_durable
        self._queue: queue.SimpleQueue[tuple[bytes, object, Future[int]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._file = None
        self._size = 0
        self.next_lsn = 1
        self.fsyncs = 0

    # -- recovery ---------------------------------------------------------------------------
    def recover(self, applied: int) -> Iterator[tuple[int, bytes]]:
        """Records with lsn > ``applied``, in order. Also sets the next lsn and truncates a
        torn tail, so call (and exhaust) this once before ``start``."""
        last = applied
        segments = _segments(self.dir)
        for i, (_first, path) in enumerate(segments):
            good_end = 0
            for lsn, payload, end in read_segment(path):
                good_end = end
                last = max(last, lsn)
                if lsn > applied:
                    yield lsn, payload
            if i == len(segments) - 1 and good_end < path.stat().st_size:
                with open(path, "r+b") as f:  # cut a torn tail: never acknowledged
                    f.truncate(good_end)
                    os.fsync(f.fileno())
        self.next_lsn = last + 1

    # -- appending --------------------------------------------------------------------------
    def start(self) -> None:
        self._open_segment()
        self._thread = threading.Thread(target=self._run, name="tracehive-wal", daemon=True)
        self._thread.start()

    def append(self, payload: bytes, item: object) -> Future[int]:
        fut: Future[int] = Future()
        self._queue.put((payload, item, fut))
        return fut

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open_segment(self) -> None:
        if self._file is not None:
            self._file.close()
        path = _segment_path(self.dir, self.next_lsn)
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the WAL
        self._size = self._file.tell()
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)  # the new file's directory entry must be durable too
        finally:
            os.close(fd)

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            while True:  # drain everything already waiting: one fsync for all of it
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self._commit(group)

    def _commit(self, group: list[tuple[bytes, object, Future[int]]]) -> None:
        try:
            if self._size >= self.segment_bytes:
                self._open_segment()
            chunks = []
            lsns = []
            for payload, _item, _fut in group:
                lsns.append(self.next_lsn)
                chunks.append(encode_record(self.next_lsn, payload))
                self.next_lsn += 1
            data = b"".join(chunks)
            assert self._file is not None
            self._file.write(data)
            os.fdatasync(self._file.fileno())
            self.fsyncs += 1
            self._size += len(data)
        except Exception as exc:  # disk full, I/O error: nobody is acknowledged
            for _p, _i, fut in group:
                fut.set_exception(WalError(f"write-ahead log failed: {exc}"))
            return
        for lsn, (_payload, item, fut) in zip(lsns, group, strict=True):
            try:
                self._on_durable(lsn, item)
            finally:
                fut.set_result(lsn)

    # -- trimming ---------------------------------------------------------------------------
    def trim(self, applied: int) -> None:
        """Delete segments all of whose records are at or below ``applied``."""
        segments = _segments(self.dir)
        for (_first, path), (next_first, _p) in itertools.pairwise(segments):
            if next_first - 1 <= applied:
                path.unlink(missing_ok=True)
            else:
                break
