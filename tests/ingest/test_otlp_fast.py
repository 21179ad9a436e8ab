"""The C OTLP trace decoder (``tracehive.ingest._otlp_fast``) against the pure-Python reference.

* differential: hypothesis-built ExportTraceServiceRequests (every AnyValue kind, bad ids, several
  resources/scopes, duplicate keys, merged singular messages), SDK-encoded payloads and large
  batches decode exactly (type-exact) as ``decode_traces_py(body, "protobuf")`` does;
* wire compatibility: unknown fields, and every known field with every wrong wire type (protobuf
  skips those as unknown), change nothing; singular sub-messages split in two occurrences merge
  back; nesting and group limits match ParseFromString;
* robustness: truncations at every offset (top level and inside every nested field, the enclosing
  lengths kept consistent), byte mutations at every level, random bytes, invalid UTF-8 in every
  string field: a result or ValueError, never anything else, and ValueError exactly when
  ``ParseFromString`` refuses the bytes;
* allocation failures injected at every allocation, threads re-entering the decoder, quadratic
  blow-up on duplicate keys;
* leaks: tracemalloc, RSS and singleton refcounts stay flat over many decodes (errors included).

``TRACEHIVE_OTLP_FAST_SO=/path/to/_otlp_fast.so`` tests another build of the extension (e.g. one
built with ``-fsanitize=address,undefined``; see bench/decode_otlp_fast.py for how);
``OTLP_FAST_EXAMPLES`` sets the hypothesis examples per property (default 100) and
``OTLP_FAST_NO_SHRINK=1`` reports failures unshrunk.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
import math
import os
import random
import sys

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tracehive.model.batch import FIXED_COLUMNS, EventBatch


def _load_fast():
    path = os.environ.get("TRACEHIVE_OTLP_FAST_SO")
    if not path:
        return pytest.importorskip("tracehive.ingest._otlp_fast")
    name = "tracehive.ingest._otlp_fast"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


fast = _load_fast()


def _load_reference():
    """``decode_traces_py(body, "protobuf")``; the traces module directly while the package's
    entry point is not there."""
    try:
        from tracehive.ingest.otlp import decode_traces_py
    except ImportError:
        from tracehive.ingest.otlp.traces import decode_traces_pb

        return decode_traces_pb
    return lambda body: decode_traces_py(body, "protobuf")


reference = _load_reference()

EXAMPLES = int(os.environ.get("OTLP_FAST_EXAMPLES", "100"))
HYP = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # OTLP_FAST_NO_SHRINK=1: report the first failure as found (quick runs of broken builds)
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    if os.environ.get("OTLP_FAST_NO_SHRINK")
    else list(Phase),
)


# --------------------------------------------------------------------------------------------
# Comparison


def _canon(v):
    """Type-exact form: True != 1, 1.0 != 1, -0.0 != 0.0, NaN == NaN."""
    if isinstance(v, float):
        return ("float", repr(v))
    return (type(v).__name__, v)


def _canon_list(values):
    return [_canon(v) for v in values]


def assert_same(body: bytes) -> None:
    """The C decoder gives exactly the reference's batch for ``body``, or both refuse it."""
    try:
        ExportTraceServiceRequest.FromString(body)
        valid = True
    except Exception:
        valid = False
    try:
        got = fast.decode_traces(body)
    except ValueError:
        assert not valid, "C decoder refused bytes ParseFromString accepts"
        with pytest.raises(ValueError):
            reference(body)
        return
    assert valid, "C decoder accepted bytes ParseFromString refuses"
    assert_matches_reference(got, reference(body))


def assert_matches_reference(got, ref) -> None:
    cols, attrs, n, rejected, message = got
    batch = ref.events if ref.events is not None else EventBatch()
    assert n == batch.n
    assert rejected == ref.rejected
    assert message == ref.error_message
    assert list(cols) == list(FIXED_COLUMNS)
    for c in FIXED_COLUMNS:
        assert _canon_list(cols[c]) == _canon_list(batch.cols[c]), c
    assert set(attrs) == set(batch.attrs)
    for key, values in attrs.items():
        assert _canon_list(values) == _canon_list(batch.attrs[key]), key
    EventBatch(n=n, cols=cols, attrs=attrs).check()


def decode(body: bytes):
    return fast.decode_traces(body)


def same_output(a, b) -> bool:
    ca, aa, na, ra, ma = a
    cb, ab, nb, rb, mb = b
    return (
        (na, ra, ma) == (nb, rb, mb)
        and all(_canon_list(ca[c]) == _canon_list(cb[c]) for c in FIXED_COLUMNS)
        and set(aa) == set(ab)
        and all(_canon_list(aa[k]) == _canon_list(ab[k]) for k in aa)
    )


# --------------------------------------------------------------------------------------------
# Strategies

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
KEYS = [
    "service.name",
    "SampleRate",
    "http.method",
    "a",
    "b",
    "",
    "trace.link.trace_id",
    "trace.link.span_id",
    "ключ",
    "🔑",
]
keys = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS), text)
ints = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 5, 2**63 - 1, -(2**63), 2**31, -(2**31) - 1]),
)
floats = st.one_of(
    st.floats(),
    st.sampled_from([math.nan, -math.nan, math.inf, -math.inf, -0.0, 1e100, 1.0, 5e-324, 1e16]),
)
scalar_values = st.one_of(
    text.map(lambda s: AnyValue(string_value=s)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    ints.map(lambda i: AnyValue(int_value=i)),
    floats.map(lambda f: AnyValue(double_value=f)),
    st.binary(max_size=8).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
    st.integers(0, 3).map(lambda i: AnyValue(string_value_strindex=i)),
)


def _array(values):
    return AnyValue(array_value=ArrayValue(values=values))


def _kvlist(items):
    kvs = [KeyValue(key=k) if v is None else KeyValue(key=k, value=v) for k, v in items]
    return AnyValue(kvlist_value=KeyValueList(values=kvs))


any_values = st.recursive(
    scalar_values,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(_array),
        st.lists(st.tuples(keys, st.one_of(st.none(), children)), max_size=4).map(_kvlist),
    ),
    max_leaves=6,
)


