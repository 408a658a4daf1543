"""Opaque, type-prefixed identifiers (`evt_…`, `run_…`).

The body is a ULID-style 26-character Crockford base32 string: 48 bits of milliseconds then
80 random bits. Time-ordered ids keep B-tree inserts at the right edge of their indexes.
"""

from __future__ import annotations

import base64
import os
import time

# RFC 4648 base32 → Crockford's lower-case alphabet (no i, l, o, u), which sorts like the value.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                                b"0123456789abcdefghjkmnpqrstvwxyz")


def new_id(prefix: str, now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = ms << 80 | int.from_bytes(os.urandom(10), "big")   # 128 bits
    # 26 characters hold 130 bits: the value with two leading zero bits, then 30 bits of
    # filler so the buffer is whole 5-byte groups (160 bits = 32 characters).
    raw = (value << 30).to_bytes(20, "big")
    return f"{prefix}_{base64.b32encode(raw)[:26].translate(_TO_CROCKFORD).decode()}"
