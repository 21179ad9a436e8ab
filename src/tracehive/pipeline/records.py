"""What the WAL holds: an ingest request as received, plus what is needed to decode it again.

Keeping the raw (still compressed) body makes the log small and the acknowledgement cheap; replay
after a crash decodes it again through the same ingest code as the live path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from tracehive.model.batch import MetricBatch

_LEN = struct.Struct("<I")


@dataclass(slots=True)
class Record:
    kind: str  # ingest.dispatch.Kind
    env_id: int
    body: bytes
    fmt: str = "protobuf"  # OTLP: protobuf | json
    encoding: str = ""  # Content-Encoding as received
    dataset: str = ""  # metrics and Honeycomb events: the target dataset
    now_ns: int = 0  # receive time, so a replay stamps the same defaults
    meta: dict[str, str] = field(default_factory=dict)  # e.g. Honeycomb event-time header

    def encode(self) -> bytes:
        head = orjson.dumps(
            {
                "k": self.kind,
                "e": self.env_id,
                "f": self.fmt,
                "c": self.encoding,
                "d": self.dataset,
                "t": self.now_ns,
                "m": self.meta,
            }
        )
        return _LEN.pack(len(head)) + head + self.body

    @classmethod
    def decode(cls, data: bytes) -> Record:
        (n,) = _LEN.unpack_from(data)
        head = orjson.loads(data[4 : 4 + n])
        return cls(
            kind=head["k"],
            env_id=head["e"],
            fmt=head["f"],
            encoding=head["c"],
            dataset=head["d"],
            now_ns=head["t"],
            meta=head["m"],
            body=bytes(data[4 + n :]),
        )


@dataclass(slots=True)
class Prepared:
    """Rows ready for the store: events as Arrow, metrics as canonical points."""

    table: pa.Table | None = None
    metrics: list[tuple[int, list[int], MetricBatch]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        n = self.table.num_rows if self.table is not None else 0
        return n + sum(m.n for _e, _d, m in self.metrics)
