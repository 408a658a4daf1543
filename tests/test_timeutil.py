"""The wire format of times: RFC 3339 with four-digit years over all of 0001–9999."""

from __future__ import annotations

import pytest

from flowd.durations import MAX_DURATION_MS
from flowd.timeutil import MAX_MS, MIN_MS, deadline, format_ms, parse_time

FORMAT_MESSAGE = "must be an RFC 3339 time"
RANGE_MESSAGE = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in UTC"


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00.000Z",   # the first representable millisecond
    "0001-01-01T00:00:00.001Z",
    "0009-02-03T04:05:06.007Z",
    "0099-12-31T23:59:59.999Z",
    "0499-05-09T19:38:57.000Z",
    "0999-12-31T23:59:59.999Z",   # the last second strftime would write with three digits
    "1000-01-01T00:00:00.000Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00.000Z",
    "2026-11-23T18:00:00.123Z",
    "9999-12-31T23:59:59.999Z",   # the last representable millisecond
])
def test_wire_times_round_trip_exactly(text):
    assert format_ms(parse_time(text)) == text
    # Twice: the second call is answered from the per-second cache.
    assert format_ms(parse_time(text)) == text


def test_the_ends_of_the_range_are_the_bounds():
    assert parse_time("0001-01-01T00:00:00Z") == MIN_MS
    assert parse_time("9999-12-31T23:59:59.999Z") == MAX_MS
    assert format_ms(MIN_MS) == "0001-01-01T00:00:00.000Z"
    assert format_ms(MAX_MS) == "9999-12-31T23:59:59.999Z"


@pytest.mark.parametrize("ms", [MIN_MS, MIN_MS + 1, MIN_MS + 999, MIN_MS + 1000, MAX_MS - 1000,
                                MAX_MS - 1, MAX_MS, -1, 0, 1])
def test_every_ms_round_trips(ms):
    assert parse_time(format_ms(ms)) == ms


def test_around_year_1000_every_second_has_four_digits():
    year_1000 = parse_time("1000-01-01T00:00:00Z")
    for ms in range(year_1000 - 3000, year_1000 + 3000, 500):
        text = format_ms(ms)
        assert len(text) == len("1000-01-01T00:00:00.000Z") and text[4] == "-", text
        assert parse_time(text) == ms
    assert format_ms(year_1000 - 1) == "0999-12-31T23:59:59.999Z"
    assert format_ms(year_1000) == "1000-01-01T00:00:00.000Z"


@pytest.mark.parametrize("text,expected", [
    ("0001-01-01T01:00:00+01:00", "0001-01-01T00:00:00.000Z"),   # an offset that lands on the edge
    ("9999-12-31T22:59:59.999-01:00", "9999-12-31T23:59:59.999Z"),
    ("1000-01-01T00:30:00+01:00", "0999-12-31T23:30:00.000Z"),
    ("0999-12-31T23:30:00-01:00", "1000-01-01T00:30:00.000Z"),
])
def test_offsets_near_the_ends_are_converted_to_utc(text, expected):
    assert format_ms(parse_time(text)) == expected


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00+01:00",        # 0000-12-31T23:00:00Z
    "0001-01-01T00:59:59.999+01:00",
    "9999-12-31T23:59:59.999-00:01",    # 10000-01-01T00:00:59.999Z
    "9999-12-31T23:00:00-23:59",
    "0000-01-01T00:00:00Z",             # year 0000 is not a year datetime (or RFC 3339) has
    "0000-06-15T12:00:00.500+02:00",
])
def test_times_outside_the_range_say_so(text):
    with pytest.raises(ValueError) as info:
        parse_time(text)
    assert str(info.value) == RANGE_MESSAGE


@pytest.mark.parametrize("text", ["yesterday", "", "0000-13-01T00:00:00Z", "10000-01-01T00:00:00Z",
                                  "-0001-01-01T00:00:00Z", "999-12-31T23:59:59Z"])
def test_malformed_times_get_the_format_message(text):
    with pytest.raises(ValueError, match=FORMAT_MESSAGE):
        parse_time(text)


def test_a_time_without_offset_is_refused():
    with pytest.raises(ValueError, match="UTC offset"):
        parse_time("0001-01-01T00:00:00")


def test_a_deadline_thousands_of_years_away_stops_at_the_last_writable_time():
    now = parse_time("2026-11-29T00:00:00Z")
    assert deadline(now, 60_000) == now + 60_000
    assert deadline(now, MAX_DURATION_MS) == MAX_MS
    assert format_ms(deadline(now, MAX_DURATION_MS)) == "9999-12-31T23:59:59.999Z"
