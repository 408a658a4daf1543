"""Event ingest: for each event, de-duplicate on `message_id`, upsert its contact and store it —
all of a request's events in ONE unit of the group commit, so "202" means every part is on disk.

The engine's trigger matching, `exit_on` rules and `wait_for_event` resumption join this same
unit (they fill `runs_started` / `runs_resumed` before the event row is written), which is what
makes "an event is never lost between a run starting to wait and the event arriving" true by
construction.

Contact changes made here (an event's `contact` patch, an unknown contact id) and by the API and
steps (through `contact_changed`) become contact events (flowd.contact_events), stored and
matched in the same unit as the change.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, NamedTuple

from flowd.clock import Clock
from flowd.contact_events import CREATED, contact_events
from flowd.ids import new_id
from flowd.matching import WaitedNames, match_event
from flowd.metrics import Metrics
from flowd.steps.orchestration import MAX_DEPTH
from flowd.store import Store, Transaction
from flowd.store.records import ContactChange, Event, Run
from flowd.triggers import EMPTY_INDEX, TriggerIndex


# NamedTuples rather than frozen dataclasses: one of each is built per event, and a frozen
# dataclass's __init__ costs several times more.
class IncomingEvent(NamedTuple):
    name: str
    contact_id: str | None = None
    properties: dict[str, Any] | None = None
    timestamp: int | None = None          # epoch ms; None means "when received"
    message_id: str | None = None
    contact: dict[str, Any] | None = None  # a validated contact upsert patch
    # How many runs led to it (emitted by a step: its run's depth + 1); runs it starts
    # carry it on, so a chain of workflows triggering each other ends (flowd.steps.orchestration).
    depth: int = 0


class IngestResult(NamedTuple):
    id: str
    duplicate: bool
    runs_started: list[str]
    runs_resumed: list[str]
    runs_exited: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "duplicate": self.duplicate,
                "runs_started": self.runs_started, "runs_resumed": self.runs_resumed,
                "runs_exited": self.runs_exited}


class Ingest:
    def __init__(self, store: Store, clock: Clock, *,
                 index: Callable[[], TriggerIndex] = lambda: EMPTY_INDEX,
                 waited: WaitedNames | None = None,
                 on_started: Callable[[list[tuple[Run, dict[str, Any] | None]]], None]
                 = lambda runs: None,
                 on_runs_due: Callable[[list[str]], None] = lambda run_ids: None,
                 metrics: Metrics | None = None) -> None:
        self._store = store
        self._clock = clock
        self._index = index
        self._waited = waited or WaitedNames()
        self._on_started = on_started
        self._on_runs_due = on_runs_due
        self._metrics = metrics or Metrics()

    def ingest(self, project_id: str, events: list[IncomingEvent]
               ) -> asyncio.Future[list[IngestResult]]:
        """Store `events` (all or none); resolves once they and their runs are committed.
        Started and resumed runs continue in-process at once, without waiting for a poll."""
        return self._store.write(self.store_events, project_id, events, self._clock.now_ms())

    def store_events(self, tx: Transaction, project_id: str, events: list[IncomingEvent],
                     now: int) -> list[IngestResult]:
        """The unit of work itself, for other units that store an event with their own work
        (a bounce with its message's outcome): everything it starts goes on after commit."""
        # Contacts are created and events inserted with one statement each for the whole
        # request, not one per event: less Python per event, and SQLite does that work in one
        # call that does not hold the GIL.
        index = self._index()
        results: list[IngestResult | None] = [None] * len(events)
        started: list[tuple[Run, dict[str, Any] | None]] = []
        resumed: list[str] = []
        first_of: dict[str, int] = {}   # message id -> its first event in this request
        fresh: list[int] = []           # the events to store, in order
        for i, incoming in enumerate(events):
            if incoming.message_id is not None:
                if incoming.message_id in first_of:
                    continue  # answered with its first's result below
                first = tx.events.find_by_message_id(project_id, incoming.message_id)
                if first is not None:
                    results[i] = _repeat(first)
                    continue
                first_of[incoming.message_id] = i
            fresh.append(i)
        named = {events[i].contact_id: events[i].depth for i in fresh  # first-seen order
                 if events[i].contact_id is not None and not events[i].contact}
        # Which contacts this creates is asked only when `contact.created` may match: it costs
        # a little, on the path every event takes.
        created = tx.contacts.ensure(project_id, named, now,
                                     report=bool(named) and self.listens(project_id, CREATED))
        if created:
            self.store_events(tx, project_id, [IncomingEvent(
                CREATED, contact_id, {}, depth=named[contact_id]) for contact_id in created], now)
        stored: list[Event] = []
        for i in fresh:
            incoming = events[i]
            if incoming.contact_id is not None and incoming.contact:
                upserted = tx.contacts.upsert(project_id, incoming.contact_id, incoming.contact,
                                              now)
                self.contact_changed(tx, project_id, upserted.change, now, depth=incoming.depth)
            event = Event(
                id=new_id("evt", now), project_id=project_id, name=incoming.name,
                contact_id=incoming.contact_id, properties=incoming.properties or {},
                timestamp=incoming.timestamp if incoming.timestamp is not None else now,
                received_at=now, message_id=incoming.message_id)
            matched = match_event(tx, index, self._waited, event, now, depth=incoming.depth)
            started += [(run, matched.contact) for run in matched.started
                        if run.due_at is not None]  # paused runs wait for resume
            resumed += matched.resumed
            stored.append(event)
            results[i] = IngestResult(event.id, False, event.runs_started, event.runs_resumed,
                                      event.runs_exited)
        tx.events.insert(stored)
        if stored:
            tx.after_commit.append(lambda: self._count(len(stored)))
        if started:
            tx.after_commit.append(lambda: self._on_started(started))
        if resumed:
            tx.after_commit.append(lambda: self._on_runs_due(resumed))
        answered: list[IngestResult] = []
        for incoming, result in zip(events, results):
            if result is None:  # a message id repeated within this request
                first = results[first_of[incoming.message_id]]  # type: ignore[index]
                assert first is not None
                result = first._replace(duplicate=True)
            answered.append(result)
        return answered

    def listens(self, project_id: str, name: str) -> bool:
        """Whether something in the project may match an event named `name`: a trigger, an
        `exit_on` rule or a waiting run (a superset: a filter may still say no)."""
        index = self._index()
        return bool(index.triggered(project_id, name) or index.exits(project_id, name)
                    or self._waited.may_match(project_id, name))

    def contact_changed(self, tx: Transaction, project_id: str, change: ContactChange,
                        now: int, *, depth: int = 0) -> list[IngestResult]:
        """Store and match, in `tx` (the unit that made the change), the contact events that
        `change` stands for and something listens to. `depth`: as for an emitted event (a
        step's change: its run's depth + 1); past MAX_DEPTH none are emitted, so a chain of
        runs changing contacts ends, like one emitting events (the change itself stands)."""
        if depth > MAX_DEPTH:
            return []
        found = contact_events(change, lambda name: self.listens(project_id, name))
        if not found:
            return []
        return self.store_events(tx, project_id, [
            IncomingEvent(name, change.contact_id, properties, depth=depth)
            for name, properties in found], now)
    def _count(self, events: int) -> None:
        self._metrics.events_ingested += events


def _repeat(first: Event) -> IngestResult:
    """The answer to a message id seen before: the first event's result."""
    return IngestResult(first.id, True, first.runs_started, first.runs_resumed, first.runs_exited)
