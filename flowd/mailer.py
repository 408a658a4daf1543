"""Email delivery as steps and the API ask for it: suppression, the message record, links
(unsubscribe, tracking), the provider, bounces.

Every message goes the same way, and never twice once its record says it was sent:

1. One unit decides and records. A message whose record already exists (a step re-run after a
   crash) is answered from it — or, left `sending` by a crash or `failed`, sent again exactly
   as recorded, with the same Message-ID. Otherwise: no address, an unsubscribed contact or an address that
   bounced before makes it `suppressed`; else its final content (links rewritten, headers set)
   is recorded as `sending`.
2. The provider sends it (outside any transaction).
3. One unit records the outcome: `sent` with the provider's id; `bounced` for a permanent
   refusal (the address is remembered, and `email.bounced` ingested for the contact); a
   temporary failure leaves it `sending` and fails the attempt, so the step's retry policy (or,
   for a transactional message, the mailer's next round) sends it again; after the last
   attempt it says `failed`. A `failed` message is sent again when its step is (a run retried).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import re
import secrets
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Callable

from flowd.alerts import AlertRecorder
from flowd.clock import Clock
from flowd.config import EmailConfig
from flowd.effects.base import (
    Attachment,
    EffectFailed,
    MailProvider,
    OutgoingEmail,
    SendResult,
)
from flowd.effects.messages import Delivery, EmailRequest
from flowd.ingest import IncomingEvent, Ingest
from flowd.links import (
    add_open_pixel,
    click_token,
    open_token,
    token_hash,
    track_links,
    unsubscribe_token,
)
from flowd.message_templates import CompiledContent, ContentCache
from flowd.store import Store, Transaction
from flowd.store.records import Message, MessageStatus
from flowd.validation import EMAIL_PATTERN

log = logging.getLogger("flowd.mailer")


UNSENT_BATCH = 100
# Transactional messages that a failure left unsent are tried again every minute, for an hour
# (a password reset that arrives later than that is no use), and sent after a crash.
RETRY_INTERVAL_MS = 60_000
GIVE_UP_MS = 3_600_000
_ADDRESS = re.compile(EMAIL_PATTERN)


@dataclass(frozen=True)
class MailSettings:
    sender: str
    reply_to: str | None
    track_opens: bool
    track_clicks: bool

    @classmethod
    def of(cls, email: EmailConfig) -> MailSettings:
        return cls(sender=email.sender, reply_to=email.reply_to or None,
                   track_opens=email.track_opens, track_clicks=email.track_clicks)


class Mailer:
    def __init__(self, store: Store, clock: Clock, provider: MailProvider, ingest: Ingest,
                 settings: MailSettings, public_url: Callable[[], str],
                 alerts: AlertRecorder | None = None) -> None:
        self._store = store
        self._clock = clock
        self._provider = provider
        self._ingest = ingest
        self._settings = settings
        self._public_url = public_url
        self._alerts = alerts
        self._templates = ContentCache()
        self._key = b""
        self._background: set[asyncio.Task[None]] = set()
        self._in_flight: set[str] = set()     # transactional messages being sent right now
        self.retry_interval_ms = RETRY_INTERVAL_MS

    @property
    def links_key(self) -> bytes:
        return self._key

    async def start(self, *, retry_unsent: bool = True) -> None:
        """`retry_unsent`: keep trying messages a crash or a failure left unsent (a test run,
        which lives for one call, does without)."""
        now = self._clock.now_ms()
        self._key = await self._store.write(lambda tx: tx.secrets.server_key(
            "links", now, lambda: secrets.token_bytes(32)))
        await self._provider.start()
        if retry_unsent:
            self._in_background(self.retry_unsent())

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._provider.close()

    # -- what steps use (the Email protocol) ---------------------------------------------

    async def template(self, project_id: str, ref: str) -> CompiledContent | None:
        template = await self._store.read(lambda tx: tx.templates.get(project_id, ref))
        if template is None or template.channel != "email":
            return None
        return self._templates.get((template.id, template.updated_at), template.channel,
                                   template.content)

    async def send(self, request: EmailRequest) -> Delivery:
        """Deliver now (a step waits for the outcome)."""
        message, delivery = await self._store.write(self._prepare, request,
                                                    self._clock.now_ms())
        if delivery is not None:
            return delivery
        return await self._deliver(message, final=request.final_attempt)

    # -- transactional email ---------------------------------------------------------------

    async def accept(self, request: EmailRequest) -> Delivery:
        """Record now, deliver in the background: the answer says it is on disk."""
        message, delivery = await self._store.write(self._prepare, request,
                                                    self._clock.now_ms())
        if delivery is not None:
            return delivery
        self._in_flight.add(message.id)
        self._in_background(self._try_once(message))
        return _delivery(message)

    async def retry_unsent(self) -> None:
        """Every RETRY_INTERVAL_MS, one more attempt at each transactional message still
        `sending` (a crash came before its outcome, or a failure a retry may cure), oldest
        first; one that has been trying for GIVE_UP_MS gets a last attempt, then says
        `failed`."""
        while True:
            round_started = self._clock.now_ms()
            try:
                await self._retry_round()
            except Exception:
                # The database was busy or full, say: the next round tries again; a loop that
                # died here would leave every unsent message unsent until a restart.
                log.exception("a round of retrying unsent messages failed")
            await self._clock.sleep_until(round_started + self.retry_interval_ms)

    async def _retry_round(self) -> None:
        after = 0
        while True:
            batch, after = await self._store.read(
                lambda tx: tx.messages.unsent(after, UNSENT_BATCH))
            due = [m for m in batch if m.id not in self._in_flight]
            self._in_flight.update(m.id for m in due)
            await asyncio.gather(*(self._try_once(m) for m in due))
            if len(batch) < UNSENT_BATCH:
                return

    async def _try_once(self, message: Message) -> None:
        """One attempt at a transactional message its caller marked in flight."""
        try:
            final = self._clock.now_ms() - message.created_at >= GIVE_UP_MS
            await self._deliver(message, final=final)
        except EffectFailed as failure:
            log.warning("message %s not sent%s: %s", message.id,
                        "" if final or not failure.retryable else " yet", failure.message)
        finally:
            self._in_flight.discard(message.id)

    def _in_background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- 1. decide and record ----------------------------------------------------------------

    def _prepare(self, tx: Transaction, request: EmailRequest, now: int
                 ) -> tuple[Message, Delivery | None]:
        existing = tx.messages.get(request.project_id, request.message_id)
        if existing is not None:
            if existing.status in (MessageStatus.SENDING, MessageStatus.FAILED):
                # Not sent (a crash came before its outcome, or it failed): send it again.
                return existing, None
            return existing, _delivery(existing)
        reason, bounced = self._screen(tx, request)
        message = self._message(tx, request, now, reason, bounced)
        tx.messages.insert(message)
        return message, (_delivery(message) if reason else None)

    def _screen(self, tx: Transaction, request: EmailRequest) -> tuple[str | None, dict[str, str]]:
        """Why the message must not go out at all (or None), and the addresses that bounced
        before (left out; when every `to` did, that is the reason)."""
        recipients = [*request.to, *request.cc, *request.bcc]
        if not request.to or not all(recipients):
            return "no_address", {}
        if not all(_ADDRESS.fullmatch(_address(r)) for r in recipients):
            return "invalid_address", {}
        if request.respect_unsubscribe and request.contact_id is not None:
            contact = tx.contacts.get(request.project_id, request.contact_id)
            if contact is not None and not contact.subscribed.get("email", True):
                return "unsubscribed", {}
        bounced = {r: f"bounced before: {why}" for r in recipients
                   if (why := tx.messages.bounced(request.project_id, _address(r)))}
        if all(r in bounced for r in request.to):
            return "bounced", bounced
        return None, bounced

    def _message(self, tx: Transaction, request: EmailRequest, now: int,
                 reason: str | None, bounced: dict[str, str]) -> Message:
        html, links = request.html, []
        headers: list[list[str]] = []
        if reason is None:
            base = self._public_url().rstrip("/")
            html, links = self._track(request.message_id, request.html, base)
            if request.contact_id is not None:
                token = unsubscribe_token(self._key, request.project_id, request.contact_id,
                                          "email")
                tx.messages.remember_unsubscribe_token(token_hash(token), request.project_id,
                                                       request.contact_id, "email")
                headers = [["List-Unsubscribe", f"<{base}/v1/unsubscribe/{token}>"],
                           ["List-Unsubscribe-Post", "List-Unsubscribe=One-Click"]]
        sender = request.sender or self._settings.sender
        # Providers take bare addresses (the envelope's, and the keys of what they refuse).
        to = [_address(r) for r in request.to if reason is not None or r not in bounced]
        content = {
            "sender": sender, "reply_to": request.reply_to or self._settings.reply_to,
            "cc": [_address(r) for r in request.cc if r not in bounced],
            "bcc": [_address(r) for r in request.bcc if r not in bounced], "rejected": bounced,
            "html": html, "text": request.text, "headers": headers, "links": links,
            "message_id_header": f"<{request.message_id}@{_domain(sender)}>",
            "attachments": [{"filename": a.filename, "content_type": a.content_type,
                             "content": base64.b64encode(a.content).decode()}
                            for a in request.attachments]}
        return Message(
            id=request.message_id, project_id=request.project_id, channel="email",
            status=MessageStatus.SUPPRESSED if reason else MessageStatus.SENDING,
            recipients=to, subject=request.subject,
            body=request.text if request.text is not None else request.html,
            content=content, created_at=now, contact_id=request.contact_id,
            run_id=request.run_id, step_id=request.step_id, workflow_id=request.workflow_id,
            error={"code": reason, "message": _REASONS[reason]} if reason else None)

    def _track(self, message_id: str, html: str | None, base: str
               ) -> tuple[str | None, list[str]]:
        if html is None:
            return None, []
        links: list[str] = []
        if self._settings.track_clicks:
            html, links = track_links(html, lambda index: (
                f"{base}/v1/t/c/{click_token(self._key, message_id, index)}"))
        if self._settings.track_opens:
            html = add_open_pixel(html, f"{base}/v1/t/o/{open_token(self._key, message_id)}")
        return html, links

    # -- 2. send, 3. record the outcome -----------------------------------------------------

    async def _deliver(self, message: Message, *, final: bool) -> Delivery:
        """`final`: no retry follows a failure, so the record then says `failed` (else it
        stays `sending`, with the failure as its error)."""
        try:
            result = await self._provider.send(_outgoing(message))
        except EffectFailed as failure:
            message.status = (MessageStatus.FAILED if final or not failure.retryable
                              else MessageStatus.SENDING)
            message.error = {"code": failure.code, "message": failure.message}
            await self._store.write(lambda tx: tx.messages.finish(message))
            raise
        return await self._store.write(self._record, message, result, self._clock.now_ms())

    def _record(self, tx: Transaction, message: Message, result: SendResult, now: int
                ) -> Delivery:
        refused = "; ".join(f"{address}: {why}" for address, why in result.rejected.items())
        if result.accepted:
            message.status, message.sent_at = MessageStatus.SENT, now
            message.provider_message_id = result.provider_message_id
            message.error = None                 # an earlier attempt's
            if result.rejected:
                message.error = {"code": "partly_bounced", "message": refused}
        else:
            message.status = MessageStatus.BOUNCED
            message.error = {"code": "bounced", "message": refused}
        for address, reason in result.rejected.items():
            self._bounce(tx, message, address, reason, now)
        tx.messages.finish(message)
        return Delivery(message.id, message.status, tuple(message.recipients),
                        reason=None if result.accepted else "bounced",
                        provider_message_id=message.provider_message_id,
                        accepted=tuple(result.accepted),
                        rejected={**message.content.get("rejected", {}), **result.rejected})

    def _bounce(self, tx: Transaction, message: Message, address: str, reason: str,
                now: int) -> None:
        tx.messages.bounce(message.project_id, _address(address), reason, message.id, now)
        self._ingest.store_events(tx, message.project_id, [IncomingEvent(
            "email.bounced", message.contact_id, {
                "message_id": message.id, "address": address, "reason": reason,
                "run_id": message.run_id, "workflow_id": message.workflow_id,
                "step_id": message.step_id})], now)
        if self._alerts is not None:
            self._alerts.message_bounced(tx, message, address, reason, now)


_REASONS = {
    "no_address": "the message has no address to go to",
    "invalid_address": "an address is not an email address",
    "unsubscribed": "the contact unsubscribed from email",
    "bounced": "the address bounced before",
}


def _delivery(message: Message) -> Delivery:
    """What a record says of its message: sent (or being sent) to whom, refused for whom."""
    content = message.content
    error = message.error or {}
    accepted: tuple[str, ...] = ()
    if message.status in (MessageStatus.SENDING, MessageStatus.SENT):
        accepted = (*message.recipients, *content.get("cc", ()), *content.get("bcc", ()))
    return Delivery(message.id, message.status, tuple(message.recipients),
                    reason=error.get("code"), provider_message_id=message.provider_message_id,
                    accepted=accepted, rejected=dict(content.get("rejected", {})))


def _address(recipient: str) -> str:
    """The bare address of `Ada <ada@example.com>` (or of a bare address)."""
    if "<" not in recipient and _ADDRESS.fullmatch(recipient):   # the usual case: 1/20 the cost
        return recipient
    return parseaddr(recipient)[1] or recipient


@functools.lru_cache(maxsize=64)
def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "flowd.invalid"


def _outgoing(message: Message) -> OutgoingEmail:
    content = message.content
    return OutgoingEmail(
        message_id=content["message_id_header"], sender=content["sender"],
        to=tuple(message.recipients), subject=message.subject or "", text=content["text"],
        html=content["html"], cc=tuple(content["cc"]), bcc=tuple(content["bcc"]),
        reply_to=content["reply_to"],
        headers=tuple((name, value) for name, value in content["headers"]),
        attachments=tuple(Attachment(a["filename"], base64.b64decode(a["content"]),
                                     a["content_type"]) for a in content["attachments"]))
