"""Request-body decompression for every ingest route (Honeycomb, OTLP, ...), bomb-proof.

Clients compress with ``Content-Encoding: gzip | deflate | zstd`` (PROTOCOLS.md §6.1 OTLP/HTTP:
gzip or zlib-wrapped deflate; §7.3 Honeycomb batch: gzip or zstd). A few compressed bytes can
expand to gigabytes, so every decoder here streams with a hard output bound: it never holds more
than ``limit + 1`` decompressed bytes and raises ``PayloadTooLarge`` as soon as the output would
pass ``limit``. Truncated or trailing-garbage streams are ``BadEncoding``: a protobuf body cut at
a field boundary still parses, so accepting a truncated stream would silently drop data.
"""

from __future__ import annotations

import zlib

import zstandard

__all__ = [
    "BadEncoding",
    "DecompressionError",
    "PayloadTooLarge",
    "UnsupportedEncoding",
    "decompress",
]


class DecompressionError(ValueError):
    """Base class: the body cannot be turned into bytes the decoders may read."""


class PayloadTooLarge(DecompressionError):
    """The (decompressed) body is larger than the route's limit (HTTP 413)."""


class BadEncoding(DecompressionError):
    """The body is not valid data in its declared encoding (HTTP 400)."""


class UnsupportedEncoding(DecompressionError):
    """The Content-Encoding is not one we decode (HTTP 415)."""


# zlib ``wbits``: 16 + MAX_WBITS expects a gzip header, MAX_WBITS a zlib header, and a negative
# value a raw deflate stream (no header, no checksum).
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS

# Output is pulled from the zstd reader in pieces of at most this size, so the last piece can
# overshoot the limit by nothing (we ask for exactly what is left + 1).
_READ_CHUNK = 1 << 20

# libzstd's default cap on the window a frame may declare (ZSTD_WINDOWLOG_LIMIT_DEFAULT = 27):
# a frame header asking for more is refused instead of making us allocate up to 2 GiB.
_ZSTD_MAX_WINDOW = 1 << 27

_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_SKIPPABLE_MASK = 0xFFFFFFF0
_ZSTD_SKIPPABLE_MAGIC = 0x184D2A50


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Decode ``body`` per its ``Content-Encoding`` header, refusing outputs over ``limit`` bytes.

    Supports identity (missing, empty or ``identity``), ``gzip``/``x-gzip`` (multi-member too),
    ``deflate`` (zlib-wrapped as RFC 9110 says, raw deflate as a fallback for old clients) and
    ``zstd``. A comma list names encodings in the order they were applied (RFC 9110 §8.4), so they
    are undone right to left. Raises ``PayloadTooLarge``, ``BadEncoding`` or
    ``UnsupportedEncoding``; never anything else for bad input.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for coding in codings:  # refuse unknown names before spending any CPU
        if coding not in _DECODERS:
            raise UnsupportedEncoding(f"unsupported Content-Encoding: {coding[:64]!r}")
    data = bytes(body) if not isinstance(body, bytes) else body
    if not codings and len(data) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    for coding in reversed(codings):
        data = _DECODERS[coding](data, limit)
    return data


def _join(chunks: list[bytes]) -> bytes:
    # One chunk is the common case (zlib fills max_length in one call); skip the copy then.
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _inflate(data: bytes, wbits: int, limit: int, *, multi_member: bool) -> bytes:
    """Stream ``data`` through zlib, holding at most ``limit + 1`` output bytes."""
    chunks: list[bytes] = []
    total = 0
    d = zlib.decompressobj(wbits)
    pending = data
    try:
        while True:
            # max_length > 0 always: we raise as soon as total passes limit.
            out = d.decompress(pending, limit + 1 - total)
            if out:
                total += len(out)
                if total > limit:
                    raise PayloadTooLarge(f"decompressed body is larger than {limit} bytes")
                chunks.append(out)
            if d.eof:
                rest = d.unused_data
                if multi_member and rest[:2] == b"\x1f\x8b":
                    # gzip allows concatenated members (RFC 1952 §2.2); they form one body.
                    d = zlib.decompressobj(wbits)
                    pending = rest
                    continue
                if rest.strip(b"\x00"):
                    # Trailing NULs are tolerated like gzip(1) does (tape padding); anything
                    # else means the body is not what the header claims.
                    raise BadEncoding("trailing data after the compressed stream")
                break
            pending = d.unconsumed_tail
            if not pending and not out:
                # All input consumed, no progress and no end marker: the stream is cut short.
                raise BadEncoding("truncated compressed stream")
    except zlib.error as exc:
        raise BadEncoding(f"corrupt compressed data: {exc}") from None
    return _join(chunks) if chunks else b""


