"""What differs between SMS, push and Slack around a send (flowd.messenger does the rest, the
same way for all three): who a message goes to, what keeps it from going, how its record
looks, and what a provider's refusal means for the contact.

- SMS goes to `to` (default the contact's phone). Suppressed: no number (`no_phone`), one that
  is not E.164 (`invalid_number`), one a provider called invalid before (`bad_number`), or a
  contact with `subscribed.sms = false` (`unsubscribed`). Twilio's "invalid number" marks the
  number bad (the `bounces` store, keyed by the number); its "unsubscribed recipient" sets
  `subscribed.sms = false` and ingests `contact.unsubscribed` (channel `sms`), as an
  unsubscribe link does for email.
- Push goes to every push token the contact has at the moment of the send, one message each,
  with an id of its own (the step's message id and the token's hash), so a step that runs
  again never sends to a token twice. Suppressed: no token (`no_push_token`), or
  `subscribed.push = false`. A token FCM calls unregistered is removed from the contact.
- Slack goes to the step's webhook URL or the operator's `[slack] webhook_url`; it has no
  subscription. Its record shows the URL without its secret last segment.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flowd.effects.base import EffectFailed
from flowd.effects.messages import ChannelRequest
from flowd.effects.outgoing import (
    E164,
    Outgoing,
    OutgoingPush,
    OutgoingSlack,
    OutgoingSms,
)
from flowd.effects.slack import shown_url
from flowd.ingest import IncomingEvent, Ingest
from flowd.store import Transaction
from flowd.store.records import Contact, Message

MAX_PUSH_TOKENS = 100   # what a contact may hold (contact_fields): one message each

REASONS = {
    "no_phone": "the contact has no phone number",
    "invalid_number": "the number is not an E.164 phone number",
    "bad_number": "the number was reported invalid before",
    "no_push_token": "the contact has no push token",
    "unsubscribed": "the contact unsubscribed from this channel",
}


def unsubscribe(tx: Transaction, ingest: Ingest, project_id: str, contact_id: str | None,
                channel: str, now: int) -> None:
    """`subscribed.<channel> = false`, with its contact events and `contact.unsubscribed`
    (property `channel`) — once: a contact already unsubscribed changes nothing."""
    if contact_id is None:
        return
    contact = tx.contacts.get(project_id, contact_id)
    if contact is None or not contact.subscribed.get(channel, True):
        return
    upserted = tx.contacts.upsert(project_id, contact_id, {"subscribed": {channel: False}}, now)
    ingest.contact_changed(tx, project_id, upserted.change, now)
    ingest.store_events(tx, project_id, [IncomingEvent(
        "contact.unsubscribed", contact_id, {"channel": channel})], now)


class ChannelRules:
    channel: str
    subscribable = True   # a contact's `subscribed.<channel>` applies

    def check(self, request: ChannelRequest) -> None:
        """Raises EffectFailed for a request that cannot be sent however the contact is."""

    def recipients(self, request: ChannelRequest, contact: Contact | None) -> list[str] | str:
        """Whom the message goes to, or why to no one (a suppression reason)."""
        raise NotImplementedError

    def screen(self, tx: Transaction, request: ChannelRequest, recipient: str) -> str | None:
        """Why this recipient must not get it, or None."""
        return None

    def message_id(self, request: ChannelRequest, recipient: str) -> str:
        return request.message_id

    def shown(self, recipient: str) -> str:
        """The recipient as the record's `to` shows it."""
        return recipient

    def subject(self, request: ChannelRequest) -> str | None:
        return None

    def content(self, request: ChannelRequest, recipient: str) -> dict[str, Any]:
        """What sending the message again needs besides its body and recipient."""
        return {}

    def outgoing(self, message: Message) -> Outgoing:
        raise NotImplementedError

    def rejected(self, tx: Transaction, message: Message, reason: str, now: int) -> str:
        """The provider refused the recipient for good: what follows for it; the error code."""
        return "refused"

    def opted_out(self, tx: Transaction, message: Message, now: int) -> None:
        """The recipient told the provider to stop sending to it."""


class SmsRules(ChannelRules):
    channel = "sms"

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def recipients(self, request: ChannelRequest, contact: Contact | None) -> list[str] | str:
        return [request.to] if request.to else "no_phone"

    def screen(self, tx: Transaction, request: ChannelRequest, recipient: str) -> str | None:
        if not E164.fullmatch(recipient):
            return "invalid_number"
        if tx.messages.bounced(request.project_id, recipient):
            return "bad_number"
        return None

    def outgoing(self, message: Message) -> OutgoingSms:
        return OutgoingSms(message.id, message.recipients[0], message.body or "")

    def rejected(self, tx: Transaction, message: Message, reason: str, now: int) -> str:
        tx.messages.bounce(message.project_id, message.recipients[0], reason, message.id, now)
        return "invalid_number"

    def opted_out(self, tx: Transaction, message: Message, now: int) -> None:
        unsubscribe(tx, self._ingest, message.project_id, message.contact_id, "sms", now)


class PushRules(ChannelRules):
    channel = "push"

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def recipients(self, request: ChannelRequest, contact: Contact | None) -> list[str] | str:
        tokens = list(dict.fromkeys(contact.push_tokens))[:MAX_PUSH_TOKENS] if contact else []
        return tokens or "no_push_token"

    def message_id(self, request: ChannelRequest, recipient: str) -> str:
        # By the token, not its place in the list: a token removed meanwhile does not shift
        # the others onto ids whose records say they were sent.
        return f"{request.message_id}_{hashlib.sha256(recipient.encode()).hexdigest()[:12]}"

    def subject(self, request: ChannelRequest) -> str | None:
        return request.title

    def content(self, request: ChannelRequest, recipient: str) -> dict[str, Any]:
        return {"title": request.title, "data": dict(request.data)}

    def outgoing(self, message: Message) -> OutgoingPush:
        return OutgoingPush(message.id, message.recipients[0], message.content.get("title"),
                            message.body or "", dict(message.content.get("data") or {}))

    def rejected(self, tx: Transaction, message: Message, reason: str, now: int) -> str:
        token, contact_id = message.recipients[0], message.contact_id
        contact = tx.contacts.get(message.project_id, contact_id) if contact_id else None
        if contact is not None and token in contact.push_tokens:
            upserted = tx.contacts.upsert(message.project_id, contact.id, {
                "push_tokens": [t for t in contact.push_tokens if t != token]}, now)
            self._ingest.contact_changed(tx, message.project_id, upserted.change, now)
        return "unregistered"


class SlackRules(ChannelRules):
    channel = "slack"
    subscribable = False

    def __init__(self, default_url: str) -> None:
        self.default_url = default_url

    def check(self, request: ChannelRequest) -> None:
        if not request.to and not self.default_url:
            raise EffectFailed("no_webhook_url", "the step names no webhook_url and "
                               "[slack] webhook_url is not set", retryable=False)

    def recipients(self, request: ChannelRequest, contact: Contact | None) -> list[str] | str:
        return [request.to or ""]    # "": the operator's URL

    def shown(self, recipient: str) -> str:
        return shown_url(recipient or self.default_url)

    def content(self, request: ChannelRequest, recipient: str) -> dict[str, Any]:
        # The step's URL is kept to send again after a crash (the step's input in the trace
        # holds it too); the operator's is not written anywhere.
        return {"url": recipient or None, "blocks": request.blocks}

    def outgoing(self, message: Message) -> OutgoingSlack:
        return OutgoingSlack(message.id, message.content.get("url"), message.body or "",
                             message.content.get("blocks"))
