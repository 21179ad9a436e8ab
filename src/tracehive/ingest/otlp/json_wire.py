"""OTLP/JSON primitives: strict, path-reporting readers over ``orjson.loads`` output.

The OTLP/JSON encoding (OTLP spec, "JSON Protobuf Encoding"; PROTOCOLS.md §6.1) is the proto3
JSON mapping with these differences: trace and span ids are hex strings, not base64; enums are
integers; keys are lowerCamelCase, and receivers SHOULD also accept the original snake_case
names. So: 64-bit ints arrive as strings or numbers, bytes values as base64, doubles may be the
strings "NaN"/"Infinity"/"-Infinity". ``null`` means "not set" (proto3 JSON), unknown keys are
ignored. Anything else of the wrong type raises ``JsonError``; the walkers prefix the path
(``resourceSpans[0].scopeSpans[1].spans[3]``) on the way out and turn it into a ``DecodeError``.
Walking the dicts directly is ~10x faster than ``json_format.ParseDict`` (MEASUREMENTS.md).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from tracehive.ingest.otlp.common import DecodeError, TypedValue, b64, to_json

_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_U64_MAX = 2**64 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


class JsonError(Exception):
    """A type error at a path; ``parts`` is innermost first (see ``under``), "" for "here"."""

    def __init__(self, message: str, part: str) -> None:
        super().__init__(message)
        self.message = message
        self.parts = [part]

    def under(self, part: str) -> JsonError:
        """Prefix an outer path component (``spans[3]``) and re-raise."""
        self.parts.append(part)
        return self

    def path(self) -> str:
        return ".".join(p for p in reversed(self.parts) if p)


class at:
    """Prefix ``name[index]`` to the path of a ``JsonError`` leaving the block. Cheap: the text
    is only built when an error passes through."""

    __slots__ = ("index", "name")

    def __init__(self, name: str, index: int | None = None) -> None:
        self.name = name
        self.index = index

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> bool:
        if isinstance(exc, JsonError):
            exc.under(self.name if self.index is None else f"{self.name}[{self.index}]")
        return False


def need_obj(v: Any) -> dict[str, Any]:
    """``v`` itself must be an object (a list element: the caller's ``at`` names it)."""
    if type(v) is not dict:
        raise JsonError("not an object", "")
    return v


def load(body: bytes, top: str) -> dict[str, Any]:
    """Parse the body; ``top`` is the request's list key, for messages."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"payload is not valid JSON: {exc}") from None
    if type(doc) is not dict:
        raise DecodeError(f"payload is not a JSON object (expected {{{top!r}: [...]}})")
    return doc


def as_decode_error(exc: JsonError) -> DecodeError:
    return DecodeError(f"{exc.path()}: {exc.message}")


# The get_* readers take a field's lowerCamelCase name and, where it differs, its snake_case one
# (OTLP/JSON: receivers SHOULD accept both). Absent or null gives the proto3 default.


def get_list(o: dict[str, Any], camel: str, snake: str | None = None) -> list[Any]:
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return []
    if type(v) is not list:
        raise JsonError("not a list", camel)
    return v


def get_obj(o: dict[str, Any], camel: str, snake: str | None = None) -> dict[str, Any]:
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return {}
    if type(v) is not dict:
        raise JsonError("not an object", camel)
    return v


def get_str(o: dict[str, Any], camel: str, snake: str | None = None) -> str:
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return ""
    if type(v) is not str:
        raise JsonError("not a string", camel)
    return v


def to_int(v: Any, lo: int, hi: int) -> int | None:
    """A JSON int64/uint64/int32 (number or decimal string) in [lo, hi], or None if it is not.
    Strings: ASCII digits with an optional minus, nothing else (``int()`` alone would take
    spaces, ``_`` and non-ASCII digits)."""
    t = type(v)
    if t is int:
        n = v
    elif t is str:
        if not (0 < len(v) <= 20 and v.isascii()):
            return None
        if not (v.isdigit() or (v[0] == "-" and v[1:].isdigit())):
            return None
        n = int(v)
    elif t is float and v.is_integer():
        n = int(v)
    else:
        return None
    return n if lo <= n <= hi else None


def get_u64(o: dict[str, Any], camel: str, snake: str | None = None) -> int:
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return 0
    n = to_int(v, 0, _U64_MAX)
    if n is None:
        raise JsonError("not an unsigned 64-bit integer", camel)
    return n


def get_i32(o: dict[str, Any], camel: str, snake: str | None = None) -> int:
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return 0
    n = to_int(v, _I32_MIN, _I32_MAX)
    if n is None:
        raise JsonError("not a 32-bit integer", camel)
    return n


def get_i64(o: dict[str, Any], camel: str, snake: str | None = None) -> int:
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return 0
    n = to_int(v, _I64_MIN, _I64_MAX)
    if n is None:
        raise JsonError("not a 64-bit integer", camel)
    return n


def to_double(v: Any) -> float | None:
    t = type(v)
    if t is float:
        return v
    if t is int:
        return float(v)
    if t is str:
        special = _SPECIAL_FLOATS.get(v)
        if special is not None:
            return special
        if _FLOAT.fullmatch(v):
            return float(v)
    return None


def get_double(o: dict[str, Any], camel: str, snake: str | None = None) -> float:
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return 0.0
    d = to_double(v)
    if d is None:
        raise JsonError("not a number", camel)
    return d


def get_optional_double(o: dict[str, Any], camel: str) -> float | None:
    """A proto3 ``optional double`` (histogram sum/min/max): None when absent."""
    return None if o.get(camel) is None else get_double(o, camel)


def get_enum(o: dict[str, Any], camel: str, snake: str | None, names: dict[str, int]) -> int:
    """An enum: an integer (OTLP/JSON), or its name (the proto3 JSON mapping's default)."""
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return 0
    n = to_int(v, _I32_MIN, _I32_MAX)
    if n is None:
        n = names.get(v) if type(v) is str else None
        if n is None:
            raise JsonError("not an enum value", camel)
    return n


def get_bool(o: dict[str, Any], camel: str, snake: str | None = None) -> bool:
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return False
    if type(v) is not bool:
        raise JsonError("not a boolean", camel)
    return v


def get_id(o: dict[str, Any], camel: str, snake: str | None = None) -> bytes | None:
    """A trace/span id: hex in OTLP/JSON. ``b""`` when absent; None when the text is not hex,
    which callers treat like an id of the wrong length."""
    v = o.get(camel)
    if v is None and snake is not None:
        v = o.get(snake)
    if v is None:
        return b""
    if type(v) is not str:
        raise JsonError("not a string", camel)
    try:
        raw = bytes.fromhex(v)
    except ValueError:
        return None
    return raw if 2 * len(raw) == len(v) else None  # fromhex skips whitespace; we do not


def _bytes_b64(v: Any, where: str) -> str:
    """proto3 JSON bytes (standard or URL-safe base64, padding optional) -> canonical base64."""
    if type(v) is not str:
        raise JsonError("not a base64 string", f"{where}.bytesValue")
    text = v.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return b64(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise JsonError("not base64", f"{where}.bytesValue") from None


# AnyValue member key (both spellings) -> canonical camelCase name.
_MEMBERS = {
    "stringValue": "stringValue",
    "string_value": "stringValue",
    "boolValue": "boolValue",
    "bool_value": "boolValue",
    "intValue": "intValue",
    "int_value": "intValue",
    "doubleValue": "doubleValue",
    "double_value": "doubleValue",
    "bytesValue": "bytesValue",
    "bytes_value": "bytesValue",
    "arrayValue": "arrayValue",
    "array_value": "arrayValue",
    "kvlistValue": "kvlistValue",
    "kvlist_value": "kvlistValue",
}


def _member(av: Any, where: str) -> tuple[str | None, Any]:
    """The set member of an AnyValue object: (canonical name, value) or (None, None)."""
    if type(av) is not dict:
        raise JsonError("not an object", where)
    found: str | None = None
    value: Any = None
    for k, v in av.items():
        name = _MEMBERS.get(k)
        if name is None or v is None:
            continue
        if found is not None:
            raise JsonError("more than one of the AnyValue fields is set", where)
        found, value = name, v
    return found, value


def _scalar(name: str, v: Any, where: str) -> Any:
    """A scalar member's Python value (NaN stays NaN here; callers decide)."""
    if name == "stringValue":
        if type(v) is str:
            return v
        raise JsonError("not a string", f"{where}.{name}")
    if name == "boolValue":
        if type(v) is bool:
            return v
        raise JsonError("not a boolean", f"{where}.{name}")
    if name == "intValue":
        n = to_int(v, _I64_MIN, _I64_MAX)
        if n is None:
            raise JsonError("not a 64-bit integer", f"{where}.{name}")
        return n
    if name == "doubleValue":
        d = to_double(v)
        if d is None:
            raise JsonError("not a number", f"{where}.{name}")
        return d
    return _bytes_b64(v, where)


def _values(container: Any, where: str) -> list[Any]:
    """The ``values`` list of an ArrayValue / KeyValueList object."""
    if type(container) is not dict:
        raise JsonError("not an object", where)
    values = container.get("values")
    if values is None:
        return []
    if type(values) is not list:
        raise JsonError("not a list", f"{where}.values")
    return values


def plain(av: Any, where: str) -> Any:
    """An AnyValue object as a natural Python value (common.py's nested conversion). Errors
    carry paths that start at ``where``, the name of ``av``'s place."""
    if av is None:
        return None
    name, v = _member(av, where)
    if name is None:
        return None
    if name == "arrayValue":
        at = f"{where}.arrayValue"
        return [plain(x, f"{at}.values[{i}]") for i, x in enumerate(_values(v, at))]
    if name == "kvlistValue":
        at = f"{where}.kvlistValue"
        out = {}
        for i, kv in enumerate(_values(v, at)):
            kv_at = f"{at}.values[{i}]"
            if type(kv) is not dict:
                raise JsonError("not an object", kv_at)
            key = kv.get("key")
            if key is None:
                key = ""
            elif type(key) is not str:
                raise JsonError("not a string", f"{kv_at}.key")
            out[key] = plain(kv.get("value"), f"{kv_at}.value")
        return out
    return _scalar(name, v, where)


def is_string(av: Any) -> bool:
    """Whether an (already validated) AnyValue object holds a string."""
    return av is not None and _member(av, "")[0] == "stringValue"


def typed(av: Any, where: str) -> TypedValue | None:
    """An AnyValue object as a typed attribute value, None when dropped (common.py's rules)."""
    name, v = _member(av, where)
    if name is None:
        return None
    if name == "stringValue" and type(v) is str:  # the common case first
        return "s", v
    if name == "arrayValue" or name == "kvlistValue":
        return "s", to_json(plain(av, where))
    value = _scalar(name, v, where)
    if name == "intValue":
        return "i", value
    if name == "boolValue":
        return "b", value
    if name == "doubleValue":
        return None if value != value else ("f", value)
    return "s", value  # bytesValue, already base64


def attributes(o: dict[str, Any], camel: str = "attributes") -> list[tuple[str, str, Any]]:
    """A KeyValue list as ``[(key, t, v)]`` in order, dropped values and empty keys left out.

    The common shapes (one scalar member of the right JSON type) are recognised inline; the rest
    goes through ``typed``, which checks everything and names the path."""
    items = o.get(camel)
    if items is None:
        return []
    if type(items) is not list:
        raise JsonError("not a list", camel)
    out = []
    append = out.append
    for i, kv in enumerate(items):
        t = None
        if type(kv) is dict:
            key = kv.get("key")
            av = kv.get("value")
            if type(key) is str and type(av) is dict and len(av) == 1:
                for name, v in av.items():
                    vt = type(v)
                    if name == "stringValue":
                        t = "s" if vt is str else None
                    elif name == "intValue":
                        if vt is str or vt is int:
                            v = to_int(v, _I64_MIN, _I64_MAX)
                            t = None if v is None else "i"
                    elif name == "boolValue":
                        t = "b" if vt is bool else None
                    elif name == "doubleValue" and vt is float and v == v:
                        t = "f"
        if t is None:  # anything else, checked in full
            try:
                if type(kv) is not dict:
                    raise JsonError("not an object", "")
                key = get_str(kv, "key")
                av = kv.get("value")
                tv = None if av is None else typed(av, "value")
            except JsonError as exc:
                raise exc.under(f"{camel}[{i}]") from None
            if tv is None:
                continue
            t, v = tv
        if key:
            append((key, t, v))
    return out


def attr_map(o: dict[str, Any], camel: str = "attributes") -> dict[str, TypedValue]:
    """``attributes`` as a dict: the last of a key wins (common.pb_attr_map's twin)."""
    return {key: (t, v) for key, t, v in attributes(o, camel)}
