"""What every OTLP decoder shares: the result type, errors, value conversion and the row writer.

Value mapping (the contract with the C decoder, ``_otlp_fast.c``): an OTLP ``AnyValue`` becomes a
typed attribute ``(t, value)``:

* string -> ``s``; bool -> ``b``; int -> ``i`` (an OTLP int is int64, so it always fits);
* double -> ``f``; NaN is dropped (the store cannot compare it), +-inf are kept;
* bytes -> ``s``, standard base64 with padding;
* array / kvlist -> ``s``, compact JSON (``json.dumps(v, separators=(",", ":"),
  ensure_ascii=False)``) of the natural Python value: nested strings, bools, ints and floats as
  themselves (NaN/inf as ``NaN``/``Infinity``, as ``json.dumps`` writes them), bytes as base64,
  an empty AnyValue as ``null``, a kvlist as an object (a repeated key: the last one wins);
* an AnyValue with nothing set is dropped, and so is an attribute whose key is ``""``.

A dropped attribute is as if it had not been sent: it does not override an earlier one with the
same key. Otherwise the later of two attributes with one key wins, also across types (resource,
then scope, then the record's own attributes).

Routing: a resource's ``service.name`` (a non-empty string once stripped) names the dataset its
spans and log records go to (``dataset_and_service``). A name the catalog would refuse as a
dataset name (``tenancy.names.validate_dataset_name``: longer than 255 characters, or with a C0/C1
control character) rejects that resource's spans or log records, and only those: they are counted
in ``partial_success`` with ``INVALID_SERVICE_NAME`` (OTLP: a server that rejects part of a request
accepts the rest and reports the rejected items), and add nothing to the limits below. Rejecting
rather than repairing the name (e.g. dropping the control characters) keeps two different
services from being merged into one dataset behind the sender's back, and the sender is told.
Metrics are routed by the request's dataset, not by service.name, so their service.name is not
checked.

Per-request limits (hostile input: a ~1 MB body with 50k resource attributes and 20k spans would
otherwise become ~10^9 attribute cells). A request past any of them is refused whole with a
``DecodeError`` (400) naming the limit, before it is materialized:

* ``MAX_ROWS`` rows: spans + span events + links (rejected spans and links left out do not
  count), log records, or metric data points;
* ``MAX_ATTR_KEYS`` distinct attribute keys: the keys that get a column (``RowWriter.column``):
  resource attributes (minus service.name), scope attributes and the attributes of every row,
  dropped values, empty keys and rejected spans left out. Metrics have no columns: no key limit;
* ``MAX_CELLS`` attribute values: every value placed into a row (resource and scope attributes
  count once per row they are copied onto); for metrics, ``len(point.attributes)`` per point.
* ``MAX_SLOTS`` attribute slots: attribute columns x rows. The output is dense (every column is a
  list with an entry per row, ``None`` where a row lacks the key), so a few values under one-off
  keys spread over many rows (one span with 200k events and 2,000 keys, ~2 MB) would otherwise
  decode to ~3 GB within the three limits above. A column is a (key, value type) pair, created
  (``RowWriter.column``) for each resource and scope attribute (the last value of a key; logs
  make a resource's columns per scope, so one its scope overrides makes none) and for every
  value of a span's, event's, link's or record's own attributes (also one that a later value of
  the same key overrides) and ``trace.link.*``; dropped values, empty keys, service.name and
  rejected spans/resources make none. Rows: the rows written so far plus the one being written.
  ``MAX_SLOTS`` is twice ``MAX_CELLS`` (so a batch with more than half its slots filled meets the
  cell limit first) and ~10x a heavy real batch (5,000 rows x 400 columns); at the limit the
  decoder's lists take ~160 MB (8 bytes a slot). Metrics have no columns: no slot limit.

Rows are checked when a row is started, keys (then slots) when a key first gets a column, slots
when a column is created, cells (then slots) when a row's attributes are complete, so the first
row that goes past a limit decides the message. The C decoder (``_otlp_fast.c``) has the same
numbers, messages and order of checks.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from tracehive.model.batch import FIXED_COLUMNS, EventBatch, MetricBatch
from tracehive.tenancy.names import InvalidName, validate_dataset_name

__all__ = [
    "INT64_MAX",
    "INVALID_SERVICE_NAME",
    "LIMIT_PREFIX",
    "MAX_ATTR_KEYS",
    "MAX_CELLS",
    "MAX_ROWS",
    "MAX_SLOTS",
    "SERVICE_NAME",
    "TOO_MANY_CELLS",
    "TOO_MANY_KEYS",
    "TOO_MANY_LOG_RECORDS",
    "TOO_MANY_POINTS",
    "TOO_MANY_SLOTS",
    "TOO_MANY_SPAN_ROWS",
    "UNKNOWN_SERVICE",
    "DecodeError",
    "Decoded",
    "PointBudget",
    "RowWriter",
    "clamp_ns",
    "dataset_and_service",
    "pb_attr_map",
    "pb_plain",
    "pb_value",
    "routable",
    "to_json",
]

INT64_MAX = 2**63 - 1
SERVICE_NAME = "service.name"
# Honeycomb routes telemetry without a service.name to "unknown_service" (PROTOCOLS.md §6.1).
UNKNOWN_SERVICE = "unknown_service"

# Per-request limits (see the module docstring); _otlp_fast.c has the same numbers and messages.
MAX_ROWS = 200_000
MAX_ATTR_KEYS = 2_000  # Honeycomb's own limit: 2,000 columns per event
MAX_CELLS = 10_000_000
MAX_SLOTS = 20_000_000  # attribute columns x rows: 160 MB of list entries at the limit
TOO_MANY_SPAN_ROWS = f"request has more than {MAX_ROWS} rows (spans, span events and links)"
TOO_MANY_LOG_RECORDS = f"request has more than {MAX_ROWS} log records"
TOO_MANY_POINTS = f"request has more than {MAX_ROWS} data points"
TOO_MANY_KEYS = f"request has more than {MAX_ATTR_KEYS} distinct attribute keys"
TOO_MANY_CELLS = (
    f"request has more than {MAX_CELLS} attribute values"
    " (resource and scope attributes count once per row)"
)
TOO_MANY_SLOTS = (
    f"request has more than {MAX_SLOTS} attribute slots"
    " (attribute columns x rows; a column per attribute key and value type)"
)
#: How every limit message starts (``otlp.decode_traces`` tells them from C wire errors by it).
LIMIT_PREFIX = "request has more than "
#: ``partial_success.error_message`` reason for the items of a resource whose service.name is not
#: a valid dataset name (the C decoder has the same text).
INVALID_SERVICE_NAME = (
    "service.name is not a valid dataset name"
    " (longer than 255 characters or has control characters)"
)

# Tagged values: (type, value) with type one of the model's attribute types (model/batch.py).
TypedValue = tuple[str, Any]


class DecodeError(ValueError):
    """The payload is malformed or past a per-request limit; the message is shown to the client
    in a 400 google.rpc.Status."""


@dataclass(slots=True)
class Decoded:
    """A decoded export request.

    ``accepted``/``rejected`` count items of the signal (spans, log records, data points), not
    rows: a span's events and links ride along with it. ``error_message`` is the OTLP
    ``partial_success.error_message`` ("" when nothing was rejected).
    """

    events: EventBatch | None
    metrics: MetricBatch | None
    accepted: int
    rejected: int
    error_message: str


def clamp_ns(value: int) -> int:
    """OTLP times are fixed64; the store's are int64 (arrow.py refuses the whole batch past 2^63),
    so a time past 2^63 - 1 ns (year 2262) is clamped rather than rejected."""
    return value if value <= INT64_MAX else INT64_MAX


def to_json(value: Any) -> str:
    """The compact JSON text of an array/kvlist value (the C decoder writes the same text)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def pb_plain(av: Any) -> Any:
    """A protobuf AnyValue as a natural Python value (for values nested in arrays and kvlists)."""
    which = av.WhichOneof("value")
    if which == "array_value":
        return [pb_plain(v) for v in av.array_value.values]
    if which == "kvlist_value":
        return {kv.key: pb_plain(kv.value) for kv in av.kvlist_value.values}
    if which == "bytes_value":
        return b64(av.bytes_value)
    if which is None or which == "string_value_strindex":  # strindex: profiles only, no table here
        return None
    return getattr(av, which)