@st.composite
def key_values(draw):
    key = draw(keys)
    if key == "SampleRate" and draw(st.booleans()):
        return KeyValue(
            key=key, value=AnyValue(int_value=draw(st.sampled_from([-3, 0, 1, 7, 2**62])))
        )
    if key == "service.name" and draw(st.booleans()):
        name = draw(st.sampled_from(["checkout", " padded ", "", "   ", "\u2003svc\u2003", "x"]))
        return KeyValue(key=key, value=AnyValue(string_value=name))
    value = draw(st.one_of(st.none(), scalar_values, scalar_values, scalar_values, any_values))
    return KeyValue(key=key) if value is None else KeyValue(key=key, value=value)


attr_lists = st.lists(key_values(), max_size=5)
trace_ids = st.one_of(
    st.binary(min_size=16, max_size=16), st.just(bytes(16)), st.binary(max_size=20)
)
span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.just(bytes(8)), st.binary(max_size=10))
times = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, 10**18, 2**63 - 1, 2**63, 2**64 - 1]),
)
statuses = st.one_of(
    st.none(),
    st.builds(lambda c, m: Status(code=c, message=m), st.integers(-1, 4), text),
)


@st.composite
def events(draw):
    return Span.Event(
        time_unix_nano=draw(times),
        name=draw(st.one_of(st.sampled_from(["exception", "Exception", "e", ""]), text)),
        attributes=draw(attr_lists),
        dropped_attributes_count=draw(st.integers(0, 3)),
    )


