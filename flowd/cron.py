"""Cron expressions (pure): parsing the five fields, and the next fire instant in a time zone.

`parse_cron("0 9 * * MON-FRI")` → `Cron`; `cron.next_after(after_ms, zone)` → the first fire
instant (epoch ms) strictly after `after_ms`. Semantics are Vixie cron's: a field that starts
with `*` is unrestricted; when day-of-month and day-of-week are both restricted, a day matches
if EITHER does. Day-of-week 0 and 7 are Sunday.

Fields are matched against the zone's wall clock. Two wall-clock oddities, both decided so that
a schedule fires at most once per wall-clock time and never silently skips one:
  * a time that a spring-forward gap skips fires once, at the first instant after the gap
    (Europe/Berlin 2026-03-29 02:30 → 03:00 local);
  * a time the autumn fall-back repeats fires once, at its first occurrence (fold=0).

The search skips whole months, days and hours that cannot match, so a next fire costs
microseconds, not a walk through every minute.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, low, high, names whose index + offset is the value)
_FIELDS = (("minute", 0, 59, (), 0), ("hour", 0, 23, (), 0), ("day-of-month", 1, 31, (), 0),
           ("month", 1, 12, MONTHS, 1), ("day-of-week", 0, 7, DAYS, 0))
# No fire within this many years: None (e.g. `0 0 30 2 *`). Eight, not less: 29 February
# comes back after eight years across a century that is not a leap year (2096 → 2104).
SEARCH_YEARS = 8
_UTC = timezone.utc
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: tuple[int, ...]     # each field's values, sorted
    hours: tuple[int, ...]
    days: frozenset[int]         # of the month
    months: tuple[int, ...]
    weekdays: frozenset[int]     # 0 = Sunday … 6 = Saturday
    dom_star: bool               # the field started with `*` (Vixie's DOM_STAR / DOW_STAR)
    dow_star: bool

    def day_matches(self, year: int, month: int, day: int) -> bool:
        # calendar's weekday is Monday = 0; cron's is Sunday = 0.
        return self._day(day, (calendar.weekday(year, month, day) + 1) % 7)

    def _day(self, day: int, weekday: int) -> bool:
        in_month, in_week = day in self.days, weekday in self.weekdays
        if self.dom_star or self.dow_star:
            return in_month and in_week
        return in_month or in_week

    def next_local(self, start: datetime) -> datetime | None:
        """The first naive wall-clock time at or after `start` (minute-aligned) that matches,
        within SEARCH_YEARS."""
        y, mo, d, h, mi = start.year, start.month, start.day, start.hour, start.minute
        last_year = min(y + SEARCH_YEARS, 9998)   # datetime ends in 9999
        while y <= last_year:
            if mo not in self.months:
                i = bisect_left(self.months, mo)
                if i == len(self.months):
                    y, mo = y + 1, self.months[0]
                else:
                    mo = self.months[i]
                d, h, mi = 1, 0, 0
                continue
            first_weekday, month_days = calendar.monthrange(y, mo)
            weekday = (first_weekday + d) % 7   # cron's numbering (Sunday = 0) of day d
            while d <= month_days and not self._day(d, weekday):
                d, h, mi, weekday = d + 1, 0, 0, (weekday + 1) % 7
            if d > month_days:
                y, mo, d, h, mi = (y + 1, 1, 1, 0, 0) if mo == 12 else (y, mo + 1, 1, 0, 0)
                continue
            i = bisect_left(self.hours, h)
            if i == len(self.hours):
                d, h, mi = d + 1, 0, 0
                if d > month_days:
                    y, mo, d = (y + 1, 1, 1) if mo == 12 else (y, mo + 1, 1)
                continue
            if self.hours[i] != h:
                h, mi = self.hours[i], 0
            j = bisect_left(self.minutes, mi)
            if j == len(self.minutes):
                h, mi = h + 1, 0
                if h == 24:
                    d, h = d + 1, 0
                    if d > month_days:
                        y, mo, d = (y + 1, 1, 1) if mo == 12 else (y, mo + 1, 1)
                continue
            return datetime(y, mo, d, h, self.minutes[j])
        return None

    def next_after(self, after_ms: int, zone: ZoneInfo) -> int | None:
        """The first fire instant (epoch ms) strictly after `after_ms`; None when there is
        none within SEARCH_YEARS."""
        local = datetime.fromtimestamp(after_ms / 1000, _UTC).astimezone(zone)
        start = local.replace(tzinfo=None, second=0, microsecond=0, fold=0) + _MINUTE
        while True:
            wall = self.next_local(start)
            if wall is None:
                return None
            at = wall_instant(wall, zone)
            if at > after_ms:
                return at
            # The first occurrence of a repeated wall time, already past: try the next one.
            start = wall + _MINUTE


def wall_instant(wall: datetime, zone: ZoneInfo) -> int:
    """Epoch ms of a naive wall time: its first occurrence; in a spring-forward gap, the first
    instant after the gap."""
    first = wall.replace(tzinfo=zone, fold=0)
    ms = int(first.timestamp() * 1000)
    if first.astimezone(_UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return ms
    # In a gap: fold=1 reads it with the offset after the transition (an instant before it),
    # fold=0 with the offset before (an instant after it). Bisect for the transition (second
    # precision; transitions fall on whole seconds).
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = ms // 1000
    after_offset = datetime.fromtimestamp(hi, _UTC).astimezone(zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, _UTC).astimezone(zone).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid
    return hi * 1000


# ---------------------------------------------------------------- parsing


def parse_cron(expression: str) -> Cron:
    """Parse five fields (minute hour day-of-month month day-of-week) or a macro; ValueError
    with a message that says what is wrong where."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("a cron expression is required, e.g. '0 9 * * 1'")
    text = expression.strip()
    if text.startswith("@"):
        expanded = MACROS.get(text.lower())
        if expanded is None:
            raise ValueError(f"unknown macro {text!r}; known: {', '.join(MACROS)}")
        text = expanded
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(f"expected 5 fields (minute hour day-of-month month day-of-week), "
                         f"got {len(parts)}")
    values = [_field(part, *spec) for part, spec in zip(parts, _FIELDS)]
    weekdays = frozenset(v % 7 for v in values[4])   # 7 is Sunday too
    minutes, hours, days, months = values[:4]
    return Cron(expression, tuple(sorted(minutes)), tuple(sorted(hours)), frozenset(days),
                tuple(sorted(months)), weekdays,
                dom_star=parts[2].startswith("*"), dow_star=parts[4].startswith("*"))


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...],
           offset: int) -> set[int]:
    found: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"{name}: empty list item in {text!r}")
        where = f"{name} {item!r}"
        body, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{where}: the step after / must be a whole number ≥ 1")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = (_value(a, where, low, high, names, offset),
                           _value(b, where, low, high, names, offset))
            if first > last:
                raise ValueError(f"{where}: the range runs backwards ({first} > {last})")
        elif slash:
            raise ValueError(f"{where}: a step needs a range or * before the /, e.g. */{step}")
        else:
            first = last = _value(body, where, low, high, names, offset)
        found.update(range(first, last + 1, step))
    return found


