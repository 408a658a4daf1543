"""Run slots: at most `capacity` runs execute at once; more wait in line, with their contact
when it is already loaded. The scheduler and whoever creates runs hand them over with
`offer()`; the engine only executes what it is given."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable

from flowd.store.records import Run, RunStatus

Execute = Callable[[Run, "dict[str, Any] | None", bool], Awaitable[None]]


class RunSlots:
    def __init__(self, capacity: int, execute: Execute,
                 due_again: Callable[[list[str]], None] = lambda run_ids: None) -> None:
        self.capacity = capacity
        self._execute = execute
        self._due_again = due_again
        # Runs that became due again while held here (an event woke a run whose task was
        # still finishing its commit): due once released.
        self._again: set[str] = set()
        self._executing: dict[str, asyncio.Task[None]] = {}
        # Runs waiting for a slot: claimed runs, and runs this process created that are still
        # `pending` (their first commit claims them). `_waiting_ids` mirrors it for holds().
        self._ready: deque[tuple[Run, dict[str, Any] | None, bool]] = deque()
        self._waiting_ids: set[str] = set()
        self.free = asyncio.Event()   # set while a slot is free
        self.free.set()

    @property
    def executing(self) -> int:
        return len(self._executing)

    @property
    def backlog(self) -> int:
        """Runs waiting for a slot."""
        return len(self._ready)

    def holds(self, run_id: str) -> bool:
        """True while this process has the run: executing it, or holding it for a slot."""
        return run_id in self._executing or run_id in self._waiting_ids

    def again(self, run_id: str) -> None:
        """The run is due, but held here: make it due once this process lets it go."""
        self._again.add(run_id)

    def offer(self, run: Run, contact: dict[str, Any] | None = None, *,
              contact_loaded: bool = False) -> None:
        """Execute `run` now if a slot is free, else as soon as one frees. The run is either
        claimed (stored `running`) or was just created here and is still `pending`."""
        if self.holds(run.id):
            return
        if len(self._executing) < self.capacity:
            self._start(run, contact, contact_loaded)
        else:
            self._ready.append((run, contact, contact_loaded))
            self._waiting_ids.add(run.id)

    def _start(self, run: Run, contact: dict[str, Any] | None, contact_loaded: bool) -> None:
        if run.stored_status is None:
            run.stored_status = run.status
        run.status = RunStatus.RUNNING
        task = asyncio.create_task(self._execute(run, contact, contact_loaded),
                                   name=f"run {run.id}")
        self._executing[run.id] = task
        if len(self._executing) >= self.capacity:
            self.free.clear()
        task.add_done_callback(lambda _: self._finished(run.id))

    def _finished(self, run_id: str) -> None:
        self._executing.pop(run_id, None)
        if run_id in self._again:
            self._again.discard(run_id)
            self._due_again([run_id])
        while self._ready and len(self._executing) < self.capacity:
            run, contact, contact_loaded = self._ready.popleft()
            self._waiting_ids.discard(run.id)
            self._start(run, contact, contact_loaded)
        if len(self._executing) < self.capacity:
            self.free.set()

    async def drained(self) -> None:
        """Return once nothing executes and nothing waits for a slot (runs that wait for
        time or an event are not executing)."""
        while self._executing:
            await asyncio.gather(*self._executing.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel what is executing; those runs stay `running` on disk and are recovered at
        the next start like any run a crash left so."""
        self._ready.clear()
        self._waiting_ids.clear()
        self._again.clear()
        tasks = list(self._executing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.free.set()