@st.composite
def links(draw):
    valid = draw(st.booleans())
    return Span.Link(
        trace_id=draw(st.binary(min_size=16, max_size=16) if valid else trace_ids),
        span_id=draw(st.binary(min_size=8, max_size=8) if valid else span_ids),
        trace_state=draw(text),
        attributes=draw(attr_lists),
        flags=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def spans(draw):
    valid = draw(st.integers(0, 3)) > 0
    span = Span(
        trace_id=draw(st.binary(min_size=16, max_size=16) if valid else trace_ids),
        span_id=draw(st.binary(min_size=8, max_size=8) if valid else span_ids),
        parent_span_id=draw(st.one_of(st.just(b""), span_ids)),
        trace_state=draw(text),
        name=draw(text),
        kind=draw(st.integers(-1, 7)),
        start_time_unix_nano=draw(times),
        end_time_unix_nano=draw(times),
        attributes=draw(attr_lists),
        events=draw(st.lists(events(), max_size=3)),
        links=draw(st.lists(links(), max_size=2)),
        flags=draw(st.integers(0, 2**32 - 1)),
    )
    status = draw(statuses)
    if status is not None:
        span.status.CopyFrom(status)
    return span


@st.composite
def scope_spans(draw):
    ss = ScopeSpans(spans=draw(st.lists(spans(), max_size=3)), schema_url=draw(text))
    if draw(st.booleans()):
        ss.scope.CopyFrom(
            InstrumentationScope(
                name=draw(st.one_of(st.just(""), text)),
                version=draw(st.one_of(st.just(""), text)),
                attributes=draw(attr_lists),
            )
        )
    return ss


# valid names, and names that reject their resource's spans (common.py: not a dataset name)
SERVICE_NAMES = [
    "checkout",
    " cart ",
    "api",
    "bad\x00svc",
    "tab\tinside",
    "del\x7f",
    "\x85nel-stripped\x85",
    "nel\x85inside",
    "y" * 255,
    "y" * 256,
]


@st.composite
def resource_spans(draw):
    rs = ResourceSpans(scope_spans=draw(st.lists(scope_spans(), max_size=2)))
    if draw(st.integers(0, 4)):
        attrs = draw(attr_lists)
        if draw(st.booleans()):
            name = draw(st.one_of(st.sampled_from(SERVICE_NAMES), text))
            attrs.insert(
                draw(st.integers(0, len(attrs))),
                KeyValue(key="service.name", value=AnyValue(string_value=name)),
            )
        rs.resource.CopyFrom(Resource(attributes=attrs))
    return rs


requests = st.lists(resource_spans(), max_size=2).map(
    lambda rss: ExportTraceServiceRequest(resource_spans=rss)
)


# --------------------------------------------------------------------------------------------
# Wire-level helpers: a tiny protobuf walker that knows the schema


def enc_varint(n: int) -> bytes:
    n &= 2**64 - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(fn: int, wt: int) -> bytes:
    return enc_varint(fn << 3 | wt)


def ld(fn: int, payload: bytes) -> bytes:
    return tag(fn, 2) + enc_varint(len(payload)) + payload


def read_varint(b: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = b[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def fields(b: bytes):
    """(field number, wire type, raw value bytes incl. length prefix, payload) of valid bytes."""
    i = 0
    while i < len(b):
        key, j = read_varint(b, i)
        fn, wt = key >> 3, key & 7
        start = j
        if wt == 0:
            _, j = read_varint(b, j)
            yield fn, wt, b[start:j], None
        elif wt == 1:
            yield fn, wt, b[j : j + 8], None
            j += 8
        elif wt == 5:
            yield fn, wt, b[j : j + 4], None
            j += 4
        elif wt == 2:
            n, k = read_varint(b, j)
            yield fn, wt, b[start : k + n], b[k : k + n]
            j = k + n
        elif wt == 3:  # an (unknown) group: up to and including its end tag
            j = _skip_group(b, j, fn)
            yield fn, wt, b[start:j], None
        else:  # pragma: no cover - not produced by these tests
            raise AssertionError(wt)
        i = j


def _skip_group(b: bytes, i: int, gfn: int) -> int:
    while True:
        key, i = read_varint(b, i)
        fn, wt = key >> 3, key & 7
        if wt == 4:
            assert fn == gfn
            return i
        if wt == 0:
            _, i = read_varint(b, i)
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        elif wt == 2:
            n, i = read_varint(b, i)
            i += n
        else:
            i = _skip_group(b, i, fn)


MSG, STR, BYTES, VARINT, I64, I32 = "msg", "str", "bytes", "varint", "i64", "i32"
SCHEMA: dict[str, dict[int, tuple[str, str | None, bool]]] = {
    # field -> (kind, sub-message, singular sub-message?)
    "Req": {1: (MSG, "RS", False)},
    "RS": {1: (MSG, "Res", True), 2: (MSG, "SS", False), 3: (STR, None, False)},
    "Res": {1: (MSG, "KV", False), 2: (VARINT, None, False), 3: (MSG, "Entity", False)},
    "Entity": {n: (STR, None, False) for n in (1, 2, 3, 4)},
    "SS": {1: (MSG, "Scope", True), 2: (MSG, "Span", False), 3: (STR, None, False)},
    "Scope": {
        1: (STR, None, False),
        2: (STR, None, False),
        3: (MSG, "KV", False),
        4: (VARINT, None, False),
    },
    "Span": {
        1: (BYTES, None, False),
        2: (BYTES, None, False),
        3: (STR, None, False),
        4: (BYTES, None, False),
        5: (STR, None, False),
        6: (VARINT, None, False),
        7: (I64, None, False),
        8: (I64, None, False),
        9: (MSG, "KV", False),
        10: (VARINT, None, False),
        11: (MSG, "Event", False),
        12: (VARINT, None, False),
        13: (MSG, "Link", False),
        14: (VARINT, None, False),
        15: (MSG, "Status", True),
        16: (I32, None, False),
    },
    "Event": {
        1: (I64, None, False),
        2: (STR, None, False),
        3: (MSG, "KV", False),
        4: (VARINT, None, False),
    },
    "Link": {
        1: (BYTES, None, False),
        2: (BYTES, None, False),
        3: (STR, None, False),
        4: (MSG, "KV", False),
        5: (VARINT, None, False),
        6: (I32, None, False),
    },
    "Status": {2: (STR, None, False), 3: (VARINT, None, False)},
    "KV": {1: (STR, None, False), 2: (MSG, "Any", True), 3: (VARINT, None, False)},
    "Any": {
        1: (STR, None, False),
        2: (VARINT, None, False),
        3: (VARINT, None, False),
        4: (I64, None, False),
        5: (MSG, "Arr", True),
        6: (MSG, "KVL", True),
        7: (BYTES, None, False),
        8: (VARINT, None, False),
    },
    "Arr": {1: (MSG, "Any", False)},
    "KVL": {1: (MSG, "KV", False)},
}
KIND_WT = {MSG: 2, STR: 2, BYTES: 2, VARINT: 0, I64: 1, I32: 5}


def unknown_field(mtype: str, rnd: random.Random, depth: int = 0) -> bytes:
    """A field protobuf must skip: an unused number, or a known one with the wrong wire type."""
    known = SCHEMA[mtype]
    if known and rnd.random() < 0.3:
        fn = rnd.choice(sorted(known))
        wt = rnd.choice([w for w in (0, 1, 2, 3, 5) if w != KIND_WT[known[fn][0]]])
    else:
        fn = rnd.choice([17, 18, 99, 1000, 2**29 - 1, rnd.randint(17, 2**20)])
        wt = rnd.choice([0, 1, 2, 3, 5])
    if wt == 0:
        return tag(fn, 0) + enc_varint(rnd.choice([0, 1, 300, 2**64 - 1, rnd.getrandbits(64)]))
    if wt == 1:
        return tag(fn, 1) + rnd.randbytes(8)
    if wt == 5:
        return tag(fn, 5) + rnd.randbytes(4)
    if wt == 2:
        return ld(fn, rnd.randbytes(rnd.randint(0, 12)))  # not UTF-8 checked: unknown
    inner = b"".join(
        unknown_field("Entity", rnd, depth + 1) for _ in range(rnd.randint(0, 2)) if depth < 3
    )
    return tag(fn, 3) + inner + tag(fn, 4)


def inject_unknown(b: bytes, mtype: str, rnd: random.Random) -> bytes:
    out = bytearray()
    for fn, wt, raw, payload in fields(b):
        if rnd.random() < 0.3:
            out += unknown_field(mtype, rnd)
        spec = SCHEMA[mtype].get(fn)
        if spec and spec[0] == MSG and wt == 2:
            out += ld(fn, inject_unknown(payload, spec[1], rnd))
        else:
            out += tag(fn, wt) + raw
    if rnd.random() < 0.5:
        out += unknown_field(mtype, rnd)
    return bytes(out)


def split_singular(b: bytes, mtype: str, rnd: random.Random) -> bytes:
    """Write singular sub-messages as two occurrences (protobuf merges them back)."""
    out = bytearray()
    for fn, wt, raw, payload in fields(b):
        spec = SCHEMA[mtype].get(fn)
        if spec and spec[0] == MSG and wt == 2:
            inner = split_singular(payload, spec[1], rnd)
            parts = [tag(f, w) + r for f, w, r, _ in fields(inner)]
            if spec[2] and len(parts) >= 2 and rnd.random() < 0.7:
                cut = rnd.randint(1, len(parts) - 1)
                out += ld(fn, b"".join(parts[:cut])) + ld(fn, b"".join(parts[cut:]))
            else:
                out += ld(fn, inner)
        else:
            out += tag(fn, wt) + raw
    return bytes(out)


BAD_UTF8 = [b"\xff", b"a\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"ok\x80"]


def corrupt_one_string(b: bytes, mtype: str, target: int, counter: list[int]) -> bytes:
    """Replace the ``target``-th string field (depth-first, any message) with invalid UTF-8."""
    out = bytearray()
    for fn, wt, raw, payload in fields(b):
        spec = SCHEMA[mtype].get(fn)
        if spec and wt == 2 and spec[0] == STR:
            counter[0] += 1
            if counter[0] == target:
                out += ld(fn, BAD_UTF8[target % len(BAD_UTF8)])
                continue
        if spec and spec[0] == MSG and wt == 2:
            out += ld(fn, corrupt_one_string(payload, spec[1], target, counter))
        else:
            out += tag(fn, wt) + raw
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Differential tests


@HYP
@given(requests)
def test_differential_generated_requests(req):
    body = req.SerializeToString()
    assert_matches_reference(decode(body), reference(body))


@HYP
@given(requests, st.randoms(use_true_random=False))
def test_unknown_fields_are_skipped(req, rnd):
    body = req.SerializeToString()
    injected = inject_unknown(body, "Req", rnd)
    assert same_output(decode(injected), decode(body))
    assert_matches_reference(decode(injected), reference(injected))


@HYP
@given(requests, st.randoms(use_true_random=False))
def test_split_singular_messages_merge(req, rnd):
    body = req.SerializeToString()
    split = split_singular(body, "Req", rnd)
    assert same_output(decode(split), decode(body))
    assert_matches_reference(decode(split), reference(split))


@HYP
@given(requests, st.integers(1, 60))
def test_invalid_utf8_in_any_string_field(req, target):
    """Every string field, wherever it is (accepted or rejected span, event, link, kvlist key,
    trace_state, schema_url...), is UTF-8 checked like ParseFromString does."""
    body = req.SerializeToString()
    counter = [0]
    bad = corrupt_one_string(body, "Req", target, counter)
    if counter[0] >= target:
        with pytest.raises(ValueError, match="UTF-8"):
            decode(bad)
    assert_same(bad)


@HYP
@given(
    st.lists(spans(), min_size=1, max_size=3),
    st.lists(st.lists(any_values, min_size=1, max_size=4), max_size=4),
)
def test_repeated_occurrences_merge_like_protobuf(span_list, value_runs):
    """A span written as several concatenated Span messages and KeyValues whose value field occurs
    several times (oneof switching, array/kvlist merging): last scalar wins, the rest merge."""
    span_bytes = b"".join(s.SerializeToString() for s in span_list)
    kvs = b"".join(
        ld(9, ld(1, f"k{i}".encode()) + b"".join(ld(2, v.SerializeToString()) for v in run))
        for i, run in enumerate(value_runs)
    )
    valid_ids = ld(1, b"\x01" * 16) + ld(2, b"\x02" * 8)
    body = ld(1, ld(2, ld(2, span_bytes + valid_ids + kvs)))
    assert_same(body)


def test_realistic_batch_and_every_value_kind():
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(
        [
            KeyValue(key="service.name", value=AnyValue(string_value="  checkout ")),
            KeyValue(key="host.name", value=AnyValue(string_value="web-1")),
            KeyValue(key="dup", value=AnyValue(int_value=1)),
        ]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    ss.scope.attributes.append(KeyValue(key="dup", value=AnyValue(string_value="scope")))
    for i in range(20):
        span = ss.spans.add(
            trace_id=bytes([i + 1]) * 16,
            span_id=bytes([i + 1]) * 8,
            parent_span_id=b"" if i % 2 else bytes([9]) * 8,
            name=f"op-{i % 3}",
            kind=i % 7,
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_000_000_000 + i * 7,
        )
        span.attributes.extend(
            [
                KeyValue(key="s", value=AnyValue(string_value="héllo ✓")),
                KeyValue(key="i", value=AnyValue(int_value=-(2**63))),
                KeyValue(key="f", value=AnyValue(double_value=[1.5, math.inf, math.nan][i % 3])),
                KeyValue(key="b", value=AnyValue(bool_value=bool(i % 2))),
                KeyValue(key="bytes", value=AnyValue(bytes_value=bytes(range(i % 5)))),
                KeyValue(
                    key="arr",
                    value=_array(
                        [
                            AnyValue(string_value='q"\\\n\x01\x7f é'),
                            AnyValue(double_value=1e100),
                            AnyValue(double_value=math.nan),
                            AnyValue(double_value=-math.inf),
                            AnyValue(double_value=1.0),
                            AnyValue(),
                            AnyValue(bytes_value=b"\xff"),
                            _kvlist(
                                [
                                    ("x", AnyValue(int_value=1)),
                                    ("x", AnyValue(int_value=2)),
                                    ("", None),
                                ]
                            ),
                        ]
                    ),
                ),
                KeyValue(key="dup", value=AnyValue(bool_value=True)),
                KeyValue(key="SampleRate", value=AnyValue(int_value=i)),
            ]
        )
        if i % 4 == 0:
            span.status.code = 2
            span.status.message = "boom"
        if i % 5 == 0:
            span.events.add(name="exception", time_unix_nano=5).attributes.append(
                KeyValue(key="exception.type", value=AnyValue(string_value="ValueError"))
            )
            span.events.add(name="log", time_unix_nano=2**64 - 1)
        if i % 3 == 0:
            span.links.add(trace_id=b"\xab" * 16, span_id=b"\xcd" * 8).attributes.append(
                KeyValue(key="trace.link.span_id", value=AnyValue(string_value="override"))
            )
            span.links.add(trace_id=b"\x00" * 16, span_id=b"\xcd" * 8)
    ss.spans.add(trace_id=b"\x00" * 16, span_id=b"\x01" * 8)
    ss.spans.add(trace_id=b"\x01" * 15, span_id=b"\x01" * 8)
    body = req.SerializeToString()
    got = decode(body)
    assert_matches_reference(got, reference(body))
    cols, attrs, _n, rejected, message = got
    assert rejected == 2 and message == "2 spans rejected: invalid trace_id or span_id"
    assert cols["dataset"][0] == "checkout" and cols["service"][0] == "checkout"
    assert attrs[("arr", "s")][0] == (
        '["q\\"\\\\\\n\\u0001\x7f é",1e+100,NaN,-Infinity,1.0,null,"/w==",{"x":2,"":null}]'
    )
    # same input as bytes, bytearray and memoryview
    assert same_output(decode(bytearray(body)), got)
    assert same_output(decode(memoryview(body)), got)
    assert same_output(decode(memoryview(b"xx" + body)[2:]), got)


@pytest.mark.parametrize(
    "values",
    [
        [AnyValue(string_value="  svc  ")],
        [AnyValue(string_value="")],
        [AnyValue(string_value=" \u2003\t")],
        [AnyValue(int_value=5)],
        [AnyValue(bool_value=True)],
        [AnyValue(bytes_value=b"\x01\x02")],
        [AnyValue(bytes_value=b"")],
        [_array([AnyValue(string_value="a")])],
        [AnyValue(string_value="first"), AnyValue(double_value=math.nan)],
        [AnyValue(string_value="first"), AnyValue()],
        [AnyValue(string_value="first"), AnyValue(int_value=1)],
        [AnyValue(int_value=1), AnyValue(string_value="second")],
        [AnyValue(string_value="x"), AnyValue(string_value_strindex=1)],
    ],
)
def test_service_name_forms(values):
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for v in values:
        rs.resource.attributes.add(key="service.name", value=v)
    rs.resource.attributes.add(key="other", value=AnyValue(string_value="o"))
    span = rs.scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8)
    span.attributes.add(key="service.name", value=AnyValue(string_value="span-level"))
    span.events.add(name="e")
    assert_same(req.SerializeToString())


def inject_into(b: bytes, mtype: str, target: str, extra: bytes) -> bytes:
    """Append ``extra`` to every message of type ``target`` inside ``b`` (of type ``mtype``)."""
    out = bytearray()
    for fn, wt, raw, payload in fields(b):
        spec = SCHEMA[mtype].get(fn)
        if spec and spec[0] == MSG and wt == 2:
            out += ld(fn, inject_into(payload, spec[1], target, extra))
        else:
            out += tag(fn, wt) + raw
    if mtype == target:
        out += extra
    return bytes(out)


def _every_message_payload() -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add(schema_url="u")
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
    rs.resource.entity_refs.add(type="t", id_keys=["k"])
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    ss.scope.attributes.add(key="sa", value=AnyValue(int_value=1))
    sp = ss.spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="s", flags=1)
    sp.status.code = 1
    sp.attributes.add(
        key="v",
        value=_array([AnyValue(string_value="x"), _kvlist([("k", AnyValue(bool_value=True))])]),
    )
    sp.events.add(name="e", time_unix_nano=3).attributes.add(
        key="ea", value=AnyValue(double_value=1.5)
    )
    sp.links.add(trace_id=b"\x03" * 16, span_id=b"\x04" * 8).attributes.add(
        key="la", value=AnyValue(bytes_value=b"z")
    )
    twin = ss.spans.add()  # a rejected twin: its content is still checked
    twin.CopyFrom(sp)
    twin.trace_id = bytes(16)
    return req.SerializeToString()


def test_known_fields_with_wrong_wire_type_are_unknown_fields():
    """protobuf skips a known field number arriving with another wire type as an unknown field;
    every (message, field, wrong wire type) here must decode like ParseFromString."""
    base = _every_message_payload()
    expected = decode(base)
    values = {
        0: enc_varint(2**64 - 1),
        1: b"\x07" * 8,
        2: enc_varint(3) + b"\xff\xfe\x00",
        5: b"\x09" * 4,
    }
    checked = 0
    for mtype, known in SCHEMA.items():
        for fn, (kind, _sub, _single) in known.items():
            for wt in (0, 1, 2, 3, 5):
                if wt == KIND_WT[kind]:
                    continue
                extra = tag(fn, wt) + tag(fn, 4) if wt == 3 else tag(fn, wt) + values[wt]
                body = inject_into(base, "Req", mtype, extra)
                assert body != base
                assert_same(body)
                assert same_output(decode(body), expected), (mtype, fn, wt)
                checked += 1
    assert checked > 200


def test_large_batches_with_many_distinct_keys_and_values():
    """Big batches: thousands of distinct keys (key table growth), many one-off and repeated values
    (value-cache eviction), long non-ASCII strings past the cache's size limit."""
    rnd = random.Random(11)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="big"))
    ss = rs.scope_spans.add()
    long_text = "ünïcödé ✓ " * 20
    for i in range(600):
        sp = ss.spans.add(
            trace_id=rnd.randbytes(16),
            span_id=rnd.randbytes(8),
            name=rnd.choice(["GET /a", "POST /b", long_text]),
            start_time_unix_nano=i,
            end_time_unix_nano=i + rnd.randrange(1000),
        )
        for j in range(12):
            key = f"k{rnd.randrange(5000)}" if j % 3 == 0 else f"common.{j}"
            value = rnd.choice(
                [
                    AnyValue(string_value=f"user-{rnd.randrange(100_000)}"),
                    AnyValue(string_value=rnd.choice(["GET", "POST", "PUT"])),
                    AnyValue(string_value=long_text + str(i)),
                    AnyValue(int_value=rnd.randrange(-(2**63), 2**63)),
                    AnyValue(double_value=rnd.random()),
                    AnyValue(bool_value=True),
                ]
            )
            sp.attributes.add(key=key if j != 11 else long_text, value=value)
        if i % 10 == 0:
            sp.events.add(name="exception").attributes.add(
                key="exception.stacktrace", value=AnyValue(string_value=long_text * 3)
            )
    body = req.SerializeToString()
    got = decode(body)
    assert_matches_reference(got, reference(body))
    assert len(got[1]) > 1000
    assert same_output(decode(body), got)  # again, with warm scratch state


def test_empty_and_trivial_inputs():
    cols, attrs, n, rejected, message = decode(b"")
    assert (n, rejected, message, attrs) == (0, 0, "", {})
    assert list(cols) == list(FIXED_COLUMNS) and all(v == [] for v in cols.values())
    for body in [b"", ld(1, b""), ld(1, ld(2, b"")), ld(1, ld(2, ld(2, b"")))]:
        assert_same(body)
    with pytest.raises(TypeError):
        fast.decode_traces("not bytes")


def test_sdk_payloads():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, StatusCode
    from opentelemetry.trace import Status as SdkStatus

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=SdkResource.create({"service.name": "sdk-svc", "deployment.environment": "test"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otlp_fast", "1.2.3")
    with tracer.start_as_current_span("root", attributes={"http.method": "GET", "n": 3}) as root:
        root.set_attribute("ratio", 0.5)
        root.set_attribute("tags", ["a", "b"])
        root.set_attribute("flags", [True, False])
        root.set_attribute("nums", [1, 2, 3])
        root.set_attribute("SampleRate", 10)
        for i in range(5):
            with tracer.start_as_current_span(
                f"child-{i}", links=[Link(root.get_span_context(), {"why": "x"})]
            ) as sp:
                sp.add_event("log", {"i": i})
                if i == 3:
                    try:
                        raise ValueError("bad")
                    except ValueError as exc:
                        sp.record_exception(exc)
                        sp.set_status(SdkStatus(StatusCode.ERROR, "bad"))
    spans_done = exporter.get_finished_spans()
    assert len(spans_done) == 6
    body = encode_spans(spans_done).SerializeToString()
    got = decode(body)
    assert_matches_reference(got, reference(body))
    cols = got[0]
    assert set(cols["dataset"]) == {"sdk-svc"}
    assert cols["error"].count(True) >= 2  # the span and its exception event
    provider.shutdown()


# --------------------------------------------------------------------------------------------
# Malformed input


def _payloads() -> list[bytes]:
    rnd = random.Random(7)
    out = []
    for seed in range(3):
        r = random.Random(seed)
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=f"svc{seed}"))
        rs.resource.entity_refs.add(type="service", id_keys=["service.name"])
        rs.schema_url = "https://schema/1"
        ss = rs.scope_spans.add(schema_url="s")
        ss.scope.name = "scope"
        ss.scope.version = "1.0"
        for i in range(3 + seed):
            sp = ss.spans.add(
                trace_id=r.randbytes(16),
                span_id=r.randbytes(8),
                name=f"n{i}é",
                start_time_unix_nano=r.getrandbits(63),
                end_time_unix_nano=r.getrandbits(63),
            )
            sp.attributes.add(key="k", value=AnyValue(string_value="vé"))
            sp.attributes.add(
                key="arr",
                value=_array([AnyValue(int_value=1), _kvlist([("z", AnyValue(double_value=0.5))])]),
            )
            sp.events.add(name="exception").attributes.add(key="x", value=AnyValue(bool_value=True))
            sp.links.add(trace_id=r.randbytes(16), span_id=r.randbytes(8), trace_state="l=1")
            sp.status.message = "m"
            sp.trace_state = "a=b"
        out.append(inject_unknown(request.SerializeToString(), "Req", rnd))
    return out


PAYLOADS = _payloads()


@pytest.mark.parametrize("body", PAYLOADS, ids=lambda b: f"{len(b)}B")
def test_truncation_at_every_offset(body):
    for cut in range(len(body) + 1):
        assert_same(body[:cut])


def nested_rewrites(b: bytes, mtype: str, rewrite):
    """``b`` with the payload of one length-delimited field (sub-message, string or bytes, at any
    depth) replaced by each of ``rewrite(payload)``, the enclosing messages re-encoded around it so
    the damage is seen exactly at that level."""
    flist = list(fields(b))
    for idx, (fn, wt, _raw, payload) in enumerate(flist):
        if wt != 2:
            continue
        spec = SCHEMA[mtype].get(fn)
        variants = rewrite(payload)
        if spec and spec[0] == MSG:
            variants = itertools.chain(variants, nested_rewrites(payload, spec[1], rewrite))
        head = b"".join(tag(f, w) + r for f, w, r, _ in flist[:idx])
        tail = b"".join(tag(f, w) + r for f, w, r, _ in flist[idx + 1 :])
        for inner in variants:
            yield head + ld(fn, inner) + tail


def nested_truncations(b: bytes, mtype: str):
    return nested_rewrites(b, mtype, lambda payload: (payload[:cut] for cut in range(len(payload))))


def mutate(data: bytes, rnd: random.Random, edits: int) -> bytes:
    body = bytearray(data)
    for _ in range(edits):
        op = rnd.random()
        i = rnd.randrange(len(body)) if body else 0
        if op < 0.5 and body:
            body[i] = rnd.randrange(256)
        elif op < 0.7 and body:
            body[i] ^= 1 << rnd.randrange(8)
        elif op < 0.85 and body:
            del body[i]
        else:
            body.insert(i, rnd.choice([0x00, 0x80, 0xFF, 0x04, 0x0B, 0x0C, rnd.randrange(256)]))
    return bytes(body)


@pytest.mark.parametrize("which", range(len(PAYLOADS) + 1))
def test_nested_truncation_at_every_offset(which):
    body = (*PAYLOADS, _every_message_payload())[which]
    count = 0
    for variant in nested_truncations(body, "Req"):
        assert_same(variant)
        count += 1
    assert count > len(body)


def test_nested_random_mutations():
    rnd = random.Random(4321)
    checked = 0
    for body in (*PAYLOADS, _every_message_payload()):
        for variant in nested_rewrites(
            body, "Req", lambda p: [mutate(p, rnd, rnd.randint(1, 3)) for _ in range(3)]
        ):
            assert_same(variant)
            checked += 1
    assert checked > 500


@HYP
@given(requests, st.randoms(use_true_random=False))
def test_nested_mutations_of_generated_requests(req, rnd):
    body = req.SerializeToString()
    variants = list(
        nested_rewrites(body, "Req", lambda p: [mutate(p, rnd, 1), p[: rnd.randrange(len(p) + 1)]])
    )
    for variant in rnd.sample(variants, min(len(variants), 12)):
        assert_same(variant)


def test_random_byte_mutations():
    rnd = random.Random(1234)
    for _ in range(3000):
        body = bytearray(rnd.choice(PAYLOADS))
        for _ in range(rnd.randint(1, 4)):
            op = rnd.random()
            i = rnd.randrange(len(body))
            if op < 0.6:
                body[i] = rnd.randrange(256)
            elif op < 0.8:
                body[i] ^= 1 << rnd.randrange(8)
            elif op < 0.9:
                del body[i]
            else:
                body.insert(i, rnd.randrange(256))
        assert_same(bytes(body))


def test_random_bytes():
    rnd = random.Random(99)
    for _ in range(3000):
        assert_same(rnd.randbytes(rnd.randint(0, 64)))


@HYP
@given(st.binary(max_size=200))
def test_hypothesis_bytes(body):
    assert_same(body)


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\x05\x12\x03\x12\x01",  # length past end (nested)
        b"\x0a\x80",  # truncated varint
        b"\x0a" + b"\xff" * 10 + b"\x01",  # overlong length varint
        b"\x80\x80\x80\x80\x10",  # tag > 32 bits
        b"\x88\x80\x80\x80\x80\x00",  # 6-byte tag
        b"\x00\x01",  # field number 0
        b"\x0e",  # wire type 6
        b"\x0f",  # wire type 7
        b"\x0c",  # stray end-group
        b"\x0b\x14",  # group ended by another field's end tag
        b"\x0b",  # unterminated group
        b"\x03\x04",  # a group with field number 0 at message level
        tag(18, 3) + b"\x04",  # field 0 end tag closing group 18
        ld(1, tag(18, 3)) + tag(18, 4),  # group crossing the end of its message
        b"\x09\x00\x00",  # truncated fixed64
        b"\x0d\x00",  # truncated fixed32
        ld(1, ld(3, b"\xff")),  # bad UTF-8 in ResourceSpans.schema_url
        ld(1, ld(2, ld(2, ld(3, b"\xed\xa0\x80")))),  # surrogate in a rejected span's trace_state
        ld(
            1, ld(2, ld(2, ld(1, b"\x01" * 16) + ld(2, b"\x01" * 8) + ld(3, b"\xff")))
        ),  # accepted span
        ld(1, ld(2, ld(2, ld(5, b"\xc0\x80")))),  # overlong in Span.name
        ld(1, ld(1, ld(3, ld(3, b"\xf4\x90\x80\x80")))),  # > U+10FFFF in an EntityRef
        ld(1, ld(2, ld(2, ld(1, bytes(16)) + ld(13, ld(3, b"\xff"))))),  # rejected span, bad link
    ],
)
def test_malformed_raise_value_error(body):
    with pytest.raises(DecodeError):
        ExportTraceServiceRequest.FromString(body)
    with pytest.raises(ValueError, match="malformed OTLP protobuf"):
        decode(body)


