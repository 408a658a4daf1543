"""The send policy's rules and decision (flowd.send_policy, pure): quiet hours on a contact's
wall clock across midnight and both DST changes, frequency caps over a rolling window, both at
once, the workflow overrides and the `[policy]` spelling."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from flowd.config import PolicyConfig
from flowd.durations import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE
from flowd.send_policy import (
    SEND,
    Defer,
    FrequencyCap,
    Mode,
    PolicyOverrides,
    QuietHours,
    SendPolicy,
    Skip,
    decide,
    parse_config_cap,
)
from flowd.timeutil import format_ms


def ms(text: str) -> int:
    """An RFC 3339 time with its offset → epoch ms."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def quiet(start: str = "21:00", end: str = "08:00", tz: str = "contact",
          mode: Mode = Mode.DEFER) -> SendPolicy:
    h, m = start.split(":")
    eh, em = end.split(":")
    return SendPolicy(QuietHours(int(h) * 60 + int(m), int(eh) * 60 + int(em), tz, mode),
                      timezone="UTC")


def until(decision: Any) -> str:
    assert isinstance(decision, Defer), decision
    return format_ms(decision.until_ms)


BERLIN = "Europe/Berlin"


@pytest.mark.parametrize("now,expected", [
    # Across midnight: 22:00 local waits for 08:00 local the next day (CET, +01:00).
    ("2027-01-15T22:00:00+01:00", "2027-01-16T07:00:00.000Z"),
    ("2027-01-16T03:00:00+01:00", "2027-01-16T07:00:00.000Z"),
    ("2027-01-15T21:00:00+01:00", "2027-01-16T07:00:00.000Z"),   # the start belongs to it
    # Spring forward (2026-03-29, 02:00 CET → 03:00 CEST): 08:00 the next morning is CEST.
    ("2026-03-28T22:00:00+01:00", "2026-03-29T06:00:00.000Z"),
    # Fall back (2026-10-25, 03:00 CEST → 02:00 CET): 08:00 the next morning is CET.
    ("2026-10-24T22:00:00+02:00", "2026-10-25T07:00:00.000Z"),
])
def test_quiet_hours_across_midnight_defer_to_the_next_local_end(now, expected):
    decision = decide(quiet(), "email", contact_timezone=BERLIN, now_ms=ms(now))
    assert until(decision) == expected and decision.reason == "quiet_hours"


@pytest.mark.parametrize("now", ["2027-01-15T20:59:59+01:00", "2027-01-16T08:00:00+01:00",
                                 "2027-01-16T12:00:00+01:00"])
def test_outside_quiet_hours_a_message_goes_at_once(now):
    assert decide(quiet(), "email", contact_timezone=BERLIN, now_ms=ms(now)) is SEND


def test_a_window_within_one_day():
    policy = quiet("12:00", "13:00")
    assert until(decide(policy, "sms", contact_timezone=BERLIN,
                        now_ms=ms("2027-01-15T12:30:00+01:00"))) == "2027-01-15T12:00:00.000Z"
    for now in ("2027-01-15T11:59:00+01:00", "2027-01-15T13:00:00+01:00",
                "2027-01-15T23:00:00+01:00"):
        assert decide(policy, "sms", contact_timezone=BERLIN, now_ms=ms(now)) is SEND


def test_an_end_skipped_by_spring_forward_is_the_first_instant_after_the_gap():
    # 2026-03-29 02:30 does not exist in Berlin: the window ends at 03:00 CEST (01:00Z).
    policy = quiet("21:00", "02:30")
    assert until(decide(policy, "email", contact_timezone=BERLIN,
                        now_ms=ms("2026-03-28T22:00:00+01:00"))) == "2026-03-29T01:00:00.000Z"
    assert until(decide(policy, "email", contact_timezone=BERLIN,
                        now_ms=ms("2026-03-29T01:59:00+01:00"))) == "2026-03-29T01:00:00.000Z"
    assert decide(policy, "email", contact_timezone=BERLIN,
                  now_ms=ms("2026-03-29T03:00:00+02:00")) is SEND


def test_an_end_repeated_by_fall_back_is_its_first_occurrence():
    # 2026-10-25 02:30 happens twice in Berlin: the window ends at the first (CEST, 00:30Z),
    # and the repeated hour after it is not quiet again.
    policy = quiet("21:00", "02:30")
    assert until(decide(policy, "email", contact_timezone=BERLIN,
                        now_ms=ms("2026-10-24T22:00:00+02:00"))) == "2026-10-25T00:30:00.000Z"
    assert decide(policy, "email", contact_timezone=BERLIN,
                  now_ms=ms("2026-10-25T02:10:00+01:00")) is SEND


