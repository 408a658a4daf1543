"""SMS, push and Slack delivery as steps ask for it (the `Channel` protocol of
flowd.effects.base): the same three moves as email's (flowd.mailer), around any
`MessageProvider`, with what differs per channel in flowd.channel_rules.

Every message goes the same way, and never twice once its record says it was sent:

1. One unit decides and records, per recipient (push: per token). A message whose record
   already exists (a step re-run after a crash, or retried) is answered from it — or, left
   `sending` by a crash or `failed`, sent again exactly as recorded. Otherwise the channel's
   rules may suppress it (no address, unsubscribed, a number known to be bad); else it is
   recorded as `sending`.
2. The provider sends it, outside any transaction (a push notification's tokens at once).
3. One unit records each outcome: `sent` with the provider's id; a recipient refused for good
   is `failed`, with what that means for the contact (a bad number remembered, a dead token
   removed); an opted-out recipient is `suppressed` and the contact unsubscribed; a failure a
   retry may cure leaves the record `sending` and is raised (so the step's retry policy sends
   it again) unless this was the last attempt, which says `failed`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flowd.channel_rules import REASONS, ChannelRules
from flowd.clock import Clock
from flowd.effects.base import EffectFailed, MessageProvider, SendResult
from flowd.effects.messages import ChannelRequest, Delivery
from flowd.effects.outgoing import RecipientOptedOut
from flowd.message_templates import CHANNEL_FIELDS, CompiledContent, ContentCache
from flowd.store import Store, Transaction
from flowd.store.records import Message, MessageStatus

Prepared = tuple[Message, "Delivery | None"]   # None: to be sent now


class Messenger:
    def __init__(self, store: Store, clock: Clock, provider: MessageProvider[Any],
                 rules: ChannelRules) -> None:
        self._store = store
        self._clock = clock
        self.provider = provider
        self.rules = rules
        self._templates = ContentCache()

    @property
    def channel(self) -> str:
        return self.rules.channel

    async def start(self) -> None:
        await self.provider.start()

    async def close(self) -> None:
        await self.provider.close()

    async def template(self, project_id: str, ref: str) -> CompiledContent | None:
        if self.channel not in CHANNEL_FIELDS:   # Slack has no templates
            return None
        template = await self._store.read(lambda tx: tx.templates.get(project_id, ref))
        if template is None or template.channel != self.channel:
            return None
        return self._templates.get((template.id, template.updated_at), template.channel,
                                   template.content)

    async def send(self, request: ChannelRequest) -> list[Delivery]:
        if request.run_id is None:
            # A run-less message left `sending` is the mailer's to retry (as an email): these
            # channels send only for steps, whose retries send them again.
            raise ValueError("SMS, push and Slack messages are sent by steps of a run")
        self.rules.check(request)
        prepared = await self._store.write(self._prepare, request, self._clock.now_ms())
        pending = [message for message, answered in prepared if answered is None]
        results = await asyncio.gather(*(self._deliver(m, request.final_attempt)
                                         for m in pending), return_exceptions=True)
        outcome = dict(zip((m.id for m in pending), results))
        deliveries: list[Delivery] = []
        retry: EffectFailed | None = None
        for message, answered in prepared:
            result = outcome.get(message.id, answered)
            if isinstance(result, EffectFailed):
                if result.retryable and not request.final_attempt:
                    retry = retry or result
                result = _delivery(message)      # as its record now says
            elif isinstance(result, BaseException):
                raise result
            assert result is not None
            deliveries.append(result)
        if retry is not None:
            # The sent ones are recorded: the next attempt sends only what is still unsent.
            raise retry
        return deliveries

    # -- 1. decide and record ----------------------------------------------------------------

    def _prepare(self, tx: Transaction, request: ChannelRequest, now: int) -> list[Prepared]:
        contact = (tx.contacts.get(request.project_id, request.contact_id)
                   if request.contact_id is not None else None)
        targets = self.rules.recipients(request, contact)
        if isinstance(targets, str):   # to no one: one suppressed record says why
            existing = tx.messages.get(request.project_id, request.message_id)
            if existing is not None:
                return [_answer(existing)]
            message = self._message(request, request.message_id, None, targets, now)
            tx.messages.insert(message)
            return [(message, _delivery(message))]
        prepared: list[Prepared | None] = []
        fresh: list[tuple[int, str, str]] = []
        for recipient in targets:
            message_id = self.rules.message_id(request, recipient)
            existing = tx.messages.get(request.project_id, message_id)
            if existing is not None:
                prepared.append(_answer(existing))
            else:
                fresh.append((len(prepared), message_id, recipient))
                prepared.append(None)
        unsubscribed = (self.rules.subscribable and contact is not None
                        and not contact.subscribed.get(self.channel, True))
        for index, message_id, recipient in fresh:
            reason = "unsubscribed" if unsubscribed else self.rules.screen(tx, request,
                                                                           recipient)
            message = self._message(request, message_id, recipient, reason, now)
            tx.messages.insert(message)
            prepared[index] = (message, _delivery(message) if reason else None)
        return [p for p in prepared if p is not None]

    def _message(self, request: ChannelRequest, message_id: str, recipient: str | None,
                 reason: str | None, now: int) -> Message:
        return Message(
            id=message_id, project_id=request.project_id, channel=self.channel,
            status=MessageStatus.SUPPRESSED if reason else MessageStatus.SENDING,
            recipients=[] if recipient is None else [self.rules.shown(recipient)],
            subject=self.rules.subject(request), body=request.body,
            content={} if recipient is None else self.rules.content(request, recipient),
            created_at=now, contact_id=request.contact_id, run_id=request.run_id,
            step_id=request.step_id, workflow_id=request.workflow_id,
            error={"code": reason, "message": REASONS.get(reason, reason)} if reason else None)

    # -- 2. send, 3. record the outcome -----------------------------------------------------

    async def _deliver(self, message: Message, final: bool) -> Delivery:
        try:
            result = await self.provider.send(self.rules.outgoing(message))
        except RecipientOptedOut as out:
            return await self._store.write(self._opted_out, message, out, self._clock.now_ms())
        except EffectFailed as failure:
            message.status = (MessageStatus.FAILED if final or not failure.retryable
                              else MessageStatus.SENDING)
            message.error = {"code": failure.code, "message": failure.message}
            await self._store.write(lambda tx: tx.messages.finish(message))
            raise
        return await self._store.write(self._record, message, result, self._clock.now_ms())

    def _record(self, tx: Transaction, message: Message, result: SendResult,
                now: int) -> Delivery:
        if result.accepted:
            message.status, message.sent_at = MessageStatus.SENT, now
            message.provider_message_id = result.provider_message_id
            message.error = None                 # an earlier attempt's
        else:
            reason = "; ".join(result.rejected.values()) or "refused by the provider"
            code = self.rules.rejected(tx, message, reason, now)
            message.status = MessageStatus.FAILED
            message.error = {"code": code, "message": reason}
        tx.messages.finish(message)
        return _delivery(message)

    def _opted_out(self, tx: Transaction, message: Message, out: RecipientOptedOut,
                   now: int) -> Delivery:
        message.status = MessageStatus.SUPPRESSED
        message.error = {"code": out.code, "message": out.message}
        self.rules.opted_out(tx, message, now)
        tx.messages.finish(message)
        return _delivery(message)


def _answer(existing: Message) -> Prepared:
    if existing.status in (MessageStatus.SENDING, MessageStatus.FAILED):
        return existing, None     # not sent (a crash came before its outcome, or it failed)
    return existing, _delivery(existing)


def _delivery(message: Message) -> Delivery:
    error = message.error or {}
    return Delivery(message.id, message.status, tuple(message.recipients),
                    reason=error.get("code"), provider_message_id=message.provider_message_id,
                    error=error.get("message") if message.status is MessageStatus.FAILED
                    else None)
