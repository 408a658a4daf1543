"""Opaque, type-prefixed identifiers (`evt_…`, `run_…`).

The body is a ULID-style 26-character Crockford base32 string: 48 bits of milliseconds then
80 random bits. Time-ordered ids keep B-tree inserts at the right edge of their indexes.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str, now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_base32(ms, 10)}{_base32(rand, 16)}"
