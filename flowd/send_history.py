"""The `SendHistory` effect over the store: the send times a frequency cap counts, read from
the message records (one range of an index, `messages_sends`), so a messaging step never
touches the store itself."""

from __future__ import annotations

from flowd.store import Store


class StoredSendHistory:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def recent_sends(self, project_id: str, contact_id: str, channel: str, after_ms: int,
                           limit: int, *, excluding: str | None = None) -> list[int]:
        return await self._store.read(lambda tx: tx.messages.recent_sends(
            project_id, contact_id, channel, after_ms, limit, excluding=excluding))
