"""Decoder for Honeycomb's events API: ``POST /1/events/{dataset}`` and ``/1/batch/{dataset}``.

PROTOCOLS.md §7.2 (single event) and §7.3 (batch). An event is a flat JSON object of fields; the
well-known ones (``duration_ms``, ``trace.trace_id``, ``service.name`` ...) land in the fixed
columns named in ``storage/schema.py`` when their value converts, everything else (including a
well-known field whose value does not convert) is an attribute. The caller has already
authenticated, URL-decoded the dataset and decompressed the body (``ingest.compression``).

Only ``EventError`` (a ``ValueError``) leaves this module for bad input.

Speed: a batch is decoded column by column, not field by field. ``orjson`` parses the body; then
C-level passes gather each field name's values across all events (``_gather``) and the set of
their types decides the column's fate at once: a field whose values all have one plain type and
pass their checks becomes a column as it is, or through one C-level conversion (ids,
durations), with no Python code per value. Anything else (mixed types, nested values, long
strings, values a well-known field cannot take ...) goes value by value through
``_Columns.put``, the per-field logic. Names present in few events of a batch, and small
batches (under ``_COLUMNS_MIN`` events), go event by event (``_Columns.put_event``): there,
columns cost more than they save. Event times of one layout are read column by column as well
(``_uniform_times``). ``tests/ingest/honeycomb_reference.py`` keeps the former per-field
decoder; ``tests/ingest/test_honeycomb_differential.py`` holds this one to the same output, and
``bench/decode_events.py`` measures both.
"""

from __future__ import annotations

import calendar
import math
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import chain, compress, count, repeat
from operator import add, ge, getitem, is_not, itemgetter, mul, sub
from typing import Any

import orjson

from tracehive.model.batch import FIXED_COLUMNS, AttrKey, EventBatch, Signal
from tracehive.model.ids import InvalidId, trace_id_from_any

__all__ = [
    "MAX_FIELDS",
    "MAX_SLOTS",
    "MAX_STRING_BYTES",
    "MSG_EMPTY",
    "MSG_MALFORMED",
    "MSG_STRING_TOO_LONG",
    "MSG_TOO_MANY_COLUMNS",
    "MSG_TOO_WIDE",
    "EventError",
    "decode_batch",
    "decode_event",
    "parse_event_time",
    "parse_samplerate",
]

# Honeycomb's own error strings (§7.2), so clients and their tests see what they expect.
MSG_EMPTY = "Request body should not be empty."
MSG_MALFORMED = "Request body is malformed and cannot be read."
MSG_TOO_MANY_COLUMNS = "Event has too many columns."
MSG_STRING_TOO_LONG = "string value too long"
#: The decoded batch is dense (a column per field name and value type, a slot per event in
#: each), so a body of events with one-off names would decode to columns x events slots: 20k
#: events of 20 new names each, a ~10 MB body, to 8 * 10^9. A batch is refused whole before a
#: column would take it past this many slots (~80 MB of column lists; libhoney sends batches of
#: <= 50 events, so real batches stay far below).
MAX_SLOTS = 10_000_000
MSG_TOO_WIDE = (
    f"Batch has too many distinct field names for its size (columns x events > {MAX_SLOTS:,}); "
    "send it in smaller batches."
)

MAX_FIELDS = 2000  # §7.2: up to 2,000 fields per event
MAX_STRING_BYTES = 64 * 1024  # §7.2: string values <= 64 KB (UTF-8 bytes)

_NS = 1_000_000_000
_FUTURE_LIMIT_NS = 3600 * _NS  # §7.3: times more than 1 h ahead are replaced by receive time
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SAMPLERATE_MAX = 2**32 - 1  # the store keeps samplerate as UINTEGER


