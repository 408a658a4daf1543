"""Retention: deleting old ended runs, events and messages, and giving their pages back.

A pass deletes by age first ([retention] runs, events, messages), then, while the database
holds more than `max_db_size`, the oldest of each beyond their ages (logged). It works in
batches of at most BATCH rows, each one unit of work of its own: the group-commit writer is
never held for long, and between two batches the pass sleeps a little, so ingest and steps
queue behind at most one batch. Waiting, paused, pending and running runs are never deleted,
nor events an open wait_for_event may still match (received at or after the oldest open
wait's `since`: checked in the same unit as the delete, so no wait can slip in between). After
the deletes, the freed pages go back to the file system (incremental vacuum), a slice a unit.

A lookback can only reach events retention kept: a wait that starts after its events were
deleted does not see them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable

from flowd.clock import Clock
from flowd.config import RetentionConfig
from flowd.durations import parse_duration
from flowd.sizes import parse_size
from flowd.store import Store, Transaction

log = logging.getLogger("flowd.retention")

# Rows per unit. A run takes its trace rows, event wait and approvals with it and touches the
# runs table's indexes: 10 ended runs are well under a millisecond of the writer, so an event
# that arrives meanwhile waits little more than it would anyway. `python -m flowd bench purge`
# measured ingest p99 during a purge against without it: 200-run units 6.8×, 25-run units
# 4×, 10-run units 2.3× (at 2,700 runs/s, some ten million an hour: retention is not in a
# hurry, ingest is).
BATCH = 10
# Free pages handed back per unit: moving pages is writer time too.
VACUUM_PAGES = 50
# Between two batches the pass sleeps at least this long, and at least as long as the batch
# took: retention gets at most half of the writer, and what queued meanwhile (ingest, steps)
# commits first.
PAUSE_MS = 2
FIRST_PASS_DELAY_MS = 60_000


@dataclass
class PurgeReport:
    runs: int = 0
    events: int = 0
    messages: int = 0
    pages_freed: int = 0
    over_cap: bool = False       # the size cap deleted more than the ages did

    @property
    def rows(self) -> int:
        return self.runs + self.events + self.messages


@dataclass(frozen=True)
class RetentionSettings:
    runs_ms: int | None
    events_ms: int | None
    messages_ms: int | None
    max_db_bytes: int | None
    interval_ms: int

    @classmethod
    def of(cls, config: RetentionConfig) -> "RetentionSettings":
        def age(text: str) -> int | None:
            return parse_duration(text) if text else None
        return cls(runs_ms=age(config.runs), events_ms=age(config.events),
                   messages_ms=age(config.messages),
                   max_db_bytes=parse_size(config.max_db_size) if config.max_db_size else None,
                   interval_ms=int(config.interval_seconds * 1000))


def _delete_events(tx: Transaction, before: int, limit: int) -> int:
    oldest_wait = tx.retention.oldest_open_wait_since()
    if oldest_wait is not None:
        before = min(before, oldest_wait)
    return tx.retention.delete_events(before, limit)


class Retention:
    def __init__(self, store: Store, clock: Clock, settings: RetentionSettings, *,
                 batch: int = BATCH, pause_ms: int = PAUSE_MS) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._batch = batch
        self._pause_ms = pause_ms
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last: PurgeReport | None = None   # the last pass's, for /metrics and tests

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="flowd-retention")

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        next_at = self._clock.now_ms() + min(FIRST_PASS_DELAY_MS, self._settings.interval_ms)
        while not self._stopping:
            await self._clock.sleep_until(next_at)
            try:
                await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention pass failed; the next one tries again")
            next_at = self._clock.now_ms() + self._settings.interval_ms

    async def purge(self) -> PurgeReport:
        """One pass: by age, then by size, then the vacuum."""
        s = self._settings
        now = self._clock.now_ms()
        report = PurgeReport()
        if s.runs_ms is not None:
            report.runs += await self._drain(lambda tx, n: tx.retention.delete_ended_runs(
                now - s.runs_ms, n))
        if s.events_ms is not None:
            report.events += await self._drain(lambda tx, n: _delete_events(
                tx, now - s.events_ms, n))
        if s.messages_ms is not None:
            report.messages += await self._drain(lambda tx, n: tx.retention.delete_messages(
                now - s.messages_ms, n))
        if s.max_db_bytes is not None:
            await self._cap(s.max_db_bytes, report, now)
        report.pages_freed = await self._vacuum()
        if report.rows or report.pages_freed:
            log.info("retention deleted %d runs, %d events, %d messages; %d free pages went "
                     "back to the disk", report.runs, report.events, report.messages,
                     report.pages_freed)
        self.last = report
        return report

    async def _drain(self, delete: Callable[[Transaction, int], int]) -> int:
        """Delete batches until one finds nothing more (a short one may only have met rows it
        must keep at the head of its table)."""
        total = 0
        while not self._stopping:
            started = self._clock.now_ms()
            deleted = await self._store.write(delete, self._batch)
            total += deleted
            if deleted == 0:
                break
            await self._pause(started)
        return total

    async def _pause(self, batch_started: int) -> None:
        now = self._clock.now_ms()
        await self._clock.sleep_until(now + max(self._pause_ms, now - batch_started))

    async def _cap(self, max_bytes: int, report: PurgeReport, now: int) -> None:
        """Oldest first beyond their ages while the rows take more than `max_bytes`: a batch
        of each kind a round, so no kind is emptied while another still has old rows."""
        size = await self._store.read(lambda tx: tx.retention.size())
        if size.used_bytes <= max_bytes:
            return
        log.warning("the database holds %d bytes, more than [retention] max_db_size (%d): "
                    "deleting the oldest ended runs, events and messages beyond their ages",
                    size.used_bytes, max_bytes)
        report.over_cap = True
        deleted = {"runs": 0, "events": 0, "messages": 0}
        while not self._stopping and size.used_bytes > max_bytes:
            started = self._clock.now_ms()
            round_ = (await self._store.write(lambda tx, n: tx.retention.delete_ended_runs(None, n),
                                              self._batch),
                      await self._store.write(_delete_events, now, self._batch),
                      await self._store.write(lambda tx, n: tx.retention.delete_messages(None, n),
                                              self._batch))
            for kind, n in zip(deleted, round_):
                deleted[kind] += n
            if not any(round_):
                log.warning("nothing more may be deleted (waiting runs, the events they may "
                            "match, messages being sent, and contacts and workflows are kept): "
                            "the database still holds %d bytes", size.used_bytes)
                break
            await self._pause(started)
            size = await self._store.read(lambda tx: tx.retention.size())
        report.runs += deleted["runs"]
        report.events += deleted["events"]
        report.messages += deleted["messages"]
        log.warning("over max_db_size: deleted %d runs, %d events, %d messages beyond their "
                    "ages; the rows now take %d bytes", deleted["runs"], deleted["events"],
                    deleted["messages"], size.used_bytes)

    async def _vacuum(self) -> int:
        freed = 0
        while not self._stopping:
            started = self._clock.now_ms()
            n = await self._store.write(lambda tx, pages: tx.retention.free_pages(pages),
                                        VACUUM_PAGES)
            freed += n
            if n < VACUUM_PAGES:
                break
            await self._pause(started)
        return freed
