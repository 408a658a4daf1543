"""Schedule triggers: starting a contact-less run of each active schedule-triggered workflow at
the times its cron expression names — or, when the trigger names an audience, one run per
member, the members read when it fires (flowd.audience_service, the same evaluator as the
messaging steps' check), each run following the workflow's reentry rule.

`tick(now)` does everything due at `now` — follows the registry's index (activation, edits,
pause), fires every workflow that is due, all in ONE unit of work — and says when to look
again; the loop sleeps on the clock until then, or until the registry changes.

What makes a fire happen at most once:
  * the run id derives from (workflow, version, scheduled instant), and the run is inserted
    only if that id is free;
  * `schedule_state.since` — the instant after which fires are counted — moves forward in the
    same unit as the fire, and a fire at or before it is not made again.
So neither a unit that runs twice nor a restart on the same file starts a fire twice. A fire
over an audience is one unit too, all its runs or none (each run's id also names its contact),
bounded by [audiences] max_members: a bigger audience, or an audience that no longer exists,
starts no run for that fire and is logged.

Counting: a workflow activated for the first time counts from its activation (no back-fill).
Fires missed while the server was down, or while the workflow was paused, collapse into ONE
fire for the latest missed instant; then the schedule goes on. An edit keeps the count; an
edit that changes the cron expression or time zone counts afresh from the edit. Deactivating
or archiving forgets the count (flowd.workflows), so activating again starts afresh.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

from flowd.audience_service import AudienceService, TooManyMembers
from flowd.clock import Clock
from flowd.definitions import ScheduleRule
from flowd.ids import derived_id
from flowd.runs import blocking_run, new_run
from flowd.store import Store, Transaction
from flowd.store.records import AudienceTooCostly, Run, RunStatus
from flowd.timeutil import format_ms
from flowd.triggers import IndexedWorkflow, TriggerIndex

log = logging.getLogger("flowd.schedules")

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Never sleep longer than this: the clock's sleeps are monotonic, fires are wall-clock times,
# and the wall clock may be stepped meanwhile (NTP).
MAX_SLEEP_MS = 60_000
# How far back to look for the latest missed fire before stepping through fires one by one.
_LOOKBACK_MS = (HOUR_MS, DAY_MS, 32 * DAY_MS, 400 * DAY_MS)


@dataclass
class _Entry:
    workflow: IndexedWorkflow
    rule: ScheduleRule
    since: int               # fires are counted after this instant
    next_at: int | None      # None: it never fires again

    def advance(self, since: int) -> None:
        self.since = since
        self.next_at = self.rule.next_after(since)


def _schedule_of(workflow: IndexedWorkflow) -> ScheduleRule | None:
    return None if workflow.paused else workflow.compiled.schedule


class Schedules:
    def __init__(self, store: Store, clock: Clock, index: Callable[[], TriggerIndex],
                 on_started: Callable[[list[tuple[Run, dict[str, Any] | None]]], None],
                 audiences: AudienceService | None = None) -> None:
        self._store = store
        self._audiences = audiences
        self._clock = clock
        self._index = index
        self._on_started = on_started
        self._entries: dict[str, _Entry] = {}
        self._seen: TriggerIndex | None = None   # the index the entries follow
        self._changed = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """The registry changed (a registry listener)."""
        self._changed.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="flowd-schedules")

    async def stop(self) -> None:
        self._stopping = True
        self._changed.set()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def next_due(self) -> int | None:
        return min((e.next_at for e in self._entries.values() if e.next_at is not None),
                   default=None)

    async def tick(self, now: int | None = None) -> int | None:
        """Fire every workflow due at `now`; returns when the next one is due (None: none)."""
        now = self._clock.now_ms() if now is None else now
        if self._index() is not self._seen:
            await self._follow_index(now)
        due = [(e, _latest(e, now)) for e in self._entries.values()
               if e.next_at is not None and e.next_at <= now]
        if due:
            await self._store.write(self._fire, due, now)
            for entry, at in due:
                entry.advance(at)
        return self.next_due

    # -- following the registry ------------------------------------------------------------

    async def _follow_index(self, now: int) -> None:
        index = self._seen = self._index()
        wanted = {w.workflow_id: (w, rule) for w in index.by_id.values()
                  if (rule := _schedule_of(w)) is not None}
        for workflow_id in [w for w in self._entries if w not in wanted]:
            del self._entries[workflow_id]
        new, changed = [], {}
        for workflow_id, (workflow, rule) in wanted.items():
            entry = self._entries.get(workflow_id)
            if entry is None:
                new.append(workflow_id)
                continue
            entry.workflow = workflow
            if entry.rule.key != rule.key:
                entry.rule = rule
                entry.advance(now)
                changed[workflow_id] = now
        stored = await self._store.read(lambda tx: tx.schedules.since(new)) if new else {}
        fresh = {workflow_id: now for workflow_id in new if workflow_id not in stored}
        if fresh or changed:
            def unit(tx: Transaction) -> None:
                tx.schedules.begin(fresh, replace=False)
                tx.schedules.begin(changed, replace=True)
            await self._store.write(unit)
        for workflow_id in new:
            workflow, rule = wanted[workflow_id]
            entry = self._entries[workflow_id] = _Entry(workflow, rule, 0, None)
            entry.advance(stored.get(workflow_id, now))

    # -- firing ----------------------------------------------------------------------------

    def _fire(self, tx: Transaction, due: list[tuple[_Entry, int]], now: int) -> list[Run]:
        """One unit for every workflow due: a run per fire, and the count moved on."""
        index = self._index()   # as of now: a workflow paused since the wake does not fire
        runs = []
        for entry, at in due:
            workflow = index.by_id.get(entry.workflow.workflow_id)
            if workflow is None or _schedule_of(workflow) is None:
                continue
            if not tx.schedules.fired(workflow.workflow_id, at):
                continue   # this fire (or a later one) was made already
            rule = _schedule_of(workflow)
            assert rule is not None
            if rule.audience is None:
                runs.append(_fire_run(workflow, None, at, now))
            else:
                runs += self._member_runs(tx, workflow, rule.audience, at, now)
        inserted = tx.runs.insert_new(runs)
        started: list[tuple[Run, dict[str, Any] | None]] = [
            (run, None) for run in inserted if run.status is RunStatus.PENDING]
        if started:
            tx.after_commit.append(lambda: self._on_started(started))
        return inserted

    def _member_runs(self, tx: Transaction, workflow: IndexedWorkflow, ref: str, at: int,
                     now: int) -> list[Run]:
        """One run per member of the audience at `now`, for the contacts its reentry rule
        lets in."""
        audience = tx.audiences.get(workflow.project_id, ref)
        if audience is None or self._audiences is None:
            log.error("workflow %s fired at %s for audience %r, which does not exist: no run "
                      "started", workflow.workflow_id, format_ms(at), ref)
            return []
        try:
            members = self._audiences.member_ids_in(tx, audience, now)
        except (TooManyMembers, AudienceTooCostly) as error:
            log.error("workflow %s fired at %s for audience %r: %s; no run started",
                      workflow.workflow_id, format_ms(at), audience.name, error)
            return []
        return [_fire_run(workflow, contact_id, at, now) for contact_id in members
                if blocking_run(tx, workflow, contact_id) is None]

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                self._changed.clear()   # before the tick: a change during it wakes the next
                wake_at = await self.tick()
                now = self._clock.now_ms()
                until = now + MAX_SLEEP_MS if wake_at is None else min(wake_at,
                                                                       now + MAX_SLEEP_MS)
                if not self._stopping:
                    await self._clock.wait_until(self._changed, until)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("schedule tick failed; retrying in a second")
                await self._clock.sleep_until(self._clock.now_ms() + 1000)


def _fire_run(workflow: IndexedWorkflow, contact_id: str | None, at: int, now: int) -> Run:
    """A fire's run: its id derives from the workflow, version, instant (and contact), so the
    same fire never starts it twice."""
    scheduled = format_ms(at)
    event = {"id": None, "name": "schedule.fired", "contact_id": contact_id,
             "properties": {"scheduled_at": scheduled}, "timestamp": scheduled,
             "received_at": format_ms(now), "message_id": None}
    key = f"{workflow.workflow_id}:{workflow.version}:{at}"
    run_id = derived_id("run", at, key if contact_id is None else f"{key}:{contact_id}")
    return new_run(workflow, contact_id, {"type": "schedule", "scheduled_at": scheduled,
                                          "event": event}, now, run_id=run_id)


def _latest(entry: _Entry, now: int) -> int:
    """The latest fire instant at or before `now` (its next_at is): every earlier one missed
    collapses into it."""
    at = entry.next_at
    assert at is not None
    rule = entry.rule
    # Jump close to `now` first, so a long downtime is not walked fire by fire.
    for window in _LOOKBACK_MS:
        if now - window <= at:
            break
        probe = rule.next_after(now - window)
        if probe is not None and probe <= now:
            at = probe
            break
    while (following := rule.next_after(at)) is not None and following <= now:
        at = following
    return at