@pytest.mark.parametrize(
    "body",
    [
        ld(1, ld(2, ld(2, tag(5, 0) + enc_varint(3)))),  # Span.name as a varint: unknown field
        ld(1, ld(2, ld(2, tag(7, 0) + enc_varint(3)))),  # start time as a varint
        ld(1, ld(2, ld(2, ld(6, b"\x02")))),  # kind as length-delimited
        ld(1, ld(2, ld(2, tag(15, 3) + tag(15, 4)))),  # status as a group
        ld(1, ld(2, ld(2, tag(30, 3) + tag(31, 0) + b"\x01" + tag(30, 4)))),  # unknown group
        ld(1, ld(2, ld(2, ld(30, b"\xff")))),  # bad UTF-8 in an unknown field is fine
        ld(1, ld(2, ld(2, tag(6, 0) + b"\xff" * 9 + b"\x7f"))),  # 10-byte varint, high bits ignored
        ld(1, ld(2, ld(2, tag(5, 2) + b"\x81\x80\x80\x80\x00" + b"x"))),  # padded length varint
        ld(1, ld(2, ld(2, b"\xaa\x80\x80\x80\x00" + b"\x01x"))),  # padded 5-byte tag
        tag(2**29 - 1, 0) + b"\x01",  # largest field number
        tag(18, 3)
        + b"\x05abcd\x00\x01\x03\x10\x01\x04"
        + tag(18, 4),  # field 0 inside a group is fine
    ],
)
def test_wire_oddities_accepted_like_protobuf(body):
    ExportTraceServiceRequest.FromString(body)
    assert_same(body)


