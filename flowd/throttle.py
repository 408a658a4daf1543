"""Refusing a client that keeps presenting tokens that do not exist: someone guessing links.

Only failures count (a client that opens its own valid links is never held back), per client
address, over a fixed window; a held-back client hears 429 with `Retry-After` until the window
that saw too many failures is over. The table of clients is bounded: the oldest entry goes
first when it is full, so a flood of addresses cannot grow memory.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from flowd.clock import Clock
from flowd.errors import RateLimited

MAX_CLIENTS = 10_000


class FailureThrottle:
    def __init__(self, clock: Clock, *, limit: int, window_ms: int,
                 message: str = "too many unknown links from this client; try again later"
                 ) -> None:
        self._clock = clock
        self._message = message
        self._limit = limit
        self._window_ms = window_ms
        self._failures: OrderedDict[str, tuple[int, int]] = OrderedDict()  # client -> (start, n)

    def check(self, client: str) -> None:
        """Raise 429 if `client` failed `limit` times in its current window."""
        entry = self._failures.get(client)
        if entry is None:
            return
        start, count = entry
        now = self._clock.now_ms()
        if now - start >= self._window_ms:
            del self._failures[client]
        elif count >= self._limit:
            retry_after = max(1, math.ceil((start + self._window_ms - now) / 1000))
            raise RateLimited(self._message, retry_after)

    def failed(self, client: str) -> None:
        now = self._clock.now_ms()
        start, count = self._failures.pop(client, (now, 0))
        if now - start >= self._window_ms:
            start, count = now, 0
        self._failures[client] = (start, count + 1)   # re-inserted: the newest entry
        while len(self._failures) > MAX_CLIENTS:
            self._failures.popitem(last=False)
