"""Trace and span ids: W3C (32/16 hex digits) and X-Ray (``1-XXXXXXXX-YYYYYYYYYYYYYYYYYYYYYYYY``).

Internally a trace id is 16 raw bytes and a span id is an unsigned 64-bit integer (the store keeps
span ids as UBIGINT). See PROTOCOLS.md §2e for the conversions:
W3C -> X-Ray is ``"1-" + tid[0:8] + "-" + tid[8:32]``; X-Ray -> W3C drops the ``1-`` and the dash.
"""

from __future__ import annotations

import re

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_XRAY = re.compile(r"1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})")


class InvalidId(ValueError):
    """A trace or span id that is neither W3C nor X-Ray shaped."""


def trace_id_from_any(text: str) -> bytes:
    """Parse a W3C (32 hex) or X-Ray (``1-8hex-24hex``) trace id into 16 bytes."""
    text = text.strip()
    if _HEX32.fullmatch(text):
        return bytes.fromhex(text)
    m = _XRAY.fullmatch(text)
    if m:
        return bytes.fromhex(m.group(1) + m.group(2))
    raise InvalidId(f"not a trace id (32 hex digits or 1-XXXXXXXX-24 hex digits): {text[:64]!r}")


def trace_id_to_hex(tid: bytes) -> str:
    return tid.hex()


def trace_id_to_xray(tid: bytes) -> str:
    h = tid.hex()
    return f"1-{h[:8]}-{h[8:]}"


def span_id_from_hex(text: str) -> int:
    if not _HEX16.fullmatch(text):
        raise InvalidId(f"not a span id (16 hex digits): {text[:64]!r}")
    return int(text, 16)


def span_id_from_bytes(raw: bytes) -> int | None:
    """8 wire bytes -> unsigned int; an all-zero or empty id means "none" (OTLP, W3C)."""
    if len(raw) != 8:
        return None
    value = int.from_bytes(raw, "big")
    return value or None


def span_id_to_hex(sid: int) -> str:
    return f"{sid:016x}"
