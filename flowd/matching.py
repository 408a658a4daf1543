"""What an event does to workflows, decided inside the transaction that stores it: end runs
whose `exit_on` it matches, end `wait_for_event` waits it satisfies, and start runs of the
workflows it triggers (following each workflow's reentry rule). Runs here in the writer thread
as part of the ingest unit, so an event and its consequences commit together or not at all."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from flowd.conditions import Condition, compile_condition, compile_name_pattern
from flowd.ids import new_id
from flowd.store import runs as run_store
from flowd.store.records import Event
from flowd.store.runs import Run, RunStatus
from flowd.templates import Scope
from flowd.triggers import IndexedWorkflow, TriggerIndex


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


def event_json(event: Event) -> dict[str, Any]:
    """The event as templates and conditions see it (`event.name`, `event.properties.x`)."""
    return event.to_json()


@dataclass
class MatchResult:
    started: list[Run] = field(default_factory=list)
    contact: dict[str, Any] | None = None       # the event's contact, if anything loaded it
    resumed: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)


def new_run(workflow: IndexedWorkflow, contact_id: str | None, trigger: dict[str, Any],
            now: int) -> Run:
    status = RunStatus.PAUSED if workflow.paused else RunStatus.PENDING
    return Run(id=new_id("run", now), project_id=workflow.project_id,
               workflow_id=workflow.workflow_id, workflow_version=workflow.version,
               contact_id=contact_id, status=status,
               current_step_id=workflow.compiled.first_step, trigger=trigger, created_at=now,
               updated_at=now, due_at=None if workflow.paused else now)


def may_enter(conn: sqlite3.Connection, workflow: IndexedWorkflow, contact_id: str | None
              ) -> str | None:
    """None when the contact may start a new run; else the id of the run that blocks it."""
    if contact_id is None or workflow.compiled.reentry == "always":
        return None
    if workflow.compiled.reentry == "once":
        return run_store.latest_run_id(conn, workflow.project_id, workflow.workflow_id, contact_id)
    return run_store.active_run_id(conn, workflow.project_id, workflow.workflow_id, contact_id)


def match_event(conn: sqlite3.Connection, index: TriggerIndex, waited: WaitedNames, event: Event,
                contact: Callable[[], dict[str, Any] | None], now: int) -> MatchResult:
    """`contact` loads the event's contact (as JSON) at most once, when something needs it."""
    result = MatchResult()
    exits = index.exits(event.project_id, event.name) if event.contact_id is not None else ()
    may_wake = waited.may_match(event.project_id, event.name)
    triggered = index.triggered(event.project_id, event.name)
    if not (exits or may_wake or triggered):  # most events: nothing to match, nothing to build
        event.runs_started, event.runs_resumed, event.runs_exited = [], [], []
        return result
    data_cache: list[dict[str, Any]] = []
    scope_cache: list[Scope] = []
    loaded: list[dict[str, Any] | None] = []

    # Built only when something matches: most events start and end nothing.
    def event_data() -> dict[str, Any]:
        if not data_cache:
            data_cache.append(event_json(event))
        return data_cache[0]

    def load_contact() -> dict[str, Any] | None:
        if not loaded:
            loaded.append(contact())
        return loaded[0]

    def scope() -> Scope:
        if not scope_cache:
            scope_cache.append(Scope({"event": event_data(), "contact": load_contact() or {}}))
        return scope_cache[0]

    def passes(condition: Condition | None) -> bool:
        return condition is None or condition.evaluate(scope(), now)

    # 1. exit_on: this contact's active runs of workflows whose exit rule matches end now.
    if exits:
        exiting = {wf.workflow_id for wf, rule in exits if passes(rule.filter)}
        if exiting:
            for run_id in run_store.active_runs_of(conn, event.project_id, event.contact_id, exiting):
                if run_store.finish(conn, run_id, RunStatus.COMPLETED, now,
                                    exit_reason=f"exit_on:{event.name}"):
                    result.exited.append(run_id)

    # 2. wait_for_event: waits of this contact (and of contact-less runs) that the event ends.
    waits = (run_store.event_waits_for(conn, event.project_id, event.name, event.contact_id)
             if may_wake else ())
    for wait in waits:
        if event.received_at < wait.since or not name_pattern(wait.pattern)(event.name):
            continue
        if wait.filter is not None and not passes(wait_filter(wait.filter)):
            continue
        if run_store.wake(conn, wait.run_id, {"reason": "event", "event": event_data()}, now):
            result.resumed.append(wait.run_id)

    # 3. Triggers: start a run of each matching workflow the contact may enter.
    reads_contact = False   # whether a started run's workflow may read its contact
    for workflow, rule in triggered:
        if not passes(rule.filter) or may_enter(conn, workflow, event.contact_id) is not None:
            continue
        run = new_run(workflow, event.contact_id, {"type": "event", "event": event_data()}, now)
        run_store.insert_run(conn, run)
        result.started.append(run)
        reads_contact = reads_contact or workflow.compiled.reads_contact
    event.runs_started = [run.id for run in result.started]
    event.runs_resumed = list(result.resumed)
    event.runs_exited = list(result.exited)
    if event.contact_id is not None and reads_contact:
        result.contact = load_contact()  # the engine starts the runs with it, sparing a read
    return result
