"""ingest.compression: round trips, bad input and decompression bombs."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tracehive.ingest.compression import (
    BadEncoding,
    DecompressionError,
    PayloadTooLarge,
    UnsupportedEncoding,
    decompress,
)

PAYLOAD = b'{"service.name": "checkout", "duration_ms": 12.5}\n' * 2000
MB = 1 << 20
GB = 1 << 30


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
@pytest.mark.parametrize("data", [b"", b"x", PAYLOAD])
def test_round_trip(encoding: str, data: bytes) -> None:
    assert decompress(ENCODERS[encoding](data), encoding, len(data)) == data


@pytest.mark.parametrize("encoding", [None, "", "identity", " Identity "])
def test_identity(encoding: str | None) -> None:
    assert decompress(PAYLOAD, encoding, len(PAYLOAD)) == PAYLOAD


def test_identity_over_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        decompress(PAYLOAD, None, len(PAYLOAD) - 1)


def test_names_are_case_insensitive() -> None:
    assert decompress(gzip.compress(PAYLOAD), " GZip ", 10 * MB) == PAYLOAD
    assert decompress(zstandard.ZstdCompressor().compress(PAYLOAD), "ZSTD", 10 * MB) == PAYLOAD


def test_raw_deflate_fallback() -> None:
    # Some clients send raw deflate for "deflate" (no zlib header); accepted as a fallback.
    assert decompress(raw_deflate(PAYLOAD), "deflate", 10 * MB) == PAYLOAD


def test_raw_deflate_whose_first_bytes_look_like_zlib() -> None:
    # A raw stored block of length 1 starts 0x78 0x01, a valid zlib header: the zlib attempt
    # fails and the raw fallback must still decode it.
    stream = bytes([0x78, 0x01, 0x00, 0xFE, 0xFF]) + b"X" + bytes([0x01, 0x00, 0x00, 0xFF, 0xFF])
    assert decompress(stream, "deflate", 100) == b"X"


def test_gzip_multi_member_is_one_body() -> None:
    body = gzip.compress(b"abc") + gzip.compress(b"def")
    assert decompress(body, "gzip", 100) == b"abcdef"


def test_gzip_trailing_nul_padding_is_tolerated() -> None:
    assert decompress(gzip.compress(b"abc") + bytes(16), "gzip", 100) == b"abc"


def test_zstd_multiple_and_skippable_frames() -> None:
    cctx = zstandard.ZstdCompressor(write_checksum=True)
    skippable = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"hello"
    body = cctx.compress(b"abc") + skippable + cctx.compress(b"def")
    assert decompress(body, "zstd", 100) == b"abcdef"


def test_zstd_streamed_frame_without_content_size() -> None:
    c = zstandard.ZstdCompressor().compressobj()
    body = c.compress(PAYLOAD) + c.flush()
    assert decompress(body, "zstd", len(PAYLOAD)) == PAYLOAD


def test_stacked_encodings_are_undone_right_to_left() -> None:
    body = gzip.compress(zstandard.ZstdCompressor().compress(PAYLOAD))  # zstd, then gzip
    assert decompress(body, "zstd, gzip", 10 * MB) == PAYLOAD


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_limit_is_inclusive(encoding: str) -> None:
    body = ENCODERS[encoding](PAYLOAD)
    assert decompress(body, encoding, len(PAYLOAD)) == PAYLOAD
    with pytest.raises(PayloadTooLarge):
        decompress(body, encoding, len(PAYLOAD) - 1)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["br", "compress", "gzip, br", "lz4"])
def test_unsupported(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding):
        decompress(b"whatever", encoding, 100)


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_truncated(encoding: str) -> None:
    body = ENCODERS[encoding](PAYLOAD)
    for cut in (1, 5, len(body) // 2):
        with pytest.raises(BadEncoding):
            decompress(body[:-cut], encoding, 10 * MB)


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_garbage(encoding: str) -> None:
    for body in (b"", b"\x00", b"not compressed at all", b"\x1f\x8b\x08\x00garbage"):
        with pytest.raises(BadEncoding):
            decompress(body, encoding, 10 * MB)


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_trailing_garbage(encoding: str) -> None:
    with pytest.raises(BadEncoding):
        decompress(ENCODERS[encoding](b"abc") + b"junk", encoding, 100)


def test_zstd_corrupt_block() -> None:
    body = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(PAYLOAD))
    body[len(body) // 2] ^= 0xFF
    with pytest.raises(BadEncoding):
        decompress(bytes(body), "zstd", 10 * MB)


def test_zstd_huge_window_is_refused() -> None:
    # A streamed frame declaring a 1 GiB window would make the decoder allocate it.
    params = zstandard.ZstdCompressionParameters.from_level(1, window_log=30)
    c = zstandard.ZstdCompressor(compression_params=params).compressobj()
    body = c.compress(b"a" * 1000) + c.flush()
    with pytest.raises(BadEncoding):
        decompress(body, "zstd", 10 * MB)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=512),
    encoding=st.sampled_from(["gzip", "deflate", "zstd", "identity", None, "br", "gzip,zstd"]),
)
def test_fuzz_only_decompression_errors(body: bytes, encoding: str | None) -> None:
    try:
        out = decompress(body, encoding, 4096)
    except DecompressionError:
        return
    assert isinstance(out, bytes) and len(out) <= 4096


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=2048),
    flip=st.integers(min_value=0),
    encoding=st.sampled_from(["gzip", "deflate", "zstd"]),
)
def test_fuzz_bit_flips(data: bytes, flip: int, encoding: str) -> None:
    body = bytearray(ENCODERS[encoding](data))
    body[flip % len(body)] ^= 1 << (flip % 8)
    try:
        out = decompress(bytes(body), encoding, 4096)
    except DecompressionError:
        return
    assert len(out) <= 4096


# --- bombs --------------------------------------------------------------------------------------


def _gzip_zeros(total: int) -> bytes:
    """A valid gzip stream of ``total`` zero bytes, built without compressing all of them.

    After a full flush the compressor has no history, so each further MiB of zeros compresses
    to the same bytes: compress one MiB, repeat its output, and compute the trailer.
    """
    assert total % MB == 0
    zeros = bytes(MB)
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    end = c.flush()
    crc = 0
    for _ in range(total // MB):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = crc.to_bytes(4, "little") + (total % 2**32).to_bytes(4, "little")
    return header + first + again * (total // MB - 1) + end + trailer


def test_gzip_zeros_builder_is_valid() -> None:
    assert gzip.decompress(_gzip_zeros(4 * MB)) == bytes(4 * MB)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return _gzip_zeros(GB)


@pytest.fixture(scope="module")
def zstd_bomb() -> bytes:
    c = zstandard.ZstdCompressor(level=1).compressobj()
    zeros = bytes(MB)
    return b"".join([c.compress(zeros) for _ in range(GB // MB)] + [c.flush()])


def _refused_quickly(body: bytes, encoding: str, limit: int) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PayloadTooLarge):
            decompress(body, encoding, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    # Python-level allocations stay within the limit plus one read chunk (zstd's own window
    # buffer is C memory, capped at 128 MiB and here as small as the frame's 1 MiB blocks).
    assert peak < 2 * limit + 2 * MB, peak
    assert elapsed < 5, elapsed


@pytest.mark.parametrize("limit", [MB, 8 * MB])
def test_gzip_bomb_refused(gzip_bomb: bytes, limit: int) -> None:
    assert len(gzip_bomb) < 2 * MB  # 1 GiB of zeros in about a MiB
    _refused_quickly(gzip_bomb, "gzip", limit)


def test_deflate_bombs_refused(gzip_bomb: bytes) -> None:
    raw = gzip_bomb[10:-8]  # the same deflate stream without the gzip wrapper
    _refused_quickly(raw, "deflate", 8 * MB)
    _refused_quickly(b"\x78\x9c" + raw + b"\x00\x00\x00\x00", "deflate", 8 * MB)


def test_gzip_multi_member_bomb_refused() -> None:
    member = gzip.compress(bytes(MB))
    _refused_quickly(member * 64, "gzip", 8 * MB)


@pytest.mark.parametrize("limit", [MB, 8 * MB])
def test_zstd_bomb_refused(zstd_bomb: bytes, limit: int) -> None:
    assert len(zstd_bomb) < MB
    _refused_quickly(zstd_bomb, "zstd", limit)


def test_zstd_multi_frame_bomb_refused() -> None:
    frame = zstandard.ZstdCompressor().compress(bytes(MB))
    _refused_quickly(frame * 64, "zstd", 8 * MB)