def pb_value(av: Any) -> TypedValue | None:
    """A protobuf AnyValue as a typed attribute value, or None when it is dropped."""
    which = av.WhichOneof("value")
    if which == "string_value":
        return "s", av.string_value
    if which == "int_value":
        return "i", av.int_value
    if which == "bool_value":
        return "b", av.bool_value
    if which == "double_value":
        v = av.double_value
        return None if v != v else ("f", v)
    if which == "bytes_value":
        return "s", b64(av.bytes_value)
    if which == "array_value" or which == "kvlist_value":
        return "s", to_json(pb_plain(av))
    return None


def pb_attr_map(pb_attrs: Any) -> dict[str, TypedValue]:
    """Repeated KeyValue -> {key: (t, v)}, dropped values left out, the last of a key winning."""
    out: dict[str, TypedValue] = {}
    for kv in pb_attrs:
        key = kv.key
        if key:
            tv = pb_value(kv.value)
            if tv is not None:
                out[key] = tv
    return out


def dataset_and_service(resource: dict[str, TypedValue]) -> tuple[str, str | None]:
    """Pop ``service.name`` from converted resource attributes: it routes the rows (Honeycomb
    sends a resource's telemetry to the dataset named by its service.name) and has its own
    column, so it never becomes an attribute whatever its type."""
    tv = resource.pop(SERVICE_NAME, None)
    if tv is not None and tv[0] == "s":
        name = tv[1].strip()
        if name:
            return name, name
    return UNKNOWN_SERVICE, None


