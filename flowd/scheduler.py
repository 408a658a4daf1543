"""Time: which run to execute next, and when.

Runs due within a near horizon (a minute) sit in a heap, loaded from the index on `runs.due_at`;
everything further out stays only on disk, so a million week-long waits cost disk, not memory.
The loop sleeps until the earliest due time, hands due runs to the engine while it has capacity,
and refills from the database as the horizon advances. Anything that becomes due sooner than the
heap knows (a new run, an event that ends a wait, a short timer) is pushed in with `notify`,
which wakes the loop at once: no polling latency.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from typing import Any

from flowd.engine import Engine
from flowd.store import Database
from flowd.store import runs as run_store
from flowd.store.runs import Run
from flowd.timeutil import Clock

log = logging.getLogger("flowd.scheduler")

_CLAIM_BATCH = 2000     # due runs claimed per transaction
_MAX_BACKLOG = 10_000   # claimed runs waiting for a slot before the scheduler stops claiming


class Scheduler:
    def __init__(self, db: Database, clock: Clock, engine: Engine, *, horizon_ms: int = 60_000,
                 refill_batch: int = 10_000) -> None:
        self._db = db
        self._clock = clock
        self._engine = engine
        self._horizon = horizon_ms
        self._batch = refill_batch
        self._heap: list[tuple[int, str]] = []
        self._queued: set[tuple[int, str]] = set()
        # Every run due at or before this time is in the heap, executing, or already done.
        self._loaded_until = -1
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        recovered = await self._db.write(run_store.recover_running, self._clock.now_ms())
        if recovered:
            log.info("recovered %d runs that were executing when the server stopped", recovered)
        self._task = asyncio.create_task(self._loop(), name="flowd-scheduler")

    async def stop(self) -> None:
        # The flag as well as the cancel: Python 3.11's wait primitives can swallow a
        # cancellation that races with the wake-up they were waiting for.
        self._stopping = True
        self._wakeup.set()
        self._engine.capacity.set()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def notify(self, run_id: str, due_at: int) -> None:
        """A run is due at `due_at`. Only needed when that is inside the loaded horizon: later
        times are found on disk when the horizon gets there."""
        if due_at <= self._loaded_until and (due_at, run_id) not in self._queued:
            heapq.heappush(self._heap, (due_at, run_id))
            self._queued.add((due_at, run_id))
            if self._heap[0] == (due_at, run_id):
                self._wakeup.set()

    def start_new(self, runs: list[tuple[Run, dict[str, Any] | None]]) -> None:
        """Runs this process just created (still `pending`): the engine takes them straight
        away, or queues them for a slot with their contact; their first commit claims them.
        Beyond the backlog bound they go through the heap and a claim like any due run."""
        for run, contact in runs:
            if self._engine.backlog < _MAX_BACKLOG:
                # Ingest loads the contact when the workflow may read it (it always exists).
                self._engine.enqueue(run, contact, contact_loaded=contact is not None)
            else:
                self.notify(run.id, run.due_at or self._clock.now_ms())

    def notify_now(self, run_ids: list[str]) -> None:
        now = self._clock.now_ms()
        for run_id in run_ids:
            self.notify(run_id, now)

    @property
    def queued(self) -> int:
        return len(self._heap)

    async def _refill(self, now: int) -> None:
        until = now + self._horizon
        due = await self._db.read(run_store.due_runs, until, self._batch)
        # A full batch means more are due than we load at once: only trust up to the last one.
        self._loaded_until = due[-1][0] if len(due) == self._batch else until
        for item in due:
            if item not in self._queued and not self._engine.is_executing(item[1]):
                heapq.heappush(self._heap, item)
                self._queued.add(item)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed; retrying in a second")
                await asyncio.sleep(1)

    async def _tick(self) -> None:
        now = self._clock.now_ms()
        if now + self._horizon // 2 > self._loaded_until:
            await self._refill(now)
        while self._heap and self._heap[0][0] <= now and not self._stopping:
            if self._engine.backlog >= _MAX_BACKLOG:
                await self._engine.capacity.wait()
                now = self._clock.now_ms()
                continue
            # Claim due runs in large batches: one transaction claims them, and ends the waits
            # of those whose timer came due; the engine executes them as slots free.
            due: list[str] = []
            while self._heap and self._heap[0][0] <= now and len(due) < _CLAIM_BATCH:
                item = heapq.heappop(self._heap)
                self._queued.discard(item)
                if not self._engine.is_executing(item[1]):
                    due.append(item[1])
            for run, contact, loaded in await self._engine.claim(due) if due else ():
                self._engine.enqueue(run, contact, contact_loaded=loaded)
            now = self._clock.now_ms()
        next_due = self._heap[0][0] if self._heap else None
        refill_at = self._loaded_until - self._horizon // 2
        wake_at = refill_at if next_due is None else min(next_due, refill_at)
        delay = max(0, wake_at - self._clock.now_ms()) / 1000
        if self._stopping:
            return
        self._wakeup.clear()
        try:
            async with asyncio.timeout(max(delay, 0.001)):
                await self._wakeup.wait()
        except TimeoutError:
            pass