def _nested_array(depth: int, leaf: bytes) -> bytes:
    value = leaf
    for _ in range(depth):
        value = ld(5, ld(1, value))
    return value


def _span_with_value(value: bytes) -> bytes:
    kv = ld(1, b"k") + ld(2, value)
    span = ld(1, b"\x01" * 16) + ld(2, b"\x02" * 8) + ld(9, kv)
    return ld(1, ld(2, ld(2, span)))


@pytest.mark.parametrize("depth", [10, 46, 47, 48, 49, 200, 5000])
def test_nesting_limit_matches_protobuf(depth):
    for leaf in (ld(1, b"x"), ld(5, b""), b""):
        assert_same(_span_with_value(_nested_array(depth, leaf)))


@pytest.mark.parametrize("depth", [50, 95, 96, 97, 98, 99, 100, 101, 5000])
def test_group_nesting_limit_matches_protobuf(depth):
    group = b""
    for _ in range(depth):
        group = tag(40, 3) + group + tag(40, 4)
    assert_same(group)
    assert_same(ld(1, ld(2, group)))


def test_deep_nesting_error_message():
    with pytest.raises(ValueError, match="nesting too deep"):
        decode(_span_with_value(_nested_array(100, b"")))


def test_duplicate_resource_keys_cost_once():
    """A resource/scope with many copies of one key costs its length once, not once per row
    (hostile input must not make the decoder quadratic where the reference is linear)."""
    import time

    kv = ld(1, ld(1, b"dup") + ld(2, ld(1, b"v")))  # Resource.attributes
    resource = ld(1, kv * 100_000)
    span = ld(2, ld(1, b"\x01" * 16) + ld(2, b"\x01" * 8))
    body = ld(
        1,
        resource
        + ld(2, ld(1, ld(3, ld(1, b"sk") + ld(2, tag(3, 0) + b"\x01")) * 50_000) + span * 5_000),
    )
    t0 = time.process_time()
    _cols, attrs, n, _, _ = decode(body)
    elapsed = time.process_time() - t0
    assert n == 5_000 and attrs[("dup", "s")] == ["v"] * n and attrs[("sk", "i")] == [1] * n
    assert elapsed < 1.0, f"{elapsed:.2f}s"
    assert_same(body)


