"""The `SendHistory` effect over the store: the send times a frequency cap counts, read from
the message records (one range of an index, `messages_sends`), so a messaging step never
touches the store itself; and the turn-taking that makes "count, then record" one step per
contact and channel (one process holds the database, so an in-process lock is enough)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator

from flowd.store import Store


class StoredSendHistory:
    def __init__(self, store: Store) -> None:
        self._store = store
        # One lock per (project, contact, channel) with a send under way; an entry goes when
        # its last holder leaves, so the table is as big as the sends in flight.
        self._turns: dict[tuple[str, str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def one_at_a_time(self, project_id: str, contact_id: str,
                            channel: str) -> AsyncIterator[None]:
        key = (project_id, contact_id, channel)
        lock, users = self._turns.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._turns[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[key]
            if users == 1:
                del self._turns[key]
            else:
                self._turns[key] = (lock, users - 1)

    async def recent_sends(self, project_id: str, contact_id: str, channel: str, after_ms: int,
                           limit: int, *, excluding: str | None = None) -> list[int]:
        return await self._store.read(lambda tx: tx.messages.recent_sends(
            project_id, contact_id, channel, after_ms, limit, excluding=excluding))
