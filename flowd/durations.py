"""ISO 8601 durations (`PT1H`, `P3D`, `PT0.5S`, `-P7D`) ↔ integer milliseconds.

Inside flowd a duration is an int of milliseconds; the ISO text exists only in definitions and
API responses. Calendar units have no fixed length, so this module fixes them: a year (`Y`) is
365 days and a month (`M` before `T`) is 30 days. A day is always 24 hours (no DST or time zone
awareness: durations here are elapsed time, not calendar arithmetic).
"""

from __future__ import annotations

import re

MS_PER_SECOND = 1_000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR
MS_PER_WEEK = 7 * MS_PER_DAY
MS_PER_MONTH = 30 * MS_PER_DAY  # the approximation documented above
MS_PER_YEAR = 365 * MS_PER_DAY  # likewise

# Longer texts are never legitimate and would only make int() work on huge digit strings.
MAX_DURATION_CHARS = 64
# Ten thousand years: room for "effectively forever" while `now + duration` stays far inside
# SQLite's signed 64-bit integers.
MAX_DURATION_MS = 10_000 * MS_PER_YEAR

_NUMBER = r"\d+(?:[.,]\d+)?"  # ISO 8601 allows a comma as the decimal sign as well
_DURATION = re.compile(
    rf"P(?:(?P<Y>{_NUMBER})Y)?(?:(?P<Mo>{_NUMBER})M)?(?:(?P<W>{_NUMBER})W)?(?:(?P<D>{_NUMBER})D)?"
    # The lookahead rejects a bare trailing "T" ("P1DT", "PT"): a T must introduce a component.
    rf"(?:T(?=\d)(?:(?P<H>{_NUMBER})H)?(?:(?P<Mi>{_NUMBER})M)?(?:(?P<S>{_NUMBER})S)?)?"
)
_UNITS = (("Y", MS_PER_YEAR), ("Mo", MS_PER_MONTH), ("W", MS_PER_WEEK), ("D", MS_PER_DAY),
          ("H", MS_PER_HOUR), ("Mi", MS_PER_MINUTE), ("S", MS_PER_SECOND))


def _component_ms(number: str, unit_ms: int) -> int:
    """One component's milliseconds, exactly (no float rounding: PT0.001S is 1, not 0.999…)."""
    whole, _, fraction = number.replace(",", ".").partition(".")
    total = int(whole) * unit_ms
    if fraction:
        scale = 10 ** len(fraction)
        # Round half up to the millisecond: sub-millisecond precision is not representable.
        total += (int(fraction) * unit_ms * 2 + scale) // (2 * scale)
    return total


def parse_duration(text: str) -> int:
    """ISO 8601 duration → milliseconds (≥ 0). Raises ValueError with a user-facing message."""
    return _parse(text, "must be an ISO 8601 duration such as PT1H or P3D")


def parse_signed_duration(text: str) -> int:
    """Like parse_duration, also accepting a leading `-` or `+`: `-P7D` → -604800000."""
    message = "must be an ISO 8601 duration such as PT1H or -P7D"
    if isinstance(text, str) and text[:1] in ("-", "+"):
        magnitude = _parse(text[1:], message)
        return -magnitude if text[0] == "-" else magnitude
    return _parse(text, message)


def _parse(text: str, message: str) -> int:
    if not isinstance(text, str) or len(text) > MAX_DURATION_CHARS:
        raise ValueError(message)
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(message)
    present = [(match.group(name), unit) for name, unit in _UNITS if match.group(name) is not None]
    if not present:  # "P" alone
        raise ValueError(message)
    # ISO 8601: only the smallest (last) component may carry a fraction.
    if any("." in number or "," in number for number, _ in present[:-1]):
        raise ValueError("only the last component of a duration may have a fraction, e.g. PT1.5H")
    total = sum(_component_ms(number, unit) for number, unit in present)
    if total > MAX_DURATION_MS:
        raise ValueError("must be at most 10000 years")
    return total


def format_duration(ms: int) -> str:
    """Milliseconds → canonical ISO text using days, hours, minutes and seconds only (never the
    approximate Y/M, nor W): 3600000 → "PT1H", 90061500 → "P1DT1H1M1.5S", 0 → "PT0S".
    Negative values get a leading "-", which parse_signed_duration reads back."""
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise TypeError(f"duration must be an int of milliseconds, not {type(ms).__name__}")
    sign = "-" if ms < 0 else ""
    days, rest = divmod(abs(ms), MS_PER_DAY)
    hours, rest = divmod(rest, MS_PER_HOUR)
    minutes, rest = divmod(rest, MS_PER_MINUTE)
    seconds, millis = divmod(rest, MS_PER_SECOND)
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or millis:
        time += f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "S"
    if not days and not time:
        return "PT0S"
    return f"{sign}P{f'{days}D' if days else ''}{'T' + time if time else ''}"