def test_a_start_in_the_gap_opens_the_window_after_the_gap():
    policy = quiet("02:30", "06:00")
    assert decide(policy, "email", contact_timezone=BERLIN,
                  now_ms=ms("2026-03-29T01:59:00+01:00")) is SEND
    assert until(decide(policy, "email", contact_timezone=BERLIN,
                        now_ms=ms("2026-03-29T03:00:00+02:00"))) == "2026-03-29T04:00:00.000Z"


def test_the_zone_is_the_contacts_else_the_projects_else_the_one_named():
    now = ms("2027-01-15T22:30:00Z")   # 23:30 in Berlin, 17:30 in New York
    policy = SendPolicy(QuietHours(21 * 60, 8 * 60), timezone="America/New_York")
    assert until(decide(policy, "email", contact_timezone=BERLIN, now_ms=now)) == \
        "2027-01-16T07:00:00.000Z"
    assert decide(policy, "email", contact_timezone=None, now_ms=now) is SEND
    assert decide(policy, "email", contact_timezone="Not/AZone", now_ms=now) is SEND
    named = SendPolicy(QuietHours(21 * 60, 8 * 60, "Asia/Tokyo"), timezone=BERLIN)
    # 07:30 in Tokyo: quiet until 08:00 there, whatever the contact's zone.
    assert until(decide(named, "email", contact_timezone=BERLIN, now_ms=now)) == \
        "2027-01-15T23:00:00.000Z"


def test_start_equal_to_end_is_no_quiet_hours_and_slack_is_not_held():
    now = ms("2027-01-15T22:00:00+01:00")
    assert decide(quiet("08:00", "08:00"), "email", contact_timezone=BERLIN, now_ms=now) is SEND
    assert decide(quiet(), "slack", contact_timezone=BERLIN, now_ms=now) is SEND


def test_skip_mode_skips():
    decision = decide(quiet(mode=Mode.SKIP), "push", contact_timezone=BERLIN,
                      now_ms=ms("2027-01-15T22:00:00+01:00"))
    assert decision == Skip("quiet_hours")


def cap_policy(max_: int = 3, per_ms: int = MS_PER_DAY, mode: Mode = Mode.DEFER,
               quiet_hours: QuietHours | None = None) -> SendPolicy:
    return SendPolicy(quiet_hours, (FrequencyCap("email", max_, per_ms, "P1D", mode),))


def test_a_full_cap_defers_until_the_oldest_counted_message_leaves_the_window():
    now = ms("2027-01-15T12:00:00Z")
    sent = [now - 10 * MS_PER_HOUR, now - 5 * MS_PER_HOUR, now - MS_PER_MINUTE]
    assert decide(cap_policy(), "email", contact_timezone=None, now_ms=now,
                  recent=sent[1:]) is SEND
    decision = decide(cap_policy(), "email", contact_timezone=None, now_ms=now, recent=sent)
    assert decision == Defer(sent[0] + MS_PER_DAY, "frequency_cap")
    # At that instant the oldest no longer counts.
    assert decide(cap_policy(), "email", contact_timezone=None, now_ms=sent[0] + MS_PER_DAY,
                  recent=sent) is SEND
    assert decide(cap_policy(), "sms", contact_timezone=None, now_ms=now, recent=sent) is SEND
    assert decide(cap_policy(mode=Mode.SKIP), "email", contact_timezone=None, now_ms=now,
                  recent=sent) == Skip("frequency_cap")


def test_both_rules_defer_to_a_time_that_satisfies_both():
    # Quiet until 08:00Z; the cap frees a slot at 09:00Z: the later one.
    now = ms("2027-01-15T23:00:00Z")
    sent = [ms("2027-01-15T09:00:00Z"), ms("2027-01-15T10:00:00Z")]
    policy = cap_policy(2, quiet_hours=QuietHours(21 * 60, 8 * 60, "UTC"))
    assert decide(policy, "email", contact_timezone=None, now_ms=now, recent=sent) == \
        Defer(ms("2027-01-16T09:00:00Z"), "quiet_hours")
    # A cap that frees a slot during the night: the end of quiet hours decides.
    early = [ms("2027-01-15T01:00:00Z"), ms("2027-01-15T10:00:00Z")]
    assert decide(policy, "email", contact_timezone=None, now_ms=now, recent=early) == \
        Defer(ms("2027-01-16T08:00:00Z"), "quiet_hours")
    # Full in the evening, slot frees at 22:00 — inside quiet hours, so 08:00.
    evening = ms("2027-01-15T20:00:00Z")
    late = [ms("2027-01-14T22:00:00Z"), ms("2027-01-15T10:00:00Z")]
    assert decide(policy, "email", contact_timezone=None, now_ms=evening, recent=late) == \
        Defer(ms("2027-01-16T08:00:00Z"), "frequency_cap")


