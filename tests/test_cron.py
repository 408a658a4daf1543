"""Cron expressions: the next fire instant for a table of cases (DST days of Berlin and New
York both ways, leap days, short months, names, steps, the day-of-month/day-of-week OR), the
expressions refused and why, and properties against brute-force references."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowd.cron import DAYS, MONTHS, Cron, check_schedule, parse_cron

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def local(at: int | None, zone: str) -> str | None:
    return None if at is None else datetime.fromtimestamp(at / 1000, ZoneInfo(zone)).isoformat()


CASES = [
    # (expression, zone, after, next fire as local time with its offset)
    ("0 9 * * 1", BERLIN, "2026-01-01T00:00:00+00:00", "2026-01-05T09:00:00+01:00"),
    ("0 9 * * 1", BERLIN, "2026-01-05T08:00:00+00:00", "2026-01-12T09:00:00+01:00"),
    # Berlin springs forward on 2026-03-29 at 02:00 CET (01:00Z) to 03:00 CEST: 02:xx is
    # skipped, so it fires once, at the first instant after the gap.
    ("30 2 * * *", BERLIN, "2026-03-28T12:00:00+00:00", "2026-03-29T03:00:00+02:00"),
    ("30 2 * * *", BERLIN, "2026-03-29T01:00:00+00:00", "2026-03-30T02:30:00+02:00"),
    ("*/15 2 * * *", BERLIN, "2026-03-29T00:59:00+00:00", "2026-03-29T03:00:00+02:00"),
    ("*/15 2 * * *", BERLIN, "2026-03-29T01:00:00+00:00", "2026-03-30T02:00:00+02:00"),
    ("0,30 2,3 * * *", BERLIN, "2026-03-29T01:00:00+00:00", "2026-03-29T03:30:00+02:00"),
    ("0 3 * * *", BERLIN, "2026-03-28T12:00:00+00:00", "2026-03-29T03:00:00+02:00"),
    ("59 1 * * *", BERLIN, "2026-03-28T12:00:00+00:00", "2026-03-29T01:59:00+01:00"),
    # Berlin falls back on 2026-10-25 at 03:00 CEST (01:00Z) to 02:00 CET: 02:xx happens
    # twice and fires at its first occurrence only.
    ("30 2 * * *", BERLIN, "2026-10-24T12:00:00+00:00", "2026-10-25T02:30:00+02:00"),
    ("30 2 * * *", BERLIN, "2026-10-25T00:30:00+00:00", "2026-10-26T02:30:00+01:00"),
    ("*/30 * * * *", BERLIN, "2026-10-25T00:30:00+00:00", "2026-10-25T03:00:00+01:00"),
    ("*/30 * * * *", BERLIN, "2026-10-25T00:59:00+00:00", "2026-10-25T03:00:00+01:00"),
    # New York springs forward on 2026-03-08 at 02:00 EST to 03:00 EDT, falls back on
    # 2026-11-01 at 02:00 EDT to 01:00 EST.
    ("30 2 * * *", NEW_YORK, "2026-03-07T12:00:00-05:00", "2026-03-08T03:00:00-04:00"),
    ("30 2 * * *", NEW_YORK, "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"),
    ("@hourly", NEW_YORK, "2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"),
    ("30 1 * * *", NEW_YORK, "2026-10-31T12:00:00-04:00", "2026-11-01T01:30:00-04:00"),
    ("30 1 * * *", NEW_YORK, "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"),
    ("0 * * * *", NEW_YORK, "2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00"),
    ("0 * * * *", NEW_YORK, "2026-11-01T01:10:00-05:00", "2026-11-01T02:00:00-05:00"),
    # Leap days; a day 31 skips the months without one.
    ("0 0 29 2 *", "UTC", "2026-01-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
    ("0 0 29 2 *", "UTC", "2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"),
    ("0 0 31 * *", "UTC", "2026-04-01T00:00:00+00:00", "2026-05-31T00:00:00+00:00"),
    ("0 0 31 * *", "UTC", "2026-01-31T00:00:00+00:00", "2026-03-31T00:00:00+00:00"),
    ("0 0 31 * *", "UTC", "2026-12-31T00:00:00+00:00", "2027-01-31T00:00:00+00:00"),
    # Names, any case; day-of-week 7 is Sunday too; ranges of names.
    ("0 12 * JAN,jul sun", "UTC", "2026-02-01T00:00:00+00:00", "2026-07-05T12:00:00+00:00"),
    ("0 0 * * 7", "UTC", "2026-01-01T00:00:00+00:00", "2026-01-04T00:00:00+00:00"),
    ("0 0 * * 5-7", "UTC", "2026-01-03T01:00:00+00:00", "2026-01-04T00:00:00+00:00"),
    ("0 0 * * Mon-Fri", "UTC", "2026-01-02T12:00:00+00:00", "2026-01-05T00:00:00+00:00"),
    ("0 0 1 feb-apr/2 *", "UTC", "2026-02-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00"),
    # Both day fields restricted: either matches (the 13th, or a Friday).
    ("0 9 13 * FRI", "UTC", "2026-01-01T00:00:00+00:00", "2026-01-02T09:00:00+00:00"),
    ("0 9 13 * FRI", "UTC", "2026-01-09T10:00:00+00:00", "2026-01-13T09:00:00+00:00"),
    # A day-of-month starting with * counts as unrestricted (Vixie): both must match.
    ("0 9 */2 * FRI", "UTC", "2026-01-01T00:00:00+00:00", "2026-01-09T09:00:00+00:00"),
    # Steps and ranges with steps.
    ("5-59/20 */6 * * *", "UTC", "2026-01-01T00:00:00+00:00", "2026-01-01T00:05:00+00:00"),
    ("5-59/20 */6 * * *", "UTC", "2026-01-01T00:45:00+00:00", "2026-01-01T06:05:00+00:00"),
    ("*/25 * * * *", "UTC", "2026-01-01T00:50:00+00:00", "2026-01-01T01:00:00+00:00"),
    # Macros.
    ("@yearly", "UTC", "2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ("@annually", "UTC", "2026-03-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ("@monthly", "UTC", "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"),
    ("@weekly", "UTC", "2026-01-01T00:00:00+00:00", "2026-01-04T00:00:00+00:00"),
    ("@daily", "UTC", "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"),
    ("@MIDNIGHT", "Asia/Tokyo", "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+09:00"),
    ("@hourly", "Asia/Kolkata", "2026-01-01T00:00:00+00:00", "2026-01-01T06:00:00+05:30"),
    # Strictly after, to the millisecond.
    ("0 0 * * *", "UTC", "2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"),
    ("0 0 * * *", "UTC", "2026-01-01T23:59:59.999+00:00", "2026-01-02T00:00:00+00:00"),
    # Never (within the search horizon).
    ("0 0 30 2 *", "UTC", "2026-01-01T00:00:00+00:00", None),
]


@pytest.mark.parametrize("expression, zone, after, expected", CASES)
def test_next_after(expression: str, zone: str, after: str, expected: str | None) -> None:
    fire = parse_cron(expression).next_after(ms(after), ZoneInfo(zone))
    assert local(fire, zone) == expected


@pytest.mark.parametrize("expression, message", [
    ("", "required"),
    ("* * * *", "expected 5 fields"),
    ("* * * * * *", "expected 5 fields"),
    ("60 * * * *", "minute '60': 60 is outside 0–59"),
    ("* 24 * * *", "hour '24': 24 is outside 0–23"),
    ("* * 0 * *", "day-of-month '0': 0 is outside 1–31"),
    ("* * * 13 *", "month '13': 13 is outside 1–12"),
    ("* * * * 8", "day-of-week '8': 8 is outside 0–7"),
    ("*/0 * * * *", "step after / must be a whole number ≥ 1"),
    ("5/10 * * * *", "a step needs a range or *"),
    ("10-5 * * * *", "runs backwards"),
    ("* * * FOO *", "not a number 1–12 or a name (JAN–DEC)"),
    ("* * * * MONDAY", "not a number 0–7 or a name (SUN–SAT)"),
    ("* * * MON *", "not a number 1–12"),
    ("1,,2 * * * *", "empty list item"),
    ("-1 * * * *", "minute '-1'"),
    ("@reboot", "unknown macro '@reboot'"),
])
def test_invalid_expressions(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_cron(expression)
    assert message in str(raised.value)


def test_check_schedule() -> None:
    assert check_schedule("0 9 * * 1", "Europe/Berlin") == []
    assert check_schedule("61 * * * *", "Mars/Olympus") == [
        ("invalid_cron", "minute '61': 61 is outside 0–59"),
        ("unknown_time_zone", "unknown time zone 'Mars/Olympus'; use an IANA name such as "
                              "'Europe/Berlin' or 'UTC'")]
    assert check_schedule("0 0 * * *", "../etc/passwd")[0][0] == "unknown_time_zone"
    [(code, message)] = check_schedule("0 0 30 2 *", "UTC")
    assert code == "invalid_cron" and "never fires" in message
    assert check_schedule("0 0 30 2 MON", "UTC") == []   # Mondays in February
    assert check_schedule("0 0 29 2 *", "UTC") == []     # leap years


def test_a_thousand_fires_are_quick() -> None:
    """Not a benchmark: a guard against a search that walks minute by minute (which takes
    seconds for these)."""
    zone = ZoneInfo(BERLIN)
    for expression in ("0 0 29 2 *", "*/7 3-5 1,15 * MON", "0 0 31 * *", "* * * * *"):
        cron, at = parse_cron(expression), ms("2026-01-01T00:00:00+00:00")
        started = time.process_time()
        for _ in range(1000):
            at = cron.next_after(at, zone)
        assert time.process_time() - started < 1.0, expression


# ---------------------------------------------------------------- properties


@st.composite
def fields(draw: st.DrawFn, low: int, high: int, names: tuple[str, ...] = (),
           offset: int = 0) -> str:
    def value() -> str:
        number = draw(st.integers(low, high))
        if names and low <= number - offset < len(names) and draw(st.booleans()):
            return names[number - offset].lower() if draw(st.booleans()) else names[number - offset]
        return str(number)

    def item() -> str:
        kind = draw(st.sampled_from(["*", "*/n", "a", "a-b", "a-b/n"]))
        step = draw(st.integers(1, high - low + 1))
        if kind == "*":
            return "*"
        if kind == "*/n":
            return f"*/{step}"
        a = value()
        if kind == "a":
            return a
        b = value()
        a, b = sorted((a, b), key=lambda v: int(v) if v.isdigit()
                      else names.index(v.upper()) + offset)
        return f"{a}-{b}" + (f"/{step}" if kind == "a-b/n" else "")

    return ",".join(item() for _ in range(draw(st.integers(1, 3))))


EXPRESSIONS = st.tuples(fields(0, 59), fields(0, 23), fields(1, 31), fields(1, 12, MONTHS, 1),
                        fields(0, 7, DAYS)).map(" ".join)
FIXED_ZONES = ["UTC", "Etc/GMT+5", "Etc/GMT-14", "Asia/Kolkata", "Asia/Kathmandu"]
INSTANTS = st.integers(ms("2001-01-01T00:00:00+00:00"), ms("2036-01-01T00:00:00+00:00"))


def matches(cron: Cron, wall: datetime) -> bool:
    in_month = wall.day in cron.days
    in_week = wall.isoweekday() % 7 in cron.weekdays
    day = (in_month and in_week) if cron.dom_star or cron.dow_star else (in_month or in_week)
    return (day and wall.month in cron.months and wall.hour in cron.hours
            and wall.minute in cron.minutes)


def reference_fixed(cron: Cron, after_ms: int, zone: ZoneInfo) -> int | None:
    """Day by day (any day that can match is searched minute by minute) in a zone without
    DST, where a wall time and an instant are one offset apart."""
    offset = datetime.fromtimestamp(after_ms / 1000, timezone.utc).astimezone(zone).utcoffset()
    assert offset is not None
    start = datetime.fromtimestamp(after_ms / 1000, timezone.utc).replace(tzinfo=None) + offset
    day = start.date()
    while day <= date(start.year + 8, 12, 31):
        wall = datetime(day.year, day.month, day.day)
        if matches(cron, wall.replace(hour=cron.hours[0], minute=cron.minutes[0])) or \
                matches(cron, wall.replace(hour=23, minute=59)):   # the day itself matches
            for minute in range(24 * 60):
                candidate = wall + timedelta(minutes=minute)
                at = int((candidate - offset).replace(tzinfo=timezone.utc).timestamp() * 1000)
                if at > after_ms and matches(cron, candidate):
                    return at
        day += timedelta(days=1)
    return None


@settings(max_examples=300, deadline=None)
@given(EXPRESSIONS, st.sampled_from(FIXED_ZONES), INSTANTS)
def test_next_after_matches_brute_force_in_fixed_zones(expression: str, zone_name: str,
                                                       after: int) -> None:
    cron, zone = parse_cron(expression), ZoneInfo(zone_name)
    assert cron.next_after(after, zone) == reference_fixed(cron, after, zone), expression


def reference_dst(cron: Cron, after_ms: int, zone: ZoneInfo, horizon_minutes: int) -> int | None:
    """Instant by instant, minute by minute: an instant fires when its wall time matches at
    its first occurrence, or when it is the first instant after a gap that skipped a
    matching wall time."""
    first = after_ms // 60_000 * 60_000 + 60_000
    for at in range(first, first + horizon_minutes * 60_000, 60_000):
        wall = datetime.fromtimestamp(at / 1000, timezone.utc).astimezone(zone)
        naive = wall.replace(tzinfo=None)
        if wall.fold == 0 and matches(cron, naive):
            return at
        before = datetime.fromtimestamp(at / 1000 - 60, timezone.utc).astimezone(zone)
        skipped = naive - before.replace(tzinfo=None) - timedelta(minutes=1)
        gap = [naive - timedelta(minutes=m) for m in range(1, int(skipped.total_seconds()) // 60 + 1)]
        if any(matches(cron, w) for w in gap):
            return at
    return None


TRANSITIONS = {BERLIN: ["2026-03-29T01:00:00+00:00", "2026-10-25T01:00:00+00:00"],
               NEW_YORK: ["2026-03-08T07:00:00+00:00", "2026-11-01T06:00:00+00:00"],
               "Australia/Lord_Howe": ["2026-04-04T15:00:00+00:00", "2026-10-03T15:30:00+00:00"]}


@settings(max_examples=300, deadline=None)
@given(st.tuples(fields(0, 59), fields(0, 23)).map(lambda f: f"{f[0]} {f[1]} * * *"),
       st.sampled_from([(zone, at) for zone, ats in TRANSITIONS.items() for at in ats]),
       st.one_of(st.integers(-36 * 60, 12 * 60), st.integers(-150, 150)))
def test_next_after_matches_brute_force_across_dst(expression: str, where: tuple[str, str],
                                                   minutes: int) -> None:
    """Daily expressions (so a fire comes within two days) around the transitions of zones
    that move by an hour and by half an hour (Lord Howe), `after` also inside a repeated
    hour, to the second."""
    zone_name, transition = where
    cron, zone = parse_cron(expression), ZoneInfo(zone_name)
    after = ms(transition) + minutes * 60_000 + (minutes % 7) * 1000
    assert cron.next_after(after, zone) == reference_dst(cron, after, zone, 3 * 24 * 60), \
        expression
