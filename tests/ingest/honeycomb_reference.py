"""Reference decoder for Honeycomb's events API (test-only).

A verbatim copy of ``tracehive.ingest.honeycomb`` as it was before its fast path was written (the
pure, per-field implementation). ``test_honeycomb_differential.py`` checks that the production
decoder gives the same ``EventBatch`` and the same per-event errors as this one on random input.
Do not "fix" this file: a behaviour change belongs in the production decoder *and* here, on
purpose, with a test.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from tracehive.model.batch import FIXED_COLUMNS, AttrKey, EventBatch, Signal
from tracehive.model.ids import InvalidId, trace_id_from_any

__all__ = [
    "MAX_FIELDS",
    "MAX_STRING_BYTES",
    "MSG_EMPTY",
    "MSG_MALFORMED",
    "MSG_STRING_TOO_LONG",
    "MSG_TOO_MANY_COLUMNS",
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


def _check_string(s: str) -> None:
    # len(s) chars take 1..4 UTF-8 bytes each: only the middle band needs the (copying) encode.
    n = len(s)
    if n > MAX_STRING_BYTES or (n * 4 > MAX_STRING_BYTES and len(s.encode()) > MAX_STRING_BYTES):
        raise EventError(MSG_STRING_TOO_LONG)


def _json_text(v: Any) -> str:
    """A nested object or array as compact JSON text (how attributes keep structure)."""
    try:
        text = orjson.dumps(v).decode()
    except orjson.JSONEncodeError:
        # orjson writes at most 254 levels but reads 1024; refuse rather than guess.
        raise EventError(MSG_MALFORMED) from None
    _check_string(text)
    return text


# Fixed columns an event may or may not set; the other four are set on every row.
_SPARSE_FIXED = tuple(
    c for c in FIXED_COLUMNS if c not in ("dataset", "ts_ns", "samplerate", "signal")
)


class _Rows:
    """Columnar rows under construction: the batch path appends thousands of events, and
    ``EventBatch.append`` (which pads every attribute column per row) would dominate its cost.
    ``add`` validates a whole event before recording any of it, so a rejected batch item leaves
    no partial row."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.fixed: list[dict[str, Any]] = []  # per row: only the fixed columns it sets
        self.ts: list[int] = []
        self.rates: list[int] = []
        self.attrs: dict[AttrKey, list[tuple[int, Any]]] = {}  # (row, value) pairs, sparse

    def add(self, data: dict[str, Any], ts_ns: int, samplerate: int) -> None:
        if len(data) > MAX_FIELDS:
            raise EventError(MSG_TOO_MANY_COLUMNS)
        fixed: dict[str, Any] = {}
        attrs: list[tuple[AttrKey, Any]] = []
        service_dotted = type(data.get("service.name")) is str
        for key, value in data.items():
            t = type(value)  # orjson yields exactly str, int, float, bool, None, dict, list
            if t is str:
                _check_string(value)  # fixed string columns obey the same 64 KB limit
            spec = _FIXED_FIELDS.get(key)
            if spec is not None and not (key == "service_name" and service_dotted):
                converted = spec[1](value)
                if converted is not _NO:
                    fixed[spec[0]] = converted
                    continue
            if t is str:
                attrs.append(((key, "s"), value))
            elif t is bool:
                attrs.append(((key, "b"), value))
            elif t is int:
                if _INT64_MIN <= value <= _INT64_MAX:
                    attrs.append(((key, "i"), value))
                else:  # the store's integers are 64-bit: keep the digits as text
                    attrs.append(((key, "s"), str(value)))
            elif t is float:
                if not math.isnan(value):
                    attrs.append(((key, "f"), value))
            elif t is dict or t is list:
                attrs.append(((key, "s"), _json_text(value)))
            # None (JSON null) is dropped: a missing field and a null read the same in queries
        row = len(self.fixed)
        self.fixed.append(fixed)
        self.ts.append(ts_ns)
        self.rates.append(samplerate)
        for attr_key, value in attrs:
            self.attrs.setdefault(attr_key, []).append((row, value))

    def batch(self) -> EventBatch:
        n = len(self.fixed)
        batch = EventBatch()
        cols = batch.cols
        for column in _SPARSE_FIXED:
            cols[column] = [f.get(column) for f in self.fixed]
        cols["dataset"] = [self.dataset] * n
        cols["ts_ns"] = self.ts
        cols["samplerate"] = self.rates
        cols["signal"] = [f.get("signal", Signal.EVENT) for f in self.fixed]
        for attr_key, pairs in self.attrs.items():
            values: list[Any] = [None] * n
            for row, value in pairs:
                values[row] = value
            batch.attrs[attr_key] = values
        batch.n = n
        return batch


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
    rows = _Rows(dataset)
    rows.add(data, parse_event_time(event_time, now_ns), parse_samplerate(samplerate))
    return rows.batch()


def decode_batch(body: bytes, dataset: str, now_ns: int) -> tuple[EventBatch, list[dict]]:
    """Decode a ``POST /1/batch/{dataset}`` body: ``[{"data": {..}, "time": .., "samplerate": N}]``.

    Returns the accepted events and one status per input item, in input order (§7.3):
    ``{"status": 202}`` or ``{"status": 400, "error": "..."}``. A bad item never fails the others;
    only a body that is not a JSON array raises ``EventError``.
    """
    items = _loads(body)
    if not isinstance(items, list):
        raise EventError(MSG_MALFORMED)
    rows = _Rows(dataset)
    statuses: list[dict] = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise EventError(MSG_MALFORMED)
            data = item.get("data")
            if data is None:
                raise EventError(MSG_EMPTY)
            if not isinstance(data, dict):
                raise EventError(MSG_MALFORMED)
            ts_ns = parse_event_time(item.get("time"), now_ns)
            rows.add(data, ts_ns, parse_samplerate(item.get("samplerate")))
        except EventError as exc:
            statuses.append({"status": 400, "error": exc.message})
        else:
            statuses.append({"status": 202})
    return rows.batch(), statuses
