"""How a run waits, and why a wait ends: the types steps, the engine, the scheduler, ingest and
the store share.

A step that waits returns a `Wait` in its outcome; the run keeps it until something ends it —
its timer coming due, a matching event, a decision on an approval or the end of a child run —
and that something is a `Wake`. Every wait ends the same way, whatever woke it: the
engine hands the `Wake` to the step type's `resume()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from flowd.timeutil import format_ms


class WaitKind(str, Enum):
    TIMER = "timer"          # `wait`: until a time
    EVENT = "event"          # `wait_for_event`: until a matching event (or its timeout)
    RETRY = "retry"          # the backoff before a failed step's next attempt
    APPROVAL = "approval"    # until someone decides (orchestration)
    CHILD = "child"          # until a child run ends (orchestration)


class WakeReason(str, Enum):
    TIMER = "timer"          # the wait's `until` came
    EVENT = "event"          # a matching event arrived
    DECISION = "decision"    # an approval was decided
    CHILD = "child"          # the child run ended


@dataclass(frozen=True)
class EventWaitSpec:
    """What an event wait matches: events named like `pattern` (a `*` pattern) of the run's
    contact, received at or after `since`, for which the raw condition `filter` holds."""

    pattern: str
    filter: Any = None
    since: int = 0


@dataclass
class Wait:
    kind: WaitKind
    until: int | None = None      # epoch ms when the wait ends by itself; None: never
    started_at: int = 0           # when the step began to wait (its trace entry's start)
    input: Any = None             # the step's resolved config: the trace shows it, resume gets it
    event: str | None = None      # an event wait's name pattern, as the API shows it
    # What else the wait is for: the child run a `child` wait waits on (only that one's end
    # wakes it), the approval an `approval` wait waits on, the send-policy rule that deferred
    # a messaging step (its timer wait).
    ref: str | None = None

    @property
    def is_retry(self) -> bool:
        return self.kind is WaitKind.RETRY

    def to_json(self) -> dict[str, Any]:
        """The API's shape: a retry's backoff is shown as a timer with `retry: true`."""
        shown: dict[str, Any] = {
            "kind": WaitKind.TIMER.value if self.is_retry else self.kind.value,
            "until": format_ms(self.until)}
        if self.event is not None:
            shown["event"] = self.event
        if self.kind is WaitKind.CHILD:
            shown["child_run_id"] = self.ref
        if self.is_retry:
            shown["retry"] = True
        return shown

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": self.kind.value, "until": self.until,
                                  "started_at": self.started_at, "input": self.input}
        if self.event is not None:
            record["event"] = self.event
        if self.ref is not None:
            record["ref"] = self.ref
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Wait":
        kind = WaitKind(record["kind"])
        if record.get("retry"):   # stored before retries were a kind of their own
            kind = WaitKind.RETRY
        return cls(kind, record.get("until"), record.get("started_at", 0), record.get("input"),
                   record.get("event"), record.get("ref"))


@dataclass(frozen=True)
class Wake:
    """Why a wait ended: its timer, an event (`event` holds it), a decision or a child's end
    (`data` holds what the step gets)."""

    reason: WakeReason
    event: dict[str, Any] | None = None
    data: dict[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"reason": self.reason.value}
        if self.event is not None:
            record["event"] = self.event
        if self.data is not None:
            record["data"] = self.data
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Wake":
        return cls(WakeReason(record["reason"]), record.get("event"), record.get("data"))


TIMER_WAKE = Wake(WakeReason.TIMER)
