"""ISO 8601 durations ↔ milliseconds."""

from __future__ import annotations

import pytest

from flowd.durations import (
    MAX_DURATION_MS,
    MS_PER_DAY,
    MS_PER_HOUR,
    format_duration,
    parse_duration,
    parse_signed_duration,
)


@pytest.mark.parametrize("text,ms", [
    ("PT1H", 3_600_000),
    ("P3D", 3 * 86_400_000),
    ("PT0.5S", 500),
    ("PT0,5S", 500),
    ("P1DT2H30M", 86_400_000 + 2 * 3_600_000 + 30 * 60_000),
    ("P2W", 14 * 86_400_000),
    ("P1Y", 365 * 86_400_000),
    ("P1M", 30 * 86_400_000),
    ("PT1M", 60_000),
    ("P1Y2M3W4DT5H6M7S", ((365 + 60 + 21 + 4) * 24 * 3600 + 5 * 3600 + 6 * 60 + 7) * 1000),
    ("PT0S", 0),
    ("P0D", 0),
    ("PT0.001S", 1),
    ("PT0.0015S", 2),  # rounds half up to the millisecond
    ("PT0.0004S", 0),
    ("PT1.5H", 5_400_000),  # a fraction on the smallest component, not only seconds
    ("P1DT0.25H", 86_400_000 + 900_000),
    ("PT36H", 36 * 3_600_000),
    ("PT10S", 10_000),
])
def test_parse_duration(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", [
    "", "P", "PT", "P1DT", "T1H", "1H", "PT1", "P1H", "PT1D", "pt1h", " PT1H", "PT1H ",
    "-PT1H", "+PT1H", "P-1D", "PT1H1H", "P1D2Y", "PT.5S", "PT5.S", "P1.5DT2H", "PT1.5H30M",
    "P1W1D1W", "PTS", "P1D1", "hello", "PT1e3S", "P" + "1" * 70 + "D",
])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert "duration" in str(info.value)


def test_parse_duration_message_is_user_facing():
    with pytest.raises(ValueError, match=r"^must be an ISO 8601 duration such as PT1H or P3D$"):
        parse_duration("soon")


@pytest.mark.parametrize("value", [None, 3600, 1.5, ["PT1H"]])
def test_parse_duration_rejects_non_strings(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_parse_duration_upper_bound():
    assert parse_duration("P10000Y") == MAX_DURATION_MS
    with pytest.raises(ValueError, match="10000 years"):
        parse_duration("P10001Y")
    with pytest.raises(ValueError, match="10000 years"):
        parse_duration("PT99999999999999999H")


def test_only_the_last_component_may_be_fractional():
    with pytest.raises(ValueError, match="last component"):
        parse_duration("P1.5DT1H")


@pytest.mark.parametrize("text,ms", [
    ("-P7D", -7 * MS_PER_DAY),
    ("+P7D", 7 * MS_PER_DAY),
    ("P7D", 7 * MS_PER_DAY),
    ("-PT1H", -MS_PER_HOUR),
    ("-PT0S", 0),
    ("-PT0.5S", -500),
])
def test_parse_signed_duration(text, ms):
    assert parse_signed_duration(text) == ms


@pytest.mark.parametrize("text", ["", "-", "+", "--P1D", "-+P1D", "- P1D", "P-1D", "-P", "-PT",
                                  "-1D", "P1D-"])
def test_parse_signed_duration_rejects(text):
    with pytest.raises(ValueError, match="-P7D"):
        parse_signed_duration(text)


@pytest.mark.parametrize("ms,text", [
    (0, "PT0S"),
    (1, "PT0.001S"),
    (500, "PT0.5S"),
    (1_000, "PT1S"),
    (1_010, "PT1.01S"),
    (60_000, "PT1M"),
    (3_600_000, "PT1H"),
    (86_400_000, "P1D"),
    (7 * 86_400_000, "P7D"),
    (90_061_500, "P1DT1H1M1.5S"),
    (86_400_000 + 1, "P1DT0.001S"),
    (3_600_000 + 1_000, "PT1H1S"),
    (-604_800_000, "-P7D"),
    (-1_500, "-PT1.5S"),
])
def test_format_duration(ms, text):
    assert format_duration(ms) == text


@pytest.mark.parametrize("ms", [0, 1, 999, 1_000, 59_999, 3_599_999, 86_399_999, 90_061_500,
                                123_456_789_012, -1, -86_400_000])
def test_format_round_trips(ms):
    assert parse_signed_duration(format_duration(ms)) == ms


@pytest.mark.parametrize("value", [1.5, True, "PT1H", None])
def test_format_duration_needs_an_int(value):
    with pytest.raises(TypeError):
        format_duration(value)
