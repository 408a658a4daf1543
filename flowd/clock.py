"""Time, passed in: every part of flowd that reads the time or sleeps until a time is given a
clock. `Clock` is the wall clock; `VirtualClock` is a clock whose time moves only when told to,
which lets tests drive the scheduler and the engine without waiting (and the dry run play a
week of waits in a moment).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time


class Clock:
    """Wall-clock time, in epoch milliseconds."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep_until(self, at_ms: int) -> None:
        """Return at `at_ms` (at once if that has passed). Cancel it to stop early."""
        delay = (at_ms - self.now_ms()) / 1000
        await asyncio.sleep(max(delay, 0))

    async def wait_until(self, event: asyncio.Event, at_ms: int) -> bool:
        """Wait for `event`, but not past `at_ms`; True when the event came first. (One timer
        around one wait: the scheduler does this between every two dispatches.)"""
        try:
            async with asyncio.timeout(max(at_ms - self.now_ms(), 0) / 1000):
                await event.wait()
            return True
        except TimeoutError:
            return event.is_set()


class VirtualClock(Clock):
    """A clock that moves only when told: `advance(ms)` / `set(ms)` wake every sleeper whose
    time has come, in time order."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()   # ties wake in the order they began to sleep

    def now_ms(self) -> int:
        return self._now

    async def sleep_until(self, at_ms: int) -> None:
        if at_ms <= self._now:
            await asyncio.sleep(0)   # a sleep is always a point where others may run
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (at_ms, next(self._order), future))
        await future

    async def wait_until(self, event: asyncio.Event, at_ms: int) -> bool:
        if event.is_set():
            return True
        sleeper = asyncio.ensure_future(self.sleep_until(at_ms))
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait((sleeper, waiter), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()
        return event.is_set()

    def advance(self, ms: int) -> None:
        self.set(self._now + ms)

    def set(self, now_ms: int) -> None:
        """Move to `now_ms` (never back), waking the sleepers whose time has come."""
        self._now = max(self._now, now_ms)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def next_wake_ms(self) -> int | None:
        """The earliest time someone sleeps until (None: nobody sleeps)."""
        while self._sleepers and self._sleepers[0][2].done():   # cancelled sleeps
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None
