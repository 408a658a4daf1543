"""Sending alert deliveries: a background loop takes the outbox's due rows, POSTs each body
signed per Standard Webhooks with its subscription's secret (webhook-id = the delivery's id, so
every attempt carries the same one), and records the outcome.

- 2xx: `delivered`, recorded before the delivery counts as sent; a delivered row is never
  taken again. A crash between the answer and that record sends it once more, with the same
  webhook-id, for the receiver to de-duplicate (at least once, like webhook steps).
- anything else (a status, a timeout, a refused connection): tried again after
  FIRST_RETRY_MS, doubling, at most MAX_RETRY_MS apart; once GIVE_UP_MS have passed since it was
  recorded, the failed attempt is the last and the row says `failed`. A destination the
  private-network guard refuses (or a URL that cannot be called) fails at once: it would be
  refused again.
- after a crash, pending rows are simply due: the loop takes them at start.

The HTTP client is the one webhook steps use, so `[http] allow_private_networks` and
`allowed_networks` decide for alerts too.
"""

from __future__ import annotations

import asyncio
import logging

from flowd.clock import Clock
from flowd.effects.base import EffectFailed
from flowd.effects.http import HttpClient
from flowd.effects.signing import sign
from flowd.store import Store
from flowd.store.records import DeliveryStatus, DueDelivery

log = logging.getLogger("flowd.alerts")

BATCH = 50
FIRST_RETRY_MS = 10_000
MAX_RETRY_MS = 3_600_000
GIVE_UP_MS = 24 * 3_600_000
# Even with nothing due, look again this often: a row made due by another process (the command
# line, say) is not missed for long.
IDLE_MS = 60_000
_FINAL_CODES = {"destination_not_allowed", "bad_url", "bad_request"}


class AlertDeliverer:
    def __init__(self, store: Store, clock: Clock, http: HttpClient, *,
                 timeout_seconds: float) -> None:
        self._store = store
        self._clock = clock
        self._http = http
        self._timeout = timeout_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.first_retry_ms = FIRST_RETRY_MS
        self.give_up_ms = GIVE_UP_MS

    def wake(self) -> None:
        """New deliveries are durable: send them now (on the event loop)."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_due = await self._round()
            except Exception:
                # The database was busy, say: the next round tries again; a loop that died
                # here would leave every alert unsent until a restart.
                log.exception("a round of alert deliveries failed")
                next_due = None
            now = self._clock.now_ms()
            until = now + IDLE_MS if next_due is None else min(next_due, now + IDLE_MS)
            await self._clock.wait_until(self._wake, until)

    async def _round(self) -> int | None:
        """Send everything due now; when the next pending delivery is due."""
        while True:
            now = self._clock.now_ms()
            due = await self._store.read(lambda tx: tx.alerts.due(now, BATCH))
            await asyncio.gather(*(self._attempt(d) for d in due))
            if len(due) < BATCH:
                return await self._store.read(lambda tx: tx.alerts.next_due())

    async def _attempt(self, due: DueDelivery) -> None:
        delivery = due.delivery
        body = delivery.body.encode()
        timestamp = self._clock.now_ms() // 1000
        headers = {"Content-Type": "application/json", "webhook-id": delivery.id,
                   "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(due.secret, delivery.id, timestamp, body)}
        final = False
        try:
            response = await self._http.request("POST", due.url, headers=headers, body=body,
                                                timeout=self._timeout)
        except EffectFailed as failure:
            code, error = None, f"{failure.code}: {failure.message}"
            final = failure.code in _FINAL_CODES or not failure.retryable
        else:
            code = response.status
            error = None if 200 <= code < 300 else f"HTTP {code}"
        now = self._clock.now_ms()
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error = code, error
        if error is None:
            delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
            delivery.next_attempt_at = None
        else:
            delay = min(self.first_retry_ms * 2 ** (delivery.attempts - 1), MAX_RETRY_MS)
            if final or now + delay - delivery.created_at > self.give_up_ms:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
                log.warning("alert delivery %s to %s failed for good: %s", delivery.id,
                            due.url, error)
            else:
                delivery.next_attempt_at = now + delay
        await self._store.write(lambda tx: tx.alerts.record_attempt(delivery))