class EventError(ValueError):
    """Bad input; ``message`` is the text for the ``{"error": ...}`` body (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- time and samplerate ------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)
_DECIMAL = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?")


def _rfc3339_ns(text: str) -> int | None:
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    try:
        # datetime validates the calendar (month 13, Feb 30 ...); a leap second (:60) is refused
        # like Go's time.Parse refuses it, and the event then gets the receive time.
        dt = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    seconds = calendar.timegm(dt.timetuple())
    if m.group(9):  # numeric offset: local time = UTC + offset
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        seconds -= offset if m.group(9) == "+" else -offset
    # No zone at all is not RFC3339, but being lenient costs nothing: read it as UTC.
    fraction = (m.group(7) or "")[:9].ljust(9, "0")  # nanosecond precision, extra digits cut
    return seconds * _NS + int(fraction)


def _epoch_ns(value: Any) -> int | None:
    """Epoch seconds (int, float or decimal text) -> ns; None when not a finite number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * _NS
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        whole = math.floor(value)
        return whole * _NS + round((value - whole) * _NS)
    if isinstance(value, str):
        m = _DECIMAL.fullmatch(value)
        if m is not None:  # exact: "1700000000.123456789" keeps every digit
            ns = int(m.group(2)) * _NS + int((m.group(3) or "")[:9].ljust(9, "0"))
            return -ns if m.group(1) == "-" else ns
        try:
            number = float(value)  # "1.7e9" and friends
        except ValueError:
            return None
        return _epoch_ns(number)
    return None


def parse_event_time(value: Any, now_ns: int) -> int:
    """An event time (RFC3339 text, or epoch seconds as a number or text) -> ns since the epoch.

    Missing or unparseable times, and times more than an hour ahead of ``now_ns`` (Honeycomb
    replaces those with the receive time, §7.3), give ``now_ns``.
    """
    ns: int | None = None
    if isinstance(value, str):
        text = value.strip()
        ns = _rfc3339_ns(text)
        if ns is None:
            ns = _epoch_ns(text)
    elif value is not None:
        ns = _epoch_ns(value)
    if ns is None or not _INT64_MIN <= ns <= _INT64_MAX or ns > now_ns + _FUTURE_LIMIT_NS:
        return now_ns
    return ns


def parse_samplerate(value: Any) -> int:
    """A sample rate (int, integral float or digits) -> int in 1..2**32-1; anything else -> 1."""
    rate: int | None = None
    if isinstance(value, bool):
        rate = None
    elif isinstance(value, int):
        rate = value
    elif isinstance(value, float) and math.isfinite(value):
        rate = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            rate = int(text)
    if rate is None or rate < 1:
        return 1
    return min(rate, _SAMPLERATE_MAX)


# --- field conversion ---------------------------------------------------------------------------

_NO = object()  # "does not convert": the field stays an attribute under its own name
_HEX16 = re.compile(r"[0-9a-fA-F]{16}")


def _as_str(v: Any) -> Any:
    return v if isinstance(v, str) else _NO


def _as_bool(v: Any) -> Any:
    return v if isinstance(v, bool) else _NO


