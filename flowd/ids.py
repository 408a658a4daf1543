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


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
# The ten time characters are shared by every id made in the same millisecond.
_TIME_TEXT: dict[int, str] = {}


def _time_text(ms: int) -> str:
    text = _TIME_TEXT.get(ms)
    if text is None:
        if len(_TIME_TEXT) >= 1024:
            _TIME_TEXT.clear()
        text = _TIME_TEXT[ms] = "".join(_CROCKFORD[(ms >> shift) & 31]
                                        for shift in range(45, -5, -5))
    return text


def new_id(prefix: str, now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    # 10 characters of time (50 bits), then 80 random bits: 10 bytes are exactly 16 base32
    # characters, so b32encode needs no padding.
    randomness = base64.b32encode(os.urandom(10)).translate(_TO_CROCKFORD).decode()
    return f"{prefix}_{_time_text(ms)}{randomness}"
