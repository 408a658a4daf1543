"""What the SMS, push and Slack providers are handed, the one failure that is not a failure of
the provider (the recipient opted out of it), and a provider that records instead of sending.

Each provider of flowd.effects.sms, .push and .slack is a `MessageProvider` (flowd.effects.base)
of one of these types: `send` answers a `SendResult` whose `provider_message_id` is the
provider's id for the message; a recipient the provider refuses for good (an invalid number, an
unregistered push token) is in `SendResult.rejected` with the provider's reason, as an email
address refused with a 5xx is. `RecipientOptedOut` says the recipient told the provider to stop
(Twilio's 21610): the message is suppressed and the contact unsubscribed, not retried.

`RecordingProvider` is the dry run's twin of all three (and a test's): it records every message
and answers from canned answers per recipient, else accepted with the message's own id.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Generic, Mapping, TypeVar

from flowd.effects.base import EffectFailed, SendResult
from flowd.validation import E164_PATTERN

E164 = re.compile(E164_PATTERN)


@dataclass(frozen=True)
class OutgoingSms:
    message_id: str      # flowd's id: the outbox's provider id
    to: str              # E.164
    body: str

    @property
    def recipient(self) -> str:
        return self.to


@dataclass(frozen=True)
class OutgoingPush:
    message_id: str
    token: str           # the device's registration token
    title: str | None
    body: str
    data: dict[str, str] = field(default_factory=dict)

    @property
    def recipient(self) -> str:
        return self.token


@dataclass(frozen=True)
class OutgoingSlack:
    message_id: str
    # The step's webhook URL (an author wrote it: it goes through the private-network guard),
    # or None for the operator's `[slack] webhook_url` (configuration: it does not).
    url: str | None
    text: str
    blocks: list[Any] | None = None

    @property
    def recipient(self) -> str:
        return self.url or ""


Outgoing = OutgoingSms | OutgoingPush | OutgoingSlack
OutgoingT = TypeVar("OutgoingT", OutgoingSms, OutgoingPush, OutgoingSlack)


class RecipientOptedOut(EffectFailed):
    """The provider refuses the message because its recipient opted out of the channel
    (Twilio 21610: the number replied STOP). Retrying cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__("unsubscribed", message, retryable=False)


CannedAnswer = SendResult | EffectFailed


class RecordingProvider(Generic[OutgoingT]):
    """A provider of any of the three channels that sends nothing: records every message (in
    `sent`, in order) and answers from `by_recipient` (a phone number, a push token, a webhook
    URL), else accepted with the message's own id as the provider's."""

    def __init__(self, *, by_recipient: Mapping[str, CannedAnswer] | None = None) -> None:
        self.by_recipient = dict(by_recipient or {})
        self.sent: list[OutgoingT] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, message: OutgoingT) -> SendResult:
        self.sent.append(message)
        answer = self.by_recipient.get(message.recipient)
        if isinstance(answer, EffectFailed):
            raise answer
        if answer is not None:
            return copy.deepcopy(answer)   # the caller may not change later answers
        return SendResult(message.message_id, (message.recipient,), {})
