"""Time: the injectable clock and the wire format (RFC 3339 UTC with `Z`, millisecond precision).

Inside flowd, times are integer milliseconds since the Unix epoch; they become strings only at
the API boundary.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)


class Clock:
    """Wall-clock time. Tests and dry runs substitute their own; nothing else calls time.time()."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)


# strftime costs microseconds and a burst of records shares a handful of seconds: remember
# each second's text (bounded; a plain dict is safe to share between threads under the GIL).
_SECOND_TEXT: dict[int, str] = {}
_SECOND_TEXT_MAX = 4096


def format_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    text = _SECOND_TEXT.get(seconds)
    if text is None:
        if len(_SECOND_TEXT) >= _SECOND_TEXT_MAX:
            _SECOND_TEXT.clear()
        text = _SECOND_TEXT[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{millis:03d}Z"


def parse_time(text: str) -> int:
    """RFC 3339 → epoch ms. Raises ValueError with a user-facing message."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be an RFC 3339 time such as 2026-11-23T18:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("must include a UTC offset or Z, e.g. 2026-11-23T18:00:00Z")
    return (parsed - _EPOCH) // _ONE_MS