def _duration_ns(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return _NO
    if isinstance(v, int):
        ns = v * 1_000_000
    else:
        scaled = v * 1e6  # may overflow to inf for huge values: check before round()
        if not math.isfinite(scaled):
            return _NO
        ns = round(scaled)
    return ns if _INT64_MIN <= ns <= _INT64_MAX else _NO


def _trace_id(v: Any) -> Any:
    if not isinstance(v, str):
        return _NO
    try:
        return trace_id_from_any(v)
    except InvalidId:
        return _NO


def _span_id(v: Any) -> Any:
    if not isinstance(v, str) or not _HEX16.fullmatch(v):
        return _NO
    # An all-zero id means "none" (W3C/OTLP); a root span's zero parent must read as no parent.
    return int(v, 16) or None


def _int_in(lo: int, hi: int) -> Callable[[Any], Any]:
    def convert(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return _NO
        return v

    return convert


def _annotation_type(v: Any) -> Any:
    return v if v in (Signal.SPAN_EVENT, Signal.LINK) else _NO


# Field name -> (fixed column, converter). The names are the query names of storage/schema.py's
# FIXED map, so a field written here is read back under the same name. Columns the store keeps
# narrower than JSON (status_code and severity_number are UTINYINT) only take values that fit
# their meaning: an HTTP-style ``status_code: 500`` is not an OTel status (0 unset, 1 ok,
# 2 error) and stays an integer attribute.
_FIXED_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "duration_ms": ("dur_ns", _duration_ns),
    "trace.trace_id": ("trace_id", _trace_id),
    "trace.span_id": ("span_id", _span_id),
    "trace.parent_id": ("parent_id", _span_id),
    "name": ("name", _as_str),
    "service.name": ("service", _as_str),
    "service_name": ("service", _as_str),  # Honeycomb's alias; service.name wins when both
    "span.kind": ("kind", _as_str),
    "error": ("error", _as_bool),
    "status_code": ("status_code", _int_in(0, 2)),
    "status_message": ("status_message", _as_str),
    "meta.annotation_type": ("signal", _annotation_type),
    "library.name": ("library_name", _as_str),
    "library.version": ("library_version", _as_str),
    "body": ("body", _as_str),
    "severity_text": ("severity_text", _as_str),
    "severity_number": ("severity_number", _int_in(0, 255)),
}


# How each well-known field's column is built in one go when all its values have one type (see
# ``_Columns.fixed_dense``); the converters above stay the definition, used value by value
# whenever the fast form does not apply.
_FAST_KIND: dict[str, tuple[str, Any]] = {
    "duration_ms": ("duration", None),
    "trace.trace_id": ("hex", (32, 16)),
    "trace.span_id": ("hex", (16, 8)),
    "trace.parent_id": ("hex", (16, 8)),
    "error": ("same", bool),
    "status_code": ("range", (0, 2)),
    "severity_number": ("range", (0, 255)),
    "meta.annotation_type": ("none", None),
    **{
        k: ("same", str)
        for k, (_, convert) in _FIXED_FIELDS.items()
        if convert is _as_str  # service_name too, when no event has a service.name
    },
}

_NoneType = type(None)
_dict_get = dict.get
# Up to this many characters a string is within MAX_STRING_BYTES whatever it holds (<= 4 B/char).
_STR_FAST = MAX_STRING_BYTES // 4
# Fewer events than this are decoded event by event, field by field.
_COLUMNS_MIN = 10
# Names are counted when there are many more (name, event) pairs than fields (> _SPARSE_GATE
# times as many); then a name present in fewer than 1/_SPARSE_RATIO of the events is handled
# event by event instead of as a column of mostly None.
_SPARSE_GATE = 4
_SPARSE_RATIO = 8


def _too_long(s: str) -> bool:
    """Past 64 KB of UTF-8? (The caller knows ``len(s) > _STR_FAST``: below that, ``len(s)``
    characters of 1..4 bytes each cannot be, and only the band between needs the copying
    encode.)"""
    return len(s) > MAX_STRING_BYTES or len(s.encode()) > MAX_STRING_BYTES


def _present(col: list[Any]) -> list[Any]:
    """The values of ``col`` that are not None, in order (without a Python-level loop)."""
    return list(compress(col, map(is_not, col, repeat(None))))


def _first_value(col: list[Any]) -> int:
    """The index of the first value of ``col`` that is not None (there is one)."""
    return next(compress(count(), map(is_not, col, repeat(None))))


def _gather(datas: list[dict[str, Any]], keys: set[str]) -> dict[str, list[Any]]:
    """The values of each of ``keys`` in every event, None where absent: one column per name.
    Names every event has are read in one pass (a tuple per event, transposed), the others one
    pass each; a name missing from some event is found by the KeyError it raises."""
    common = list(keys)
    cols: dict[str, list[Any]] = {}
    for _ in range(4):  # then the names left are read one by one
        if len(common) < 2:
            break
        try:
            rows = list(map(itemgetter(*common), datas))
        except KeyError as exc:
            common.remove(exc.args[0])
            continue
        cols = dict(zip(common, map(list, zip(*rows, strict=True)), strict=True))
        break
    for key in keys:
        if key not in cols:
            cols[key] = list(map(_dict_get, datas, repeat(key)))
    return cols


def _duration_fast(vals: list[Any], t: type) -> list[int] | None:
    if t is float:
        try:  # round(inf) raises: a value past ~1.8e302 ms takes the value-by-value path
            ns = list(map(round, map(mul, vals, repeat(1e6))))
        except (OverflowError, ValueError):
            return None
    elif t is int:
        ns = list(map(mul, vals, repeat(1_000_000)))
    else:
        return None
    return ns if min(ns) >= _INT64_MIN and max(ns) <= _INT64_MAX else None


def _hex_fast(vals: list[Any], t: type, chars: int, size: int) -> list[Any] | None:
    """Trace ids (32 hex digits -> 16 bytes) or span ids (16 -> int, zero -> None), when every
    value is exactly that; X-Ray ids, padding and the like take the value-by-value path."""
    if t is not str or set(map(len, vals)) != {chars}:
        return None
    try:
        raw = list(map(bytes.fromhex, vals))
    except ValueError:
        return None
    # fromhex skips whitespace: with ``chars`` characters, ``size`` bytes means only hex digits.
    if min(map(len, raw)) != size:
        return None
    if size == 16:
        return raw
    ids = list(map(int.from_bytes, raw, repeat("big")))
    return [i or None for i in ids] if 0 in ids else ids


class _Columns:
    """Columns under construction for ``n`` events. A value that makes its event invalid (a
    string past 64 KB, nested JSON that cannot be written) is recorded in ``bad`` and the event
    is dropped by ``finish``, so a rejected event leaves nothing behind."""

    __slots__ = ("attrs", "bad", "first", "fixed", "n", "row_major")

    def __init__(self, n: int) -> None:
        self.n = n
        self.fixed: dict[str, list[Any]] = {}
        self.attrs: dict[AttrKey, list[Any]] = {}
        # Where each attrs column got its first value: (row, the field's place in that event, or
        # None until ``finish`` looks it up). The per-field decoder created columns in that order.
        self.first: dict[AttrKey, tuple[int, int | None]] = {}
        self.row_major = True  # columns were created event by event, field by field: in order
        self.bad: dict[int, dict[str, str]] = {}  # row -> {field name: error message}

    # -- value by value: the definition --------------------------------------------------------

    def put(
        self,
        key: str,
        row: int,
        value: Any,
        convert: Callable[[Any], Any] | None = None,
        column: str = "",
    ) -> None:
        """One field of one event, as the per-field decoder did it: the fixed ``column`` when
        ``convert`` accepts the value, else an attribute typed by the value."""
        t = type(value)  # orjson yields exactly str, int, float, bool, None, dict, list
        if t is str and len(value) > _STR_FAST and _too_long(value):
            self.bad.setdefault(row, {})[key] = MSG_STRING_TOO_LONG
            return  # fixed string columns obey the same 64 KB limit
        if convert is not None:
            converted = convert(value)
            if converted is not _NO:
                fixed = self.fixed.get(column)
                if fixed is None:
                    default = Signal.EVENT if column == "signal" else None
                    fixed = self.fixed[column] = [default] * self.n
                fixed[row] = converted
                return
        if t is str:
            typ = "s"
        elif t is bool:
            typ = "b"
        elif t is int:
            if _INT64_MIN <= value <= _INT64_MAX:
                typ = "i"
            else:  # the store's integers are 64-bit: keep the digits as text
                typ, value = "s", str(value)
        elif t is float:
            if math.isnan(value):
                return
            typ = "f"
        elif t is dict or t is list:
            try:
                value = orjson.dumps(value).decode()
            except orjson.JSONEncodeError:
                # orjson writes at most 254 levels but reads 1024; refuse rather than guess.
                self.bad.setdefault(row, {})[key] = MSG_MALFORMED
                return
            if len(value) > _STR_FAST and _too_long(value):
                self.bad.setdefault(row, {})[key] = MSG_STRING_TOO_LONG
                return
            typ = "s"
        else:
            return  # None (JSON null) is dropped: a missing field and a null read the same
        attr = self.attrs.get((key, typ))
        if attr is None:  # every caller goes through a name's rows in ascending order
            self._room_for_a_column()
            attr = self.attrs[(key, typ)] = [None] * self.n
            self.first[(key, typ)] = (row, None)
        attr[row] = value

    def put_all(
        self, key: str, col: list[Any], convert: Callable[[Any], Any] | None, column: str
    ) -> None:
        put = self.put
        for row in compress(count(), map(is_not, col, repeat(None))):
            put(key, row, col[row], convert, column)

    def _room_for_a_column(self) -> None:
        """Refuse the batch before a column would take it past ``MAX_SLOTS`` (a column per
        name and value type, a slot per event in each)."""
        if (len(self.attrs) + 1) * self.n > MAX_SLOTS:
            raise EventError(MSG_TOO_WIDE)

    # -- a whole column at once: the common case -----------------------------------------------

    def attr_dense(self, key: str, col: list[Any], types: set[type], has_none: bool) -> None:
        """``col``: the values of ``key`` in every event (None where absent), not well-known."""
        if len(types) == 1:
            t = next(iter(types))
            vals = _present(col) if has_none else col
            if t is str:
                ok, typ = max(map(len, vals)) <= _STR_FAST, "s"
            elif t is int:
                ok, typ = min(vals) >= _INT64_MIN and max(vals) <= _INT64_MAX, "i"
            elif t is float:
                total = sum(vals)  # NaN in, NaN out (orjson never yields one; kept exact)
                ok, typ = total == total, "f"
            elif t is bool:
                ok, typ = True, "b"
            else:
                ok, typ = False, ""
            if ok and (key, typ) not in self.attrs:
                self._room_for_a_column()
                self.attrs[(key, typ)] = col
                self.first[(key, typ)] = (0 if col[0] is not None else _first_value(col), None)
                return
        self.put_all(key, col, None, "")

    def fixed_dense(
        self,
        key: str,
        col: list[Any],
        types: set[type],
        has_none: bool,
        column: str,
        convert: Callable[[Any], Any],
    ) -> None:
        """``col``: the values of well-known ``key`` in every event (None where absent)."""
        kind, arg = _FAST_KIND[key]
        if len(types) == 1 and column not in self.fixed and kind != "none":
            t = next(iter(types))
            vals = _present(col) if has_none else col
            out: list[Any] | None = None
            if kind == "same":  # the value itself, when it has the column's type
                if t is arg and (t is not str or max(map(len, vals)) <= _STR_FAST):
                    out = col
            elif kind == "range":
                if t is int and arg[0] <= min(vals) and max(vals) <= arg[1]:
                    out = col
            else:
                if kind == "duration":
                    converted = _duration_fast(vals, t)
                else:
                    converted = _hex_fast(vals, t, *arg)
                if converted is not None and has_none:
                    # value -> converted value; None (absent or null) -> None
                    out = list(map(dict(zip(vals, converted, strict=True)).get, col))
                else:
                    out = converted
            if out is not None:
                self.fixed[column] = out
                return
        self.put_all(key, col, convert, column)

    # -- the batch -----------------------------------------------------------------------------

    def put_event(self, row: int, data: dict[str, Any], only: set[str] | None = None) -> None:
        """The fields of one event (those in ``only``, if given), value by value: ``put`` with
        its common cases inlined. For single events and small batches, where building columns
        costs more than it saves, and for names few events of a batch have."""
        put, attrs, first, n = self.put, self.attrs, self.first, self.n
        dotted = type(data.get("service.name")) is str
        for pos, (key, value) in enumerate(data.items()):
            if value is None or (only is not None and key not in only):
                continue
            spec = _FIXED_FIELDS.get(key)
            if spec is not None and not (dotted and key == "service_name"):
                put(key, row, value, spec[1], spec[0])
                continue
            t = type(value)
            if t is str:
                if len(value) > _STR_FAST:
                    put(key, row, value)
                    continue
                attr_key = (key, "s")
            elif t is int:
                if not _INT64_MIN <= value <= _INT64_MAX:
                    put(key, row, value)
                    continue
                attr_key = (key, "i")
            elif t is float:
                if value != value:  # NaN
                    continue
                attr_key = (key, "f")
            elif t is bool:
                attr_key = (key, "b")
            else:
                put(key, row, value)
                continue
            attr = attrs.get(attr_key)
            if attr is None:
                self._room_for_a_column()
                attr = attrs[attr_key] = [None] * n
                first[attr_key] = (row, pos)
            attr[row] = value

    def fill(self, datas: list[dict[str, Any]]) -> None:
        """Every field of ``datas`` (the events' ``data`` objects, ``n`` of them): well-known
        names first (service.name before service_name), then the other names many events have,
        as columns; then the names few events have, event by event."""
        n = self.n
        keys = set().union(*datas) if n >= _COLUMNS_MIN else set()
        sparse: set[str] = set()
        if len(keys) * n > _SPARSE_GATE * sum(map(len, datas)):
            counts = Counter(chain.from_iterable(datas))
            dense = set(compress(counts, map(ge, counts.values(), repeat(n / _SPARSE_RATIO))))
            if dense.issubset(_FIXED_FIELDS):  # no name many events have but well-known ones
                keys = set()
            else:
                dense.update(keys.intersection(_FIXED_FIELDS))  # always columns
                sparse = keys - dense
                keys = dense
        if not keys:  # a small batch, or one of names unlike from event to event
            for row, data in enumerate(datas):
                self.put_event(row, data)
            return
        self.row_major = False
        cols = _gather(datas, keys)
        dotted_everywhere = False  # every event has a string service.name
        dotted: list[Any] | None = None
        for key, (column, convert) in _FIXED_FIELDS.items():  # service.name before service_name
            if key not in keys:
                continue
            keys.discard(key)
            col = cols[key]
            types = set(map(type, col))
            has_none = _NoneType in types
            types.discard(_NoneType)
            if not types:
                continue
            if key == "service_name" and dotted is not None:
                # service.name wins where it is a string; there, service_name is an attribute
                if dotted_everywhere:
                    self.attr_dense(key, col, types, has_none)
                    continue
                put = self.put
                for row in compress(count(), map(is_not, col, repeat(None))):
                    if type(dotted[row]) is str:
                        put(key, row, col[row])
                    else:
                        put(key, row, col[row], convert, column)
                continue
            if key == "service.name":
                dotted = col.copy()
                dotted_everywhere = types == {str} and not has_none
            self.fixed_dense(key, col, types, has_none, column, convert)
        for key in keys:
            col = cols[key]
            types = set(map(type, col))
            has_none = _NoneType in types
            types.discard(_NoneType)
            if types:
                self.attr_dense(key, col, types, has_none)
        if sparse:
            put_event = self.put_event
            for row, data in enumerate(datas):
                put_event(row, data, sparse)

    def finish(
        self, datas: list[dict[str, Any]], dataset: str, times: list[int], rates: list[int]
    ) -> tuple[EventBatch, dict[int, str]]:
        """The batch of the valid events, and ``{row: error message}`` for the others (the
        message of the event's first bad field, in the event's field order)."""
        errors: dict[int, str] = {}
        fixed, attrs, first = self.fixed, self.attrs, self.first
        n = self.n
        if self.bad:
            for row, failed in self.bad.items():
                errors[row] = next(failed[k] for k in datas[row] if k in failed)
            keep = [row not in errors for row in range(n)]
            dropped = sorted(errors)
            datas = list(compress(datas, keep))
            times = list(compress(times, keep))
            rates = list(compress(rates, keep))
            fixed = {c: list(compress(v, keep)) for c, v in fixed.items()}
            n = len(datas)
            attrs, first = {}, {}
            for attr_key, values in self.attrs.items():
                values = list(compress(values, keep))
                if values.count(None) == n:  # a column only rejected events had goes
                    continue
                attrs[attr_key] = values
                row, pos = self.first[attr_key]
                if row in errors:
                    first[attr_key] = (_first_value(values), None)
                else:
                    first[attr_key] = (row - bisect_left(dropped, row), pos)
        if len(attrs) > 1 and (self.bad or not self.row_major):
            # the order the per-field decoder created them in
            positions: dict[int, dict[str, int]] = {}
            for attr_key, (row, pos) in first.items():
                if pos is None:
                    places = positions.get(row)
                    if places is None:
                        places = positions[row] = dict(zip(datas[row], count()))
                    first[attr_key] = (row, places[attr_key[0]])
            attrs = {k: attrs[k] for k in sorted(attrs, key=first.__getitem__)}
        batch = EventBatch()
        cols = batch.cols
        for column in FIXED_COLUMNS:
            values = fixed.get(column)
            cols[column] = values if values is not None else [None] * n
        cols["dataset"] = [dataset] * n
        cols["ts_ns"] = times
        cols["samplerate"] = rates
        if "signal" not in fixed:
            cols["signal"] = [Signal.EVENT] * n
        batch.attrs = attrs
        batch.n = n
        return batch, errors


# --- event times, fast -------------------------------------------------------------------------

_RFC3339_HEAD = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})")
_RFC3339_ZONE = re.compile(r"\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?")