def test_concurrent_decodes_from_threads():
    """The decoder keeps scratch buffers between calls; a decode entered from another thread while
    one runs Python code (the JSON encoder for arrays) must use its own state."""
    import threading

    bodies = [*PAYLOADS, _every_message_payload()]
    rnd = random.Random(5)
    for _ in range(4):
        req = ExportTraceServiceRequest()
        sp = (
            req.resource_spans.add()
            .scope_spans.add()
            .spans.add(trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8))
        )
        for i in range(30):
            sp.attributes.add(
                key=f"a{i}",
                value=_array(
                    [
                        AnyValue(int_value=rnd.randrange(99)),
                        _kvlist([("k", AnyValue(string_value="v"))]),
                    ]
                ),
            )
        bodies.append(req.SerializeToString())
    bodies.append(b"\x0a\x80")  # an error in the mix
    expected = []
    for b in bodies:
        try:
            expected.append(decode(b))
        except ValueError as exc:
            expected.append(str(exc))
    failures = []

    def worker(seed: int) -> None:
        r = random.Random(seed)
        for _ in range(300):
            i = r.randrange(len(bodies))
            try:
                got = decode(bodies[i])
                ok = not isinstance(expected[i], str) and same_output(got, expected[i])
            except ValueError as exc:
                ok = str(exc) == expected[i]
            if not ok:
                failures.append(i)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not failures


