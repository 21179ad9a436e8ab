"""Reference decoder for Honeycomb's events API (test-only).

The decode path of ``tracehive.ingest.honeycomb`` as it was before its fast path was written (the
pure, per-field implementation), copied verbatim; the helpers both share (time and samplerate
parsing, the well-known field conversions, limits and messages) are imported instead.
``test_honeycomb_differential.py`` checks that the production decoder gives the same
``EventBatch`` and the same per-event errors as this one on random input.
Do not "fix" this file: a behaviour change belongs in the production decoder *and* here, on
purpose, with a test.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from tracehive.model.batch import FIXED_COLUMNS, AttrKey, EventBatch, Signal

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

# Shared with the production decoder (time, samplerate and field conversions are not what the
# differential tests check): imported, not copied.
from tracehive.ingest.honeycomb import (
    _FIXED_FIELDS,
    _INT64_MAX,
    _INT64_MIN,
    _NO,
    MAX_FIELDS,
    MAX_STRING_BYTES,
    MSG_EMPTY,
    MSG_MALFORMED,
    MSG_STRING_TOO_LONG,
    MSG_TOO_MANY_COLUMNS,
    EventError,
    _loads,
    parse_event_time,
    parse_samplerate,
)


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
