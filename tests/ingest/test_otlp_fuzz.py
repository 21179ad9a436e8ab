"""Fuzzing the OTLP decoders: whatever the bytes, the result is a ``Decoded`` whose batch is
consistent, or a ``DecodeError`` (a 400 for the client); never another exception, never a hang
(hypothesis deadlines, on top of pytest-timeout)."""

from __future__ import annotations

import json
from datetime import timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otlp_requests import (
    log_request_to_pb,
    log_requests,
    to_otlp_json,
    trace_request_to_pb,
    trace_requests,
)

from tracehive.ingest.otlp import (
    Decoded,
    DecodeError,
    decode_logs,
    decode_metrics,
    decode_traces,
    decode_traces_py,
)

FUZZ = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),  # generous for a loaded 2-core box; a hang still fails
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DECODERS = [
    ("traces", lambda body, fmt: decode_traces(body, fmt)),
    ("traces_py", lambda body, fmt: decode_traces_py(body, fmt)),
    ("logs", lambda body, fmt: decode_logs(body, fmt)),
    ("metrics", lambda body, fmt: decode_metrics(body, fmt, "ds")),
]


def _check(body: bytes, fmt: str) -> list[Decoded]:
    """Run every decoder; each must succeed consistently or raise DecodeError."""
    results = []
    for name, decode in DECODERS:
        try:
            decoded = decode(body, fmt)
        except DecodeError as exc:
            assert str(exc), name
            continue
        assert isinstance(decoded, Decoded), name
        assert decoded.accepted >= 0 and decoded.rejected >= 0
        if decoded.events is not None:
            decoded.events.check()
            for (key, t), col in decoded.events.attrs.items():
                assert key and t in "sifb"
                assert col.count(None) < decoded.events.n  # no all-None column
        else:
            assert decoded.metrics is not None and decoded.accepted == decoded.metrics.n
        results.append(decoded)
    return results


@FUZZ
@given(st.binary(max_size=512), st.sampled_from(["protobuf", "json"]))
def test_arbitrary_bytes(body, fmt):
    _check(body, fmt)


# ---------------------------------------------------------------------------------------------
# mutated valid payloads


@st.composite
def _mutations(draw, bodies):
    body = bytearray(draw(bodies))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup", "delete"]))
        pos = draw(st.integers(0, len(body)))
        if op == "flip" and body:
            pos = min(pos, len(body) - 1)
            body[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del body[pos:]
        elif op == "insert":
            body[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "dup":
            end = draw(st.integers(pos, len(body)))
            body[pos:pos] = body[pos:end]
        elif op == "delete":
            del body[pos : pos + draw(st.integers(1, 8))]
    return bytes(body)


_pb_traces = trace_requests.map(lambda spec: trace_request_to_pb(spec).SerializeToString())
_pb_logs = log_requests.map(lambda spec: log_request_to_pb(spec).SerializeToString())


@FUZZ
@given(_mutations(st.one_of(_pb_traces, _pb_logs)))
def test_mutated_protobuf(body):
    _check(body, "protobuf")


@FUZZ
@given(_pb_traces)
def test_valid_trace_requests_decode(body):
    """Read as logs or metrics a trace request may be invalid (its bytes land on string fields),
    but as traces it decodes, the same through ``decode_traces`` and the reference."""
    results = _check(body, "protobuf")
    assert results[0] == results[1] == decode_traces_py(body, "protobuf")


_json_docs = st.one_of(
    trace_requests.map(lambda spec: to_otlp_json(trace_request_to_pb(spec))),
    log_requests.map(lambda spec: to_otlp_json(log_request_to_pb(spec))),
)


@FUZZ
@given(_mutations(_json_docs.map(orjson.dumps)))
def test_mutated_json_text(body):
    _check(body, "json")


# ---------------------------------------------------------------------------------------------
# structurally wrong JSON: any subtree of a valid document replaced by any JSON value

_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False),
        st.text(max_size=6),
        st.sampled_from(["NaN", "-Infinity", "0", "-1", "18446744073709551616", "AAEC", "ff" * 8]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["values", "key", "value", "stringValue", "intValue", "arrayValue", "kvlistValue",
                 "bytesValue", "doubleValue", "boolValue", "attributes", "spans", "traceId"]
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=10,
)  # fmt: skip


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _replace(node, path, value):
    if not path:
        return value
    head, *rest = path
    if isinstance(node, dict):
        return {k: _replace(v, rest, value) if k == head else v for k, v in node.items()}
    return [_replace(v, rest, value) if i == head else v for i, v in enumerate(node)]


@FUZZ
@given(_json_docs, st.data())
def test_json_with_a_subtree_replaced(doc, data):
    paths = list(_paths(doc))
    path = data.draw(st.sampled_from(paths))
    value = data.draw(_json_values)
    try:
        body = orjson.dumps(_replace(doc, path, value))
    except orjson.JSONEncodeError:  # an int past 64 bits: orjson cannot write it
        return
    _check(body, "json")


def _depth(v) -> int:
    children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()
    return 1 + max(map(_depth, children), default=0) if isinstance(v, (dict, list)) else 0


@pytest.mark.parametrize("depth", [10, 90, 200, 400])
def test_deeply_nested_values(depth):
    """Up to orjson's depth limit values convert (recursively); past it, a DecodeError."""
    value = '{"stringValue":"x"}'  # built as text: json writers refuse documents this deep
    for i in range(depth):
        if i % 2:
            value = '{"arrayValue":{"values":[' + value + "]}}"
        else:
            value = '{"kvlistValue":{"values":[{"key":"k","value":' + value + "}]}}"
    ids = f'"traceId":"{"01" * 16}","spanId":"{"01" * 8}"'
    span = f'{{{ids},"attributes":[{{"key":"a","value":{value}}}]}}'
    body = f'{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}'.encode()
    results = _check(body, "json")
    if depth <= 200:
        assert results, "decodes below orjson's depth limit"
        assert _depth(json.loads(results[0].events.attrs[("a", "s")][0])) == depth
    else:
        assert not results
