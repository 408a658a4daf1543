"""What an event does to workflows, decided inside the unit of work that stores it: end runs
whose `exit_on` it matches, end `wait_for_event` waits it satisfies, and start runs of the
workflows it triggers (following each workflow's reentry rule). An event and its consequences
commit together or not at all.

`wait_matches` is the one test of whether an event ends an event wait: ingest uses it for an
event that arrives while runs wait, the engine for events that arrived before a wait began
(`lookback`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from flowd.conditions import Condition, compile_condition, compile_name_pattern
from flowd.runs import blocking_run, end_active_run, new_run
from flowd.store import Transaction
from flowd.store.records import Event, Run, RunStatus
from flowd.templates import Scope
from flowd.triggers import TriggerIndex
from flowd.waits import EventWaitSpec, Wake, WakeReason


class WaitedNames:
    """Event names that some run may be waiting for, per project: a superset (names are never
    removed), so an event nobody waits for costs no query. Touched only in the writer thread,
    where waits are registered and events matched, so it is always in step with the database."""

    _LIMIT = 10_000  # past this many distinct names (templated waits), just always look

    def __init__(self) -> None:
        self._exact: set[tuple[str, str]] = set()
        self._wildcard: set[str] = set()
        self._everything = False

    def add(self, project_id: str, pattern: str) -> None:
        if "*" in pattern:
            self._wildcard.add(project_id)
        elif len(self._exact) < self._LIMIT:
            self._exact.add((project_id, pattern))
        else:
            self._everything = True

    def may_match(self, project_id: str, name: str) -> bool:
        return (self._everything or project_id in self._wildcard
                or (project_id, name) in self._exact)


@lru_cache(maxsize=4096)
def name_pattern(pattern: str) -> Callable[[str], bool]:
    return compile_name_pattern(pattern)


_filters: dict[str, Condition] = {}


def wait_filter(raw: Any) -> Condition:
    """Wait filters are stored as JSON; each distinct one is compiled once (bounded cache)."""
    key = repr(raw)
    condition = _filters.get(key)
    if condition is None:
        if len(_filters) > 4096:
            _filters.clear()
        condition = _filters[key] = compile_condition(raw, "filter")
    return condition


class EventView:
    """An event as conditions see it (`event.…`, `contact.…`), built only when something needs
    it: most events match nothing, and most matches need no contact."""

    def __init__(self, event: Event, load_contact: Callable[[], dict[str, Any] | None],
                 now: int) -> None:
        self.event = event
        self.now = now
        self._load_contact = load_contact
        self._data: dict[str, Any] | None = None
        self._contact: list[dict[str, Any] | None] = []
        self._scope: Scope | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self.event.to_json()
        return self._data

    def contact(self) -> dict[str, Any] | None:
        if not self._contact:
            self._contact.append(self._load_contact())
        return self._contact[0]

    def passes(self, condition: Condition | None) -> bool:
        if condition is None:
            return True
        if self._scope is None:
            self._scope = Scope({"event": self.data, "contact": self.contact() or {}})
        return condition.evaluate(self._scope, self.now)


def wait_matches(spec: EventWaitSpec, view: EventView) -> bool:
    """Whether the event ends a wait for `spec` (whose contact the caller already matched)."""
    event = view.event
    if event.received_at < spec.since or not name_pattern(spec.pattern)(event.name):
        return False
    return spec.filter is None or view.passes(wait_filter(spec.filter))


@dataclass
class MatchResult:
    started: list[Run] = field(default_factory=list)
    contact: dict[str, Any] | None = None       # the event's contact, if anything loaded it
    resumed: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)


def match_event(tx: Transaction, index: TriggerIndex, waited: WaitedNames, event: Event,
                now: int, *, depth: int = 0) -> MatchResult:
    """What `event` does, done in `tx`; it records the run ids on the event as well."""
    result = MatchResult()
    exits = index.exits(event.project_id, event.name) if event.contact_id is not None else ()
    may_wake = waited.may_match(event.project_id, event.name)
    triggered = index.triggered(event.project_id, event.name)
    if not (exits or may_wake or triggered):  # most events: nothing to match, nothing to build
        event.runs_started, event.runs_resumed, event.runs_exited = [], [], []
        return result

    def load_contact() -> dict[str, Any] | None:
        if event.contact_id is None:
            return None
        contact = tx.contacts.get(event.project_id, event.contact_id)
        return contact.to_json() if contact else None

    view = EventView(event, load_contact, now)

    # 1. exit_on: this contact's active runs of workflows whose exit rule matches end now.
    if exits:
        exiting = {wf.workflow_id for wf, rule in exits if view.passes(rule.filter)}
        if exiting:
            for run_id in tx.runs.active_ids(event.project_id, contact_id=event.contact_id,
                                             workflow_ids=exiting):
                if end_active_run(tx, event.project_id, run_id, RunStatus.COMPLETED, now,
                                  result.resumed, exit_reason=f"exit_on:{event.name}"):
                    result.exited.append(run_id)

    # 2. wait_for_event: waits of this contact (and of contact-less runs) that the event ends.
    if may_wake:
        for wait in tx.runs.event_waits_for(event.project_id, event.name, event.contact_id):
            if wait_matches(wait.spec, view) and tx.runs.wake(
                    wait.run_id, Wake(WakeReason.EVENT, event=view.data), now):
                result.resumed.append(wait.run_id)

    # 3. Triggers: start a run of each matching workflow the contact may enter.
    reads_contact = False   # whether a started run's workflow may read its contact
    for workflow, rule in triggered:
        if not view.passes(rule.filter) or blocking_run(tx, workflow, event.contact_id):
            continue
        trigger: dict[str, Any] = {"type": "event", "event": view.data}
        if depth:
            trigger["depth"] = depth   # emitted by a run's step: the chain goes on
        run = new_run(workflow, event.contact_id, trigger, now)
        tx.runs.insert([run])
        result.started.append(run)
        reads_contact = reads_contact or workflow.compiled.reads_contact
    event.runs_started = [run.id for run in result.started]
    event.runs_resumed = list(result.resumed)
    event.runs_exited = list(result.exited)
    if event.contact_id is not None and reads_contact:
        result.contact = view.contact()  # the engine starts the runs with it, sparing a read
    return result
