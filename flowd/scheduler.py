"""Time: which runs to execute next, and when.

`dispatch(now)` does everything due at `now` — refills `DueRuns` from the store as the horizon
advances, claims due runs in large batches (the engine ends the waits their timers ended) and
offers them to the run slots — and says when to look again; the loop sleeps on the clock until
then, or until `DueRuns` says something earlier arrived. Tests drive `dispatch` with a virtual
clock; the loop is a few lines around it (huey's `Scheduler.loop(now=None)`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from flowd.clock import Clock
from flowd.dueruns import DueRuns
from flowd.metrics import Metrics
from flowd.slots import RunSlots
from flowd.store import Store
from flowd.store.records import Run

log = logging.getLogger("flowd.scheduler")

CLAIM_BATCH = 2000     # due runs claimed per transaction
MAX_BACKLOG = 10_000   # runs waiting for a slot before the scheduler stops claiming

Claimed = list[tuple[Run, "dict[str, Any] | None", bool]]


class Scheduler:
    def __init__(self, store: Store, clock: Clock, due: DueRuns, slots: RunSlots,
                 claim: Callable[[list[str]], Awaitable[Claimed]], *,
                 horizon_ms: int = 60_000, refill_batch: int = 10_000,
                 metrics: Metrics | None = None) -> None:
        self._store = store
        self._clock = clock
        self._due = due
        self._slots = slots
        self._claim = claim
        self._horizon = horizon_ms
        self._batch = refill_batch
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._metrics = metrics or Metrics()

    async def start(self) -> None:
        now = self._clock.now_ms()
        recovered = await self._store.write(lambda tx: tx.runs.recover_running(now))
        if recovered:
            log.info("recovered %d runs that were executing when the server stopped", recovered)
        self._task = asyncio.create_task(self._loop(), name="flowd-scheduler")

    async def stop(self) -> None:
        # The flag as well as the cancel: Python 3.11's wait primitives can swallow a
        # cancellation that races with the wake-up they were waiting for.
        self._stopping = True
        self._due.changed.set()
        self._slots.free.set()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def start_new(self, runs: list[tuple[Run, dict[str, Any] | None]]) -> None:
        """Runs this process just created (still `pending`): the slots take them straight
        away, or hold them with their contact; their first commit claims them. Beyond the
        backlog bound they go through DueRuns and a claim like any due run."""
        for run, contact in runs:
            if self._slots.backlog < MAX_BACKLOG:
                # Ingest loads the contact when the workflow may read it (it always exists).
                self._slots.offer(run, contact, contact_loaded=contact is not None)
            else:
                self._due.notify(run.id, run.due_at or self._clock.now_ms())

    def notify_now(self, run_ids: list[str]) -> None:
        self._due.notify_now(run_ids)

    @property
    def queued(self) -> int:
        return len(self._due)

    async def dispatch(self, now: int | None = None) -> int:
        """Execute (offer to the slots) every run due at `now`; returns when to look again."""
        now = self._clock.now_ms() if now is None else now
        if now + self._horizon // 2 > self._due.loaded_until:
            await self._refill(now)
        while not self._stopping and self._is_due(now):
            if self._slots.backlog >= MAX_BACKLOG:
                await self._slots.free.wait()
                now = self._clock.now_ms()
                continue
            # Claim due runs in large batches: one transaction claims them, and ends the waits
            # of those whose timer came due; the slots execute them as they free.
            due = []
            earliest = self._due.next_due
            if earliest is not None:   # how late the most overdue of this batch is taken
                self._metrics.scheduler_lag.observe(max(self._clock.now_ms() - earliest, 0) / 1000)
            for run_id in self._due.pop_due(now, CLAIM_BATCH):
                if self._slots.holds(run_id):
                    self._slots.again(run_id)   # its task is finishing: due once it is done
                else:
                    due.append(run_id)
            for run, contact, loaded in await self._claim(due) if due else ():
                self._slots.offer(run, contact, contact_loaded=loaded)
            now = max(now, self._clock.now_ms())
        refill_at = self._due.loaded_until - self._horizon // 2
        next_due = self._due.next_due
        return refill_at if next_due is None else min(next_due, refill_at)

    def _is_due(self, now: int) -> bool:
        next_due = self._due.next_due
        return next_due is not None and next_due <= now

    async def _refill(self, now: int) -> None:
        until = now + self._horizon
        due = await self._store.read(lambda tx: tx.runs.due(until, self._batch))
        # A full batch means more are due than we load at once: only trust up to the last one.
        self._due.load(due, due[-1][0] if len(due) == self._batch else until)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                wake_at = await self.dispatch()
                if not self._stopping:
                    await self._sleep_until(wake_at)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed; retrying in a second")
                await self._clock.sleep_until(self._clock.now_ms() + 1000)

    async def _sleep_until(self, wake_at: int) -> None:
        """Sleep on the clock until `wake_at`, or until something due earlier arrives."""
        self._due.changed.clear()
        if self._is_due(wake_at - 1):   # something earlier arrived while dispatching
            return
        await self._clock.wait_until(self._due.changed, max(wake_at, self._clock.now_ms() + 1))