def test_a_skip_rule_wins_over_a_defer_rule():
    now = ms("2027-01-15T23:00:00Z")
    sent = [now - 1, now - 2, now - 3]
    policy = cap_policy(3, mode=Mode.SKIP, quiet_hours=QuietHours(21 * 60, 8 * 60, "UTC"))
    assert decide(policy, "email", contact_timezone=None, now_ms=now, recent=sent) == \
        Skip("frequency_cap")


def overrides(**settings: Any) -> PolicyOverrides:
    return PolicyOverrides.of(settings)


def test_workflow_settings_override_the_projects_policy():
    project = SendPolicy(QuietHours(21 * 60, 8 * 60),
                         (FrequencyCap("email", 3, MS_PER_DAY, "P1D"),
                          FrequencyCap("sms", 1, MS_PER_DAY, "P1D")), "Europe/Berlin")
    assert overrides().applied_to(project) is project
    assert overrides(reentry="always").applied_to(project) is project
    off = overrides(quiet_hours=None).applied_to(project)
    assert off.quiet_hours is None and off.caps == project.caps and off.timezone == BERLIN
    other = overrides(quiet_hours={"start": "22:00", "end": "07:00", "mode": "skip"}
                      ).applied_to(project)
    assert other.quiet_hours == QuietHours(22 * 60, 7 * 60, "contact", Mode.SKIP)
    one = overrides(frequency_cap={"channel": "email", "max": 5, "per": "PT12H"}
                    ).applied_to(project)
    assert one.cap("email") == FrequencyCap("email", 5, 12 * MS_PER_HOUR, "PT12H")
    assert one.cap("sms") == project.cap("sms") and one.quiet_hours == project.quiet_hours
    some = overrides(frequency_cap=[{"channel": "sms", "max": None},
                                    {"channel": "push", "max": 2, "per": "P1D", "mode": "skip"}]
                     ).applied_to(project)
    assert some.cap("sms") is None and some.cap("email") == project.cap("email")
    assert some.cap("push") == FrequencyCap("push", 2, MS_PER_DAY, "P1D", Mode.SKIP)
    assert overrides(frequency_cap=None).applied_to(project).caps == ()
    with pytest.raises(ValueError, match="two frequency caps"):
        overrides(frequency_cap=[{"channel": "sms", "max": None}, {"channel": "sms", "max": 1,
                                                                   "per": "P1D"}])


def config(**values: Any) -> Any:
    return SimpleNamespace(**{**PolicyConfig().__dict__, **values})


def test_the_policy_section_spells_the_project_wide_policy():
    assert SendPolicy.of(PolicyConfig()) == SendPolicy()
    policy = SendPolicy.of(config(timezone=BERLIN, quiet_hours_start="21:30",
                                  quiet_hours_end="07:45", quiet_hours_mode="skip",
                                  frequency_cap_email="3/P1D", frequency_cap_sms=" 1 / PT12H ",
                                  frequency_cap_mode="skip"))
    assert policy == SendPolicy(
        QuietHours(21 * 60 + 30, 7 * 60 + 45, "contact", Mode.SKIP),
        (FrequencyCap("email", 3, MS_PER_DAY, "P1D", Mode.SKIP),
         FrequencyCap("sms", 1, 12 * MS_PER_HOUR, "PT12H", Mode.SKIP)), BERLIN)
    with pytest.raises(ValueError, match="given together"):
        SendPolicy.of(config(quiet_hours_start="21:00"))
    assert parse_config_cap("10/PT1H") == (10, "PT1H")
    for bad in ("3", "3/", "0/P1D", "1001/P1D", "3/P1Y2Y", "3/PT0S", "x/P1D", "3/P400D"):
        with pytest.raises(ValueError):
            parse_config_cap(bad)


def test_times_are_utc_ms():
    # The helper above reads offsets as written.
    assert ms("2027-01-15T22:00:00+01:00") == int(datetime(2027, 1, 15, 21, tzinfo=timezone.utc)
                                                  .timestamp() * 1000)