# --------------------------------------------------------------------------------------------
# Leaks and refcounts


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def test_allocation_failures_are_clean():
    """Fail the k-th memory allocation of a decode, for every k: the result is then either
    correct or MemoryError (no crash, no other exception), and nothing leaks on those paths."""
    import gc

    _testcapi = pytest.importorskip("_testcapi")
    if not hasattr(_testcapi, "set_nomemory"):
        pytest.skip("no _testcapi.set_nomemory")
    req = ExportTraceServiceRequest.FromString(_every_message_payload())
    req.resource_spans[0].scope_spans[0].spans[0].events.add(name="exception")
    bodies = [req.SerializeToString(), PAYLOADS[0], PAYLOADS[0][:-5]]
    expected = []
    for b in bodies:
        try:
            expected.append(decode(b))
        except ValueError as exc:
            expected.append(exc)

    def attempt(i: int, k: int) -> bool:
        """Decode bodies[i] with allocation k failing; True once k is past the last one."""
        _testcapi.set_nomemory(k, k + 1)
        try:
            got = decode(bodies[i])
        except MemoryError:
            return False
        except ValueError as exc:
            got = exc
        except SystemError as exc:
            # CPython 3.11 itself can lose an exception when the failing allocation is its own,
            # made while unwinding out of the call (frame object, traceback); an instrumented
            # build confirmed the extension always returns with an exception set.
            assert "without exception set" in str(exc)
            return False
        finally:
            _testcapi.remove_mem_hooks()
        want = expected[i]
        if isinstance(want, ValueError):
            assert isinstance(got, ValueError) and str(got) == str(want)
        else:
            assert not isinstance(got, ValueError) and same_output(got, want)
        return True

    def sweep() -> int:
        total = 0
        for i in range(len(bodies)):
            k = 0
            passes = 0
            while passes < 5:  # a few successes in a row: k is past the decode's allocations
                passes = passes + 1 if attempt(i, k) else 0
                k += 1
            total += k
        return total

    sweep()  # warm up scratch buffers and caches
    gc.collect()
    blocks = sys.getallocatedblocks()
    n = sweep()
    gc.collect()
    assert n > 300
    assert sys.getallocatedblocks() - blocks < 50