def _value(text: str, where: str, low: int, high: int, names: tuple[str, ...],
           offset: int) -> int:
    if text.isdigit():
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"{where}: {value} is outside {low}–{high}")
        return value
    if names and text.upper() in names:
        return names.index(text.upper()) + offset
    known = f" or a name ({names[0]}–{names[-1]})" if names else ""
    raise ValueError(f"{where}: {text!r} is not a number {low}–{high}{known}")


# ---------------------------------------------------------------- validation


def load_zone(name: str) -> ZoneInfo:
    """An IANA time zone; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as "
                         "'Europe/Berlin' or 'UTC'") from None


def check_schedule(expression: str, tz: str) -> list[tuple[str, str]]:
    """What keeps a schedule from running: (code, message) pairs, empty when it can."""
    problems = []
    try:
        cron = parse_cron(expression)
    except ValueError as exc:
        problems.append(("invalid_cron", str(exc)))
    else:
        if cron.dow_star and not any(day <= _LONGEST[month] for month in cron.months
                                     for day in cron.days):
            problems.append(("invalid_cron", f"{expression!r} never fires: none of its months "
                                             "has any of its days of the month"))
    try:
        load_zone(tz)
    except ValueError as exc:
        problems.append(("unknown_time_zone", str(exc)))
    return problems


_LONGEST = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
