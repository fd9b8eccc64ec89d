"""Raw provider requests as the SQLite store keeps them: zlib-compressed (the bench's ~3.4 KB
Stripe event takes ~0.8 KB), so a stored event costs less than its raw body. Uncompressed
rows (stored before this, or read back from PostgreSQL, whose TOAST compresses large values
itself) are told apart by their first byte: a zlib stream starts with 0x78 (``x``), which no
JSON document does."""

from __future__ import annotations

import zlib

__all__ = ["packed", "unpacked"]

_ZLIB = b"x"
_LEVEL = 1  # the fastest: JSON compresses about as well at 1 as at 6


def packed(raw: bytes) -> bytes:
    """``raw`` as stored."""
    return zlib.compress(raw, _LEVEL)


def unpacked(stored: bytes) -> bytes:
    """The raw request of a stored one (compressed or not)."""
    return zlib.decompress(stored) if stored[:1] == _ZLIB else stored
