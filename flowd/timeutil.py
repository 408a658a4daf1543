"""Time on the wire (RFC 3339 UTC with `Z`, millisecond precision).

Inside flowd, times are integer milliseconds since the Unix epoch; they become strings only at
the API boundary.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)


# strftime costs microseconds and a burst of records shares a handful of seconds: remember
# each second's text (bounded; a plain dict is safe to share between threads under the GIL).
_SECOND_TEXT: dict[int, str] = {}
_SECOND_TEXT_MAX = 4096

# The times RFC 3339 can write (its years have four digits), in epoch ms. parse_time refuses
# anything outside, so every time flowd stores can be written back.
MIN_MS = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH) // _ONE_MS
MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc) - _EPOCH) // _ONE_MS
# Before this second strftime's %Y has fewer than four digits on glibc ("999", "1").
_YEAR_1000_SECONDS = (datetime(1000, 1, 1, tzinfo=timezone.utc) - _EPOCH) // timedelta(seconds=1)

_FORMAT_MESSAGE = "must be an RFC 3339 time such as 2026-11-23T18:00:00Z"
_RANGE_MESSAGE = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in UTC"


def deadline(now_ms: int, duration_ms: int) -> int:
    """`now + duration`, but never past MAX_MS: a wait of thousands of years means "for ever",
    and its time must still be writable."""
    return min(now_ms + duration_ms, MAX_MS)


def format_ms(ms: int | None) -> str | None:
    """Epoch ms → RFC 3339 with four-digit years for MIN_MS … MAX_MS (a time outside, which only
    arithmetic such as a 10,000-year wait can make, is written with the year it has)."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    text = _SECOND_TEXT.get(seconds)
    if text is None:
        if len(_SECOND_TEXT) >= _SECOND_TEXT_MAX:
            _SECOND_TEXT.clear()
        text = _SECOND_TEXT[seconds] = _second_text(seconds)
    return f"{text}.{millis:03d}Z"


def _second_text(seconds: int) -> str:
    moment = time.gmtime(seconds)
    if seconds >= _YEAR_1000_SECONDS:  # the common case: strftime is the fastest way
        return time.strftime("%Y-%m-%dT%H:%M:%S", moment)
    return "%04d-%02d-%02dT%02d:%02d:%02d" % moment[:6]


def parse_time(text: str) -> int:
    """RFC 3339 → epoch ms. Raises ValueError with a user-facing message."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(_RANGE_MESSAGE if _is_year_zero(text) else _FORMAT_MESSAGE) from None
    if parsed.tzinfo is None:
        raise ValueError("must include a UTC offset or Z, e.g. 2026-11-23T18:00:00Z")
    ms = (parsed - _EPOCH) // _ONE_MS
    if not MIN_MS <= ms <= MAX_MS:  # an offset carried it past year 1 or 9999
        raise ValueError(_RANGE_MESSAGE)
    return ms


def _is_year_zero(text: str) -> bool:
    """A well-formed time in year 0000, which datetime cannot hold: it gets the range message,
    not the format one. (Even the rare 0000-12-31T23:30:00-01:00, which is in year 1 in UTC.)"""
    if not text.startswith("0000"):
        return False
    try:
        datetime.fromisoformat("0001" + text[4:])
    except ValueError:
        return False
    return True
