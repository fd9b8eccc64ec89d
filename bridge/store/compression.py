"""Raw provider requests as the SQLite store keeps them: LZ4-compressed (the bench's ~3.4 KB
Stripe event takes ~1.1 KB, for ~3 µs of CPU; zlib saved a third more but cost ~25 µs, a
tenth of a request), so a stored event costs about its raw body. Uncompressed rows (stored
before this, or read back from PostgreSQL, whose TOAST compresses large values itself) are
told apart by the LZ4 frame's magic number, which no JSON document starts with."""

from __future__ import annotations

import lz4.frame

__all__ = ["packed", "unpacked"]

_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_MIN_BYTES = 512  # smaller requests are kept as they are (a frame's header is ~11 bytes)


def packed(raw: bytes) -> bytes:
    """``raw`` as stored."""
    if len(raw) < _MIN_BYTES:
        return raw
    out: bytes = lz4.frame.compress(raw, store_size=False)
    return out


def unpacked(stored: bytes) -> bytes:
    """The raw request of a stored one (compressed or not)."""
    if stored[:4] != _LZ4_MAGIC:
        return stored
    out: bytes = lz4.frame.decompress(stored)
    return out
