"""The runs due soon, in time order: the scheduler's heap.

Runs due within a near horizon sit here, loaded from the store's index on `due_at`; anything
that becomes due inside the loaded horizon (a run that starts waiting on a short timer, an
event that ends a wait, a resumed run) is pushed in with `notify`, which also raises
`changed` when it is now the earliest, so the sleeping scheduler wakes at once. Everything
further out stays only on disk: a million week-long waits cost disk, not memory. No I/O here:
`pop_due(now)` is what the scheduler dispatches at `now`.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Iterable

from flowd.clock import Clock


class DueRuns:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[int, str]] = []
        self._queued: set[tuple[int, str]] = set()
        # Every run due at or before this time is in the heap, held by the slots, or done.
        self.loaded_until = -1
        self.changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def next_due(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def notify(self, run_id: str, due_at: int) -> None:
        """A run is due at `due_at`. Only needed inside the loaded horizon: later times are
        found on disk when the horizon gets there."""
        item = (due_at, run_id)
        if due_at <= self.loaded_until and item not in self._queued:
            heapq.heappush(self._heap, item)
            self._queued.add(item)
            if self._heap[0] == item:
                self.changed.set()

    def notify_now(self, run_ids: Iterable[str]) -> None:
        now = self._clock.now_ms()
        for run_id in run_ids:
            self.notify(run_id, now)

    def load(self, due: list[tuple[int, str]], loaded_until: int) -> None:
        """Runs read from the store, due up to `loaded_until`."""
        self.loaded_until = loaded_until
        for item in due:
            if item not in self._queued:
                heapq.heappush(self._heap, item)
                self._queued.add(item)

    def pop_due(self, now: int, limit: int) -> list[str]:
        """Up to `limit` ids of runs due by `now`, earliest first."""
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now and len(due) < limit:
            item = heapq.heappop(self._heap)
            self._queued.discard(item)
            due.append(item[1])
        return due