def _head_seconds(head: str) -> int | None:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) -> epoch seconds, as ``_rfc3339_ns`` reads it; else None."""
    m = _RFC3339_HEAD.fullmatch(head)
    if m is None:
        return None
    try:
        dt = datetime(*(int(g) for g in m.group(1, 2, 3, 4, 5, 6)))
    except ValueError:
        return None
    return calendar.timegm(dt.timetuple())


def _zone_offset(zone: str) -> int | None:
    """What follows the fraction (``Z``, ``+02:00``, nothing ...) -> offset seconds; else None."""
    m = _RFC3339_ZONE.fullmatch(zone)
    if m is None:
        return None
    if not m.group(2):
        return 0
    offset = int(m.group(3)) * 3600 + int(m.group(4)) * 60
    return offset if m.group(2) == "+" else -offset


_FRACTION_SCALE = [10 ** (9 - i) for i in range(10)]  # "5" -> 500_000_000 ns


def _event_times(now_ns: int) -> Callable[[Any], int]:
    """``parse_event_time`` for one batch, with its costly parts cached: the date and time of day
    (the first 19 characters, the same for every event of a second) and the zone. A value this
    does not read exactly (not a string, not this shape) goes to ``parse_event_time``."""
    heads: dict[str, int | None] = {}
    zones: dict[str, int | None] = {"": 0, "Z": 0, "z": 0}
    latest = now_ns + _FUTURE_LIMIT_NS

    def event_time(value: Any) -> int:
        if type(value) is not str:
            return parse_event_time(value, now_ns)
        text = value.strip()
        head = text[:19]
        seconds = heads.get(head, _NO)
        if seconds is _NO:
            seconds = heads[head] = _head_seconds(head)
        if seconds is None:
            return parse_event_time(value, now_ns)
        tail = text[19:]
        fraction = 0
        if tail and tail[0] in ".,":
            zone = tail[1:].lstrip("0123456789")
            digits = tail[1 : len(tail) - len(zone)]
            if not digits:
                return parse_event_time(value, now_ns)
            if len(digits) < 10:
                fraction = int(digits) * _FRACTION_SCALE[len(digits)]
            else:  # ns precision, extra digits cut
                fraction = int(digits[:9])
        else:
            zone = tail
        offset = zones.get(zone, _NO)
        if offset is _NO:
            offset = zones[zone] = _zone_offset(zone)
        if offset is None:
            return parse_event_time(value, now_ns)
        ns = (seconds - offset) * _NS + fraction
        if ns > latest or not _INT64_MIN <= ns <= _INT64_MAX:
            return now_ns
        return ns

    return event_time


def _uniform_times(values: list[Any], now_ns: int) -> list[int] | None:
    """Event times that all share one layout, as clients write them (libhoney-py
    ``2024-05-09T22:13:20.123456+00:00``, libhoney-js ``...20.123Z``, libhoney-go ``...20.1234Z``
    with trailing zeros cut): ``YYYY-MM-DDTHH:MM:SS``, then a fraction of ASCII digits of any
    width in every value or in none, then one zone. Read column by column, like the fields;
    None when the values are not all like that (each then goes through ``_event_times``)."""
    if set(map(type, values)) != {str}:
        return None
    first = values[0]
    fractions: Iterable[int]
    if first[19:20] in (".", ","):
        zone = first[20:].lstrip("0123456789")
        separators = set(map(getitem, values, repeat(slice(19, 20))))
        if not separators <= {".", ","} or not _all_end_with(values, zone):
            return None
        digits = list(map(getitem, values, repeat(slice(20, -len(zone) or None))))
        joined = "".join(digits)
        shortest, longest = min(map(len, digits)), max(map(len, digits))
        if not (joined.isascii() and joined.isdigit()) or shortest == 0:
            return None
        if longest > 9:  # ns precision, extra digits cut
            digits = list(map(getitem, digits, repeat(slice(0, 9))))
            shortest, longest = min(shortest, 9), 9
        if shortest == longest:
            scales: Iterable[int] = repeat(_FRACTION_SCALE[longest])
        else:
            scales = map(_FRACTION_SCALE.__getitem__, map(len, digits))
        fractions = map(mul, map(int, digits), scales)
    else:
        zone = first[19:]
        if not _all_end_with(values, zone) or set(map(len, values)) != {len(first)}:
            return None
        fractions = repeat(0)
    offset = _zone_offset(zone)  # None for trailing whitespace too (the values are not stripped)
    if offset is None:
        return None
    heads = list(map(getitem, values, repeat(slice(0, 19))))
    seconds = {head: _head_seconds(head) for head in set(heads)}
    if None in seconds.values():
        return None
    utc = map(seconds.__getitem__, heads)
    if offset:
        utc = map(sub, utc, repeat(offset))
    ns = list(map(add, map(mul, utc, repeat(_NS)), fractions))
    latest = now_ns + _FUTURE_LIMIT_NS
    if max(ns) > min(latest, _INT64_MAX) or min(ns) < _INT64_MIN:
        return [now_ns if t > latest or not _INT64_MIN <= t <= _INT64_MAX else t for t in ns]
    return ns


def _all_end_with(values: list[str], suffix: str) -> bool:
    return not suffix or all(map(str.endswith, values, repeat(suffix)))


def _batch_times(values: list[Any], now_ns: int) -> list[int]:
    """``parse_event_time(value, now_ns)`` for each of ``values``."""
    if len(values) > 1:
        times = _uniform_times(values, now_ns)
        if times is not None:
            return times
    return list(map(_event_times(now_ns), values))


def _items(
    items: list[Any],
) -> tuple[list[dict[str, Any]], list[Any], list[int], list[int], list[dict]]:
    """A batch's items -> the events' ``data`` objects, their ``time`` values (raw), their
    sample rates, ``where`` (``datas[i]`` is ``items[where[i]]``) and one status per item: 202,
    or 400 for an item that is not an event object, has no ``data`` or too many fields."""
    datas: list[dict[str, Any]] = []
    times: list[Any] = []
    rates: list[int] = []
    where: list[int] = []
    statuses: list[dict] = []
    for item in items:
        if type(item) is dict:  # orjson yields exact dicts and lists
            data = item.get("data")
            if type(data) is dict:
                if len(data) <= MAX_FIELDS:
                    where.append(len(statuses))
                    statuses.append({"status": 202})
                    datas.append(data)
                    times.append(item.get("time"))
                    rate = item.get("samplerate")
                    if type(rate) is not int or not 0 < rate <= _SAMPLERATE_MAX:
                        rate = parse_samplerate(rate)
                    rates.append(rate)
                    continue
                error = MSG_TOO_MANY_COLUMNS
            else:
                error = MSG_EMPTY if data is None else MSG_MALFORMED
        else:
            error = MSG_MALFORMED
        statuses.append({"status": 400, "error": error})
    return datas, times, rates, where, statuses


def _loads(body: bytes) -> Any:
    if not body or body.isspace():
        raise EventError(MSG_EMPTY)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EventError(MSG_MALFORMED) from None


# --- public entry points ------------------------------------------------------------------------


def decode_event(
    body: bytes, dataset: str, event_time: str | None, samplerate: str | None, now_ns: int
) -> EventBatch:
    """Decode a ``POST /1/events/{dataset}`` body: one JSON object of fields (§7.2).

    ``event_time`` and ``samplerate`` are the ``X-Honeycomb-Event-Time`` and
    ``X-Honeycomb-Samplerate`` header values (None when absent). Returns a one-row batch or
    raises ``EventError`` with Honeycomb's message.
    """
    data = _loads(body)
    if not isinstance(data, dict):
        raise EventError(MSG_MALFORMED)
    if len(data) > MAX_FIELDS:
        raise EventError(MSG_TOO_MANY_COLUMNS)
    columns = _Columns(1)
    columns.fill([data])
    batch, errors = columns.finish(
        [data], dataset, [parse_event_time(event_time, now_ns)], [parse_samplerate(samplerate)]
    )
    if errors:
        raise EventError(errors[0])
    return batch


def decode_batch(body: bytes, dataset: str, now_ns: int) -> tuple[EventBatch, list[dict]]:
    """Decode a ``POST /1/batch/{dataset}`` body: ``[{"data": {..}, "time": .., "samplerate": N}]``.

    Returns the accepted events and one status per input item, in input order (§7.3):
    ``{"status": 202}`` or ``{"status": 400, "error": "..."}``. A bad item never fails the others;
    only a body that is not a JSON array, or one past ``MAX_SLOTS``, raises ``EventError``.
    """
    items = _loads(body)
    if not isinstance(items, list):
        raise EventError(MSG_MALFORMED)
    datas, times, rates, where, statuses = _items(items)
    times = _batch_times(times, now_ns)
    columns = _Columns(len(datas))
    columns.fill(datas)
    batch, errors = columns.finish(datas, dataset, times, rates)
    for row, message in errors.items():
        statuses[where[row]] = {"status": 400, "error": message}
    return batch, statuses
