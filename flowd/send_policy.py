"""The send policy (pure: no store, no clock — `now` is passed in): quiet hours in the contact's
own time zone and frequency caps per channel, what their JSON and `[policy]` spellings mean,
how a workflow's `settings` override the project's `[policy]`, and the decision a messaging
step acts on: send now, defer until a time, or skip.

- Quiet hours `{"start": "21:00", "end": "08:00", "timezone": "contact" | "<IANA>", "mode":
  "defer" | "skip"}` are read on the wall clock of the contact's `timezone` (`"contact"`, the
  default; a contact without one, or with one that no longer exists, uses the project's
  `[policy] timezone`), else of the zone named. `start` after `end` spans midnight; `start ==
  end` means none. Each window is a span of instants from the first occurrence of `start` to
  the first occurrence of the following `end`; a wall time that a spring-forward gap skips is
  read as the first instant after the gap (as schedule triggers do, `flowd.cron`). They apply
  to the channels that reach the contact (email, sms, push), not to Slack posts, which go to a
  team's channel.
- A frequency cap `{"channel": "email", "max": 3, "per": "P1D", "mode": …}` allows at most
  `max` messages on that channel per rolling `per` for one contact, counted across all of its
  journeys: a message counts while `now - per < created_at`. The caller supplies the times
  (`recent`: the newest `max` ones in the window), so a deferral ends exactly when the oldest
  of them leaves the window and a slot frees.
- `defer` waits: when several rules hold the send back, until a time when none of the `defer`
  ones does (a bounded loop). `skip` drops the message (outcome `rate_limited`) and takes
  precedence: a message that one rule would drop is not kept waiting by another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from flowd.cron import load_zone, wall_instant
from flowd.durations import MS_PER_DAY, parse_duration

CHANNELS = ("email", "sms", "push", "slack")
# Quiet hours protect the contact's nights; a Slack post goes to a team's channel.
QUIET_CHANNELS = frozenset(("email", "sms", "push"))
CONTACT_ZONE = "contact"
MAX_CAP = 1000                    # the newest `max` send times are read for each check
MAX_CAP_WINDOW_MS = 366 * MS_PER_DAY
CLOCK_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_CLOCK_TIME = re.compile(CLOCK_TIME)
_CONFIG_CAP = re.compile(r"\s*([0-9]{1,4})\s*/\s*(\S+)\s*")
# Each pass of the loop in decide() moves the time forward past one rule; with the send times
# fixed, a cap that has let a time through lets every later one through, so three passes settle.
_SETTLE_PASSES = 4
_UTC = timezone.utc

QUIET_HOURS = "quiet_hours"
FREQUENCY_CAP = "frequency_cap"


class Mode(str, Enum):
    DEFER = "defer"   # the run waits, and the step runs again when the rule lets it through
    SKIP = "skip"     # the step sends nothing (outcome rate_limited) and the run goes on


@dataclass(frozen=True)
class QuietHours:
    start: int                # minutes after local midnight
    end: int
    timezone: str = CONTACT_ZONE   # "contact" or an IANA name
    mode: Mode = Mode.DEFER

    def to_json(self) -> dict[str, Any]:
        return {"start": _clock_text(self.start), "end": _clock_text(self.end),
                "timezone": self.timezone, "mode": self.mode.value}

    def zone(self, contact_timezone: str | None, project_timezone: str) -> ZoneInfo:
        if self.timezone != CONTACT_ZONE:
            return _zone(self.timezone) or _zone("UTC")  # type: ignore[return-value]
        return _zone(contact_timezone) or _zone(project_timezone) or _zone("UTC")  # type: ignore

    def until(self, now_ms: int, zone: ZoneInfo) -> int | None:
        """When the window that holds `now_ms` ends, or None when none does."""
        if self.start == self.end:
            return None
        today = datetime.fromtimestamp(now_ms / 1000, _UTC).astimezone(zone).date()
        spans_midnight = self.start > self.end
        # A window holding now began today, or (spanning midnight) yesterday.
        for began in (today - timedelta(days=1), today):
            opens = _instant(began, self.start, zone)
            closes = _instant(began + timedelta(days=1 if spans_midnight else 0), self.end, zone)
            if opens <= now_ms < closes:
                return closes
        return None


@dataclass(frozen=True)
class FrequencyCap:
    channel: str
    max: int
    per_ms: int
    per: str                  # as written (ISO 8601)
    mode: Mode = Mode.DEFER

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "max": self.max, "per": self.per,
                "mode": self.mode.value}

    def until(self, at_ms: int, recent: Sequence[int]) -> int | None:
        """When a slot frees, if `max` of the `recent` send times are within the window at
        `at_ms`; None when one is free."""
        counted = sorted((t for t in recent if t > at_ms - self.per_ms), reverse=True)
        if len(counted) < self.max:
            return None
        return counted[self.max - 1] + self.per_ms


@dataclass(frozen=True)
class SendPolicy:
    """The policy a run's messaging steps follow: the project's, as its workflow overrides it."""

    quiet_hours: QuietHours | None = None
    caps: tuple[FrequencyCap, ...] = ()
    timezone: str = "UTC"     # the project's: for contacts without a time zone of their own

    def cap(self, channel: str) -> FrequencyCap | None:
        for cap in self.caps:
            if cap.channel == channel:
                return cap
        return None

    def applies_to(self, channel: str) -> bool:
        return self.cap(channel) is not None or (
            self.quiet_hours is not None and channel in QUIET_CHANNELS)

    @classmethod
    def of(cls, config: Any) -> SendPolicy:
        """The project-wide policy from `[policy]` (flowd.config.PolicyConfig); ValueError
        naming the setting when the settings do not fit together."""
        quiet = None
        if bool(config.quiet_hours_start) != bool(config.quiet_hours_end):
            raise ValueError("policy.quiet_hours_start and policy.quiet_hours_end are given "
                             "together (both empty: no quiet hours)")
        if config.quiet_hours_start:
            quiet = QuietHours(_minutes(config.quiet_hours_start),
                               _minutes(config.quiet_hours_end), config.quiet_hours_timezone,
                               Mode(config.quiet_hours_mode))
        caps = []
        for channel in CHANNELS:
            spelled = getattr(config, f"frequency_cap_{channel}")
            if spelled:
                count, per = parse_config_cap(spelled)
                caps.append(FrequencyCap(channel, count, parse_duration(per), per,
                                         Mode(config.frequency_cap_mode)))
        return cls(quiet, tuple(caps), config.timezone)


NO_POLICY = SendPolicy()


@dataclass(frozen=True)
class PolicyOverrides:
    """What a workflow's `settings` say about the policy. A key it does not give keeps the
    project's rule; `"quiet_hours": null` turns quiet hours off for its runs; a cap replaces
    the project's cap on its channel, and `"max": null` turns that channel's cap off;
    `"frequency_cap": null` turns every cap off."""

    quiet_hours: QuietHours | None = None
    replaces_quiet_hours: bool = False
    caps: Mapping[str, FrequencyCap | None] = field(default_factory=dict)
    no_caps: bool = False

    @property
    def empty(self) -> bool:
        return not (self.replaces_quiet_hours or self.caps or self.no_caps)

    def applied_to(self, project: SendPolicy) -> SendPolicy:
        if self.empty:
            return project
        quiet = self.quiet_hours if self.replaces_quiet_hours else project.quiet_hours
        if self.no_caps:
            caps: tuple[FrequencyCap, ...] = ()
        else:
            kept = [cap for cap in project.caps if cap.channel not in self.caps]
            caps = tuple(kept + [cap for cap in self.caps.values() if cap is not None])
        return SendPolicy(quiet, caps, project.timezone)

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> PolicyOverrides:
        """From a workflow's settings, whose shape the request schema checked
        (`flowd.definition_schema`); ValueError for what still cannot work."""
        replaces = "quiet_hours" in settings
        raw_quiet = settings.get("quiet_hours")
        quiet = parse_quiet_hours(raw_quiet) if raw_quiet is not None else None
        caps: dict[str, FrequencyCap | None] = {}
        no_caps = "frequency_cap" in settings and settings["frequency_cap"] is None
        raw_caps = settings.get("frequency_cap")
        for raw in ([raw_caps] if isinstance(raw_caps, dict) else raw_caps or []):
            channel = raw["channel"]
            if channel in caps:
                raise ValueError(f"two frequency caps for channel {channel!r}")
            caps[channel] = parse_cap(raw) if raw.get("max") is not None else None
        return cls(quiet, replaces, caps, no_caps)


# ---------------------------------------------------------------- the decision

@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Defer:
    until_ms: int
    reason: str       # quiet_hours | frequency_cap: the rule that holds the send back now


@dataclass(frozen=True)
class Skip:
    reason: str


Decision = Send | Defer | Skip
SEND = Send()


def decide(policy: SendPolicy, channel: str, *, contact_timezone: str | None, now_ms: int,
           recent: Sequence[int] = ()) -> Decision:
    """Send, defer or skip a message on `channel` to a contact at `now_ms`. `recent`: the
    contact's counted send times on `channel` within the cap's window (at least its newest
    `max`); ignored without a cap."""
    rules: list[tuple[str, Mode, Any]] = []
    quiet = policy.quiet_hours
    if quiet is not None and channel in QUIET_CHANNELS:
        zone = quiet.zone(contact_timezone, policy.timezone)
        rules.append((QUIET_HOURS, quiet.mode, lambda at: quiet.until(at, zone)))
    cap = policy.cap(channel)
    if cap is not None:
        rules.append((FREQUENCY_CAP, cap.mode, lambda at: cap.until(at, recent)))
    holding = [(reason, mode, until) for reason, mode, until in rules if until(now_ms) is not None]
    if not holding:
        return SEND
    for reason, mode, _ in holding:
        if mode is Mode.SKIP:
            return Skip(reason)
    # Only `defer` rules move the time: a `skip` rule that holds at the new time decides then,
    # when the step runs again.
    deferring = [until for _, mode, until in rules if mode is Mode.DEFER]
    at = now_ms
    for _ in range(_SETTLE_PASSES):
        moved = False
        for until in deferring:
            later = until(at)
            if later is not None and later > at:
                at, moved = later, True
        if not moved:
            break
    return Defer(at, holding[0][0])


# ---------------------------------------------------------------- parsing

def parse_quiet_hours(raw: Mapping[str, Any]) -> QuietHours:
    """From the JSON shape (checked by QUIET_HOURS_SCHEMA in flowd.definition_schema)."""
    return QuietHours(_minutes(raw["start"]), _minutes(raw["end"]),
                      raw.get("timezone", CONTACT_ZONE), Mode(raw.get("mode", "defer")))


def parse_cap(raw: Mapping[str, Any]) -> FrequencyCap:
    per = raw["per"]
    return FrequencyCap(raw["channel"], int(raw["max"]), parse_duration(per), per,
                        Mode(raw.get("mode", "defer")))


def check_clock_time(value: str) -> str | None:
    return None if _CLOCK_TIME.fullmatch(value) else "must be a time of day HH:MM, 00:00–23:59"


def check_policy_zone(value: str) -> str | None:
    """"contact", or an IANA time zone that exists."""
    if value == CONTACT_ZONE:
        return None
    return None if _zone(value) is not None else (
        'must be "contact" or an IANA time zone name such as Europe/Berlin')


def check_cap_window(value: str) -> str | None:
    try:
        ms = parse_duration(value)
    except ValueError as exc:
        return str(exc)
    if ms <= 0:
        return "must be longer than zero"
    if ms > MAX_CAP_WINDOW_MS:
        return "must be at most P366D"
    return None


def parse_config_cap(text: str) -> tuple[int, str]:
    """`[policy] frequency_cap_<channel>`: "3/P1D" → (3, "P1D"); ValueError saying why not."""
    found = _CONFIG_CAP.fullmatch(text)
    if found is None:
        raise ValueError('must be "<max>/<ISO 8601 duration>" such as "3/P1D"')
    count, per = int(found.group(1)), found.group(2)
    if not 1 <= count <= MAX_CAP:
        raise ValueError(f"must allow 1–{MAX_CAP} messages per window")
    problem = check_cap_window(per)
    if problem:
        raise ValueError(f"window {per!r} {problem}")
    return count, per


def duplicate_channels(caps: Iterable[Mapping[str, Any]]) -> list[int]:
    """Indexes of caps that name a channel an earlier cap already named."""
    seen: set[Any] = set()
    duplicates = []
    for i, cap in enumerate(caps):
        channel = cap.get("channel") if isinstance(cap, Mapping) else None
        if channel in seen:
            duplicates.append(i)
        seen.add(channel)
    return duplicates


# ---------------------------------------------------------------- wall clocks

def _minutes(text: str) -> int:
    if check_clock_time(text) is not None:
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _instant(day: date, minutes: int, zone: ZoneInfo) -> int:
    """Epoch ms of a wall-clock time on `day` in `zone`: its first occurrence when the clocks
    fall back, the first instant after the gap when they spring forward over it."""
    return wall_instant(datetime.combine(day, time(minutes // 60, minutes % 60)), zone)


@lru_cache(maxsize=1024)
def _zone(name: str | None) -> ZoneInfo | None:
    if not name or not isinstance(name, str):
        return None
    try:
        return load_zone(name)
    except ValueError:
        return None