def routable(dataset: str) -> bool:
    """Whether ``dataset`` (from ``dataset_and_service``) is a name the catalog accepts. When it
    is not, the resource's items are rejected (module docstring); the C decoder calls the same
    ``validate_dataset_name``."""
    try:
        validate_dataset_name(dataset)
    except InvalidName:
        return False
    return True


class PointBudget:
    """MAX_ROWS and MAX_CELLS for metric data points (a ``dict`` of attributes each, no columns).

    ``reserve`` before a metric's points are built: its ``n`` points will carry at least
    ``per_point`` attributes each (the resource and scope ones), so a request past a limit is
    refused before any of them exists; ``add`` then counts what they really carry."""

    __slots__ = ("cells", "points")

    def __init__(self) -> None:
        self.points = 0
        self.cells = 0

    def reserve(self, n: int, per_point: int) -> None:
        if self.points + n > MAX_ROWS:
            raise DecodeError(TOO_MANY_POINTS)
        if self.cells + n * per_point > MAX_CELLS:
            raise DecodeError(TOO_MANY_CELLS)

    def add(self, points: list[Any]) -> None:
        self.points += len(points)
        self.cells += sum([len(p.attributes) for p in points])
        if self.cells > MAX_CELLS:
            raise DecodeError(TOO_MANY_CELLS)


# put_pb's type hints: which scalar member a key's value was last time.
_S, _I, _F, _B = 0, 1, 2, 3
_MEMBERS = ("string_value", "int_value", "double_value", "bool_value")
_TYPES = ("s", "i", "f", "b")
_HINT_CODES = {member: code for code, member in enumerate(_MEMBERS)}