def test_no_leak_seen_by_tracemalloc():
    """The extension allocates with PyMem/PyObject, which tracemalloc traces: a leaked object or
    buffer on any path (values, JSON, errors, rejected spans) shows up as growth."""
    import gc
    import tracemalloc

    bodies = [*PAYLOADS, _every_message_payload()]
    bad = [b[: len(b) // 2] for b in bodies] + [b + b"\x0c" for b in bodies]
    bad += list(itertools.islice(nested_truncations(PAYLOADS[0], "Req"), 0, 2000, 37))

    def run() -> None:
        for b in bodies + bad:
            try:
                decode(b)
            except ValueError:
                pass

    for _ in range(3):
        run()
    gc.collect()
    tracemalloc.start()
    try:
        run()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            run()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 16 * 1024, f"{grown} bytes still allocated after 30 rounds"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_no_leak_over_many_decodes():
    good = PAYLOADS[2]
    rich = ExportTraceServiceRequest()
    span = (
        rich.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8)
    )
    span.attributes.add(
        key="arr",
        value=_array([_kvlist([("a", AnyValue(bytes_value=b"xyz"))]), AnyValue(double_value=2.5)]),
    )
    span.attributes.add(key="n", value=AnyValue(double_value=math.nan))
    rich_body = rich.SerializeToString()
    bad = [
        good[: len(good) // 2],
        good[:-3],
        _span_with_value(_nested_array(60, b"")),
        good + b"\x0c",
    ]

    def run(k: int) -> None:
        for _ in range(k):
            decode(good)
            decode(rich_body)
            for b in bad:
                try:
                    decode(b)
                except ValueError:
                    pass

    run(2000)
    refs = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    before = _rss_kb()
    run(20000)
    grown = _rss_kb() - before
    after = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    assert grown < 4096, f"RSS grew by {grown} KiB over 20k decodes"
    assert all(abs(a - b) < 50 for a, b in zip(refs, after, strict=True)), (refs, after)
