"""Opaque, type-prefixed identifiers (`evt_…`, `run_…`).

The body is a ULID-style 26-character Crockford base32 string: 48 bits of milliseconds then
80 random bits. Time-ordered ids keep B-tree inserts at the right edge of their indexes.
"""

from __future__ import annotations

import hashlib
import os
import time

# Crockford's base32 alphabet in lower case (no i, l, o, u): it sorts like the value.
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


# Every pair of characters (10 bits), so 80 random bits take 8 lookups (base64.b32encode is
# written in Python and several times slower).
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


def new_id(prefix: str, now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    r = int.from_bytes(os.urandom(10), "big")   # 80 random bits after 50 bits of time
    p = _PAIRS
    return (f"{prefix}_{_time_text(ms)}{p[r >> 70]}{p[r >> 60 & 1023]}{p[r >> 50 & 1023]}"
            f"{p[r >> 40 & 1023]}{p[r >> 30 & 1023]}{p[r >> 20 & 1023]}{p[r >> 10 & 1023]}"
            f"{p[r & 1023]}")


def derived_id(prefix: str, ms: int, key: str) -> str:
    """An id that is the same every time for the same (`ms`, `key`): its time part is `ms`, its
    80 other bits come from a hash of the key. For things that must exist at most once, such
    as a schedule's fire, where inserting the id again finds the first."""
    r = int.from_bytes(hashlib.sha256(key.encode()).digest()[:10], "big")
    p = _PAIRS
    return (f"{prefix}_{_time_text(ms)}{p[r >> 70]}{p[r >> 60 & 1023]}{p[r >> 50 & 1023]}"
            f"{p[r >> 40 & 1023]}{p[r >> 30 & 1023]}{p[r >> 20 & 1023]}{p[r >> 10 & 1023]}"
            f"{p[r & 1023]}")