class RowWriter:
    """Builds an ``EventBatch`` without a Python object per row.

    Fixed columns: each row is one tuple in ``FIXED_COLUMNS`` order, transposed at the end (one
    C-level ``zip`` instead of 19 appends a row). Attribute columns live in ``cols[t][key]`` and
    are preallocated to ``cap`` rows of None, so writing a value is one ``col[row] = v`` and a row
    that lacks the key is already padded. ``reserve`` grows every column in place (callers hold
    column lists across rows, so a column is never replaced).

    The limits (module docstring): callers reserve row by row (``if row >= cap``), and ``cap``
    never passes ``MAX_ROWS``, so that test is also the row limit; ``column`` counts keys and
    checks columns x rows before it allocates; callers pass each row's cell count (``len(seen)``
    once the row is written) to ``add_cells``, which also checks columns x rows for the row. So
    the lists hold at most ``MAX_SLOTS`` entries plus what ``reserve`` keeps ahead (it does not
    grow past the rows the slot limit leaves), never a reservation made ahead of rows that a
    limit then refuses.
    """

    __slots__ = (
        "cap",
        "cells",
        "cols",
        "hints",
        "keys",
        "ncols",
        "rows",
        "slot_rows",
        "too_many_rows",
    )

    def __init__(self, too_many_rows: str) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.cols: dict[str, dict[str, list[Any]]] = {"s": {}, "i": {}, "f": {}, "b": {}}
        self.cap = 0
        self.hints: dict[str, tuple[list[Any], int]] = {}  # see put_pb
        self.keys: set[str] = set()  # every key with a column, for MAX_ATTR_KEYS
        self.cells = 0
        self.ncols = 0  # columns made, for MAX_SLOTS
        self.slot_rows = 1 << 62  # rows MAX_SLOTS allows with ncols columns
        self.too_many_rows = too_many_rows  # the DecodeError message past MAX_ROWS

    def reserve(self, need: int) -> int:
        """Make every attribute column at least ``need`` long; returns the new capacity (at
        most ``MAX_ROWS``, and not past the rows the slot limit leaves unless ``need`` is).
        ``DecodeError`` when ``need`` is past ``MAX_ROWS``."""
        if need > self.cap:
            if need > MAX_ROWS:
                raise DecodeError(self.too_many_rows)
            new_cap = min(max(need, 2 * self.cap, 64), MAX_ROWS, max(need, self.slot_rows))
            pad = [None] * (new_cap - self.cap)
            for by_key in self.cols.values():
                for col in by_key.values():
                    col.extend(pad)
            self.cap = new_cap
        return self.cap

    def column(self, t: str, key: str) -> list[Any]:
        by_key = self.cols[t]
        col = by_key.get(key)
        if col is None:
            keys = self.keys
            if key not in keys:
                keys.add(key)
                if len(keys) > MAX_ATTR_KEYS:
                    raise DecodeError(TOO_MANY_KEYS)
            # columns x (rows written + this one) > MAX_SLOTS, before the column is allocated
            self.ncols += 1
            self.slot_rows = MAX_SLOTS // self.ncols
            if len(self.rows) >= self.slot_rows:
                raise DecodeError(TOO_MANY_SLOTS)
            col = by_key[key] = [None] * self.cap
        return col

    def add_cells(self, n: int) -> None:
        """Count a finished row's ``n`` attribute values (``len(seen)``) against MAX_CELLS, then
        the row itself against MAX_SLOTS (columns x rows, this one included)."""
        self.cells += n
        if self.cells > MAX_CELLS:
            raise DecodeError(TOO_MANY_CELLS)
        if len(self.rows) >= self.slot_rows:
            raise DecodeError(TOO_MANY_SLOTS)

    def scope_base(
        self, res: dict[str, TypedValue], scope: dict[str, TypedValue]
    ) -> tuple[list[tuple[list[Any], Any]], dict]:
        """``base`` of resource attributes overridden by scope ones. The scope's own columns are
        made first, in the scope's order, so keys and columns are counted in the order the C
        decoder counts them (``base`` alone would meet a resource key the scope gives another
        type at the resource key's place)."""
        for key, (t, _v) in scope.items():
            if key not in self.cols[t]:
                self.column(t, key)
        return self.base({**res, **scope})

    def base(self, attrs: dict[str, TypedValue]) -> tuple[list[tuple[list[Any], Any]], dict]:
        """Resolve merged resource/scope attributes once: ``(writes, seen)`` where ``writes`` is
        ``[(column, value)]`` to copy into each row and ``seen`` maps key -> column, the start of
        each row's override bookkeeping (see ``put``)."""
        writes = []
        seen = {}
        for key, (t, v) in attrs.items():
            col = self.column(t, key)
            writes.append((col, v))
            seen[key] = col
        return writes, seen

    def put(self, key: str, t: str, v: Any, row: int, seen: dict[str, list[Any]]) -> None:
        """Write one attribute of ``row``: a value for the same key written before in this row
        (from the resource, or earlier in the list) under another type is cleared, so the later
        one wins across types too."""
        col = self.cols[t].get(key)
        if col is None:
            col = self.column(t, key)
        prev = seen.setdefault(key, col)
        if prev is not col:
            prev[row] = None
            seen[key] = col
        col[row] = v

    def put_all(self, attrs: list[tuple[str, str, Any]], row: int, seen: dict) -> None:
        """``put`` for every ``(key, t, v)`` of an already converted list (OTLP/JSON)."""
        cols = self.cols
        setdefault = seen.setdefault
        for key, t, v in attrs:
            col = cols[t].get(key)
            if col is None:
                col = self.column(t, key)
            prev = setdefault(key, col)
            if prev is not col:
                prev[row] = None
                seen[key] = col
            col[row] = v

    def put_pb(self, pb_attrs: Any, row: int, seen: dict[str, list[Any]]) -> None:
        """``put`` for every attribute of a protobuf KeyValue list: the hot loop, inlined.

        ``WhichOneof`` costs as much as the rest of an attribute (upb), so each key remembers the
        column and member its value had last time (``hints``): a non-default value read from that
        member proves it is the one set (a oneof reads as default for every other member), and a
        default value is confirmed with the cheaper ``HasField``. Anything else takes the slow,
        general path.
        """
        hint_get = self.hints.get
        setdefault = seen.setdefault
        for kv in pb_attrs:
            key = kv.key
            av = kv.value
            hint = hint_get(key)
            col = None
            if hint is not None:
                col, code = hint
                if code == _S:
                    v = av.string_value
                elif code == _I:
                    v = av.int_value
                elif code == _B:
                    v = av.bool_value
                else:
                    v = av.double_value
                    if v != v:  # NaN, so double_value is set: dropped
                        continue
                if not v and not av.HasField(_MEMBERS[code]):
                    col = None
            if col is None:
                if not key:
                    continue
                which = av.WhichOneof("value")
                code = _HINT_CODES.get(which, -1)
                if code >= 0:
                    v = getattr(av, which)
                    if v != v:
                        continue
                    col = self.column(_TYPES[code], key)
                    self.hints[key] = (col, code)
                else:  # bytes, array, kvlist (a string column) or nothing set (dropped)
                    tv = pb_value(av)
                    if tv is None:
                        continue
                    v = tv[1]
                    col = self.column("s", key)
            prev = setdefault(key, col)
            if prev is not col:
                prev[row] = None
                seen[key] = col
            col[row] = v

    def finish(self) -> EventBatch:
        """The batch: columns cut to the rows written; all-None columns (a key only rejected or
        overridden rows carried) are left out."""
        rows = self.rows
        n = len(rows)
        if n:
            fixed = {
                c: list(values)
                for c, values in zip(FIXED_COLUMNS, zip(*rows, strict=True), strict=True)
            }
        else:
            fixed = {c: [] for c in FIXED_COLUMNS}
        attrs = {}
        for t, by_key in self.cols.items():
            for key, col in by_key.items():
                del col[n:]
                if col.count(None) != n:
                    attrs[(key, t)] = col
        return EventBatch(n=n, cols=fixed, attrs=attrs)  # type: ignore[arg-type]