def _gunzip(data: bytes, limit: int) -> bytes:
    return _inflate(data, _GZIP_WBITS, limit, multi_member=True)


def _looks_like_zlib(data: bytes) -> bool:
    # RFC 1950 §2.2: CM = 8 (deflate), CINFO <= 7, and the 16-bit header is a multiple of 31.
    if len(data) < 2:
        return False
    cmf, flg = data[0], data[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf * 256 + flg) % 31 == 0


def _deflate(data: bytes, limit: int) -> bytes:
    # HTTP "deflate" is zlib-wrapped (RFC 9110 §8.4.1.2; the OTLP exporter uses zlib.compress),
    # but some clients send raw deflate. A raw stream can start with bytes that happen to pass the
    # zlib header check, so a failed zlib attempt falls back to raw before giving up.
    if _looks_like_zlib(data):
        try:
            return _inflate(data, _ZLIB_WBITS, limit, multi_member=False)
        except BadEncoding:
            pass
    return _inflate(data, _RAW_WBITS, limit, multi_member=False)


def _zstd_frames_complete(data: bytes) -> None:
    """Walk the zstd frame and block headers (RFC 8878 §3.1) without decoding anything.

    The zstandard streaming reader returns a short read, not an error, on a truncated frame, so
    completeness is checked structurally: every frame must end with its last block (and checksum),
    and nothing but whole frames may follow. Costs a few operations per 128 KiB block.
    """
    pos, n = 0, len(data)
    if n == 0:
        raise BadEncoding("empty zstd body")
    while pos < n:
        if n - pos < 4:
            raise BadEncoding("truncated zstd frame")
        magic = int.from_bytes(data[pos : pos + 4], "little")
        pos += 4
        if magic & _ZSTD_SKIPPABLE_MASK == _ZSTD_SKIPPABLE_MAGIC:
            if n - pos < 4:
                raise BadEncoding("truncated zstd skippable frame")
            pos += 4 + int.from_bytes(data[pos : pos + 4], "little")
            if pos > n:
                raise BadEncoding("truncated zstd skippable frame")
            continue
        if magic != _ZSTD_MAGIC:
            raise BadEncoding("not a zstd frame")
        if pos >= n:
            raise BadEncoding("truncated zstd frame header")
        fhd = data[pos]
        pos += 1
        fcs_flag, single_segment = fhd >> 6, (fhd >> 5) & 1
        has_checksum, did_flag = (fhd >> 2) & 1, fhd & 3
        fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
        pos += (0 if single_segment else 1) + (0, 1, 2, 4)[did_flag] + fcs_size
        while True:
            if n - pos < 3:
                raise BadEncoding("truncated zstd block")
            header = int.from_bytes(data[pos : pos + 3], "little")
            pos += 3
            last, block_type, size = header & 1, (header >> 1) & 3, header >> 3
            if block_type == 3:
                raise BadEncoding("reserved zstd block type")
            pos += 1 if block_type == 1 else size  # an RLE block stores one byte
            if pos > n:
                raise BadEncoding("truncated zstd block")
            if last:
                break
        if has_checksum:
            pos += 4
            if pos > n:
                raise BadEncoding("truncated zstd checksum")


def _unzstd(data: bytes, limit: int) -> bytes:
    _zstd_frames_complete(data)
    dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    chunks: list[bytes] = []
    total = 0
    try:
        with dctx.stream_reader(data, read_across_frames=True) as reader:
            while True:
                # Ask for at most what is left + 1: the output can never pass limit + 1.
                out = reader.read(min(_READ_CHUNK, limit + 1 - total))
                if not out:
                    break
                total += len(out)
                if total > limit:
                    raise PayloadTooLarge(f"decompressed body is larger than {limit} bytes")
                chunks.append(out)
    except zstandard.ZstdError as exc:
        raise BadEncoding(f"corrupt zstd data: {exc}") from None
    return _join(chunks) if chunks else b""


_DECODERS = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,  # RFC 9110 §8.4.1.3: recipients should treat x-gzip as gzip
    "deflate": _deflate,
    "zstd": _unzstd,
}
