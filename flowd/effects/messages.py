"""What a messaging step asks of the email effect or of a channel (SMS, push, Slack), and what
it is told back. The effects themselves (`flowd.mailer.Mailer`, `flowd.messenger.Messenger`:
suppression, the message record, the provider, what a refusal means for the contact) stay
behind the `Email` and `Channel` protocols of flowd.effects.base, so steps never see the store
or a provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowd.store.records import MessageStatus


@dataclass(frozen=True)
class EmailAttachment:
    filename: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class EmailRequest:
    project_id: str
    message_id: str                  # from (run, step, visit): a re-run finds its record
    to: tuple[str, ...]
    subject: str
    text: str | None
    html: str | None
    contact_id: str | None = None
    sender: str | None = None        # default: [email] from
    reply_to: str | None = None      # default: [email] reply_to
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    attachments: tuple[EmailAttachment, ...] = ()
    run_id: str | None = None
    step_id: str | None = None
    workflow_id: str | None = None
    # A workflow's email honours the contact's unsubscribe; a transactional one (a password
    # reset) does not. Both honour earlier bounces.
    respect_unsubscribe: bool = True
    # A failure that a retry may cure leaves the record `sending` (with its error) unless no
    # retry follows; then it says `failed`.
    final_attempt: bool = True


@dataclass(frozen=True)
class ChannelRequest:
    """One SMS, push notification or Slack message a step sends. `to`: an SMS's phone number
    (E.164), a Slack message's webhook URL (None: `[slack] webhook_url`); a push notification
    goes to every push token the contact has when it is sent (`to` is not used)."""

    project_id: str
    message_id: str                  # from (run, step, visit); push adds each token to it
    to: str | None
    body: str
    title: str | None = None         # push
    data: dict[str, str] = field(default_factory=dict)    # push: strings only, as FCM takes
    blocks: list[Any] | None = None  # slack
    contact_id: str | None = None
    run_id: str | None = None
    step_id: str | None = None
    workflow_id: str | None = None
    final_attempt: bool = True       # as EmailRequest's


@dataclass(frozen=True)
class Delivery:
    message_id: str
    status: MessageStatus
    to: tuple[str, ...]
    reason: str | None = None        # why it was suppressed, or what failed
    provider_message_id: str | None = None
    accepted: tuple[str, ...] = ()
    rejected: dict[str, str] = field(default_factory=dict)
    error: str | None = None         # what failed, in words (channels; email says `rejected`)

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"message_id": self.message_id, "status": self.status.value,
                                    "to": ", ".join(self.to)}
        if self.reason is not None:
            shown["reason"] = self.reason
        if self.error is not None:
            shown["error"] = self.error
        if self.provider_message_id is not None:
            shown["provider_message_id"] = self.provider_message_id
        if self.rejected:
            shown["rejected"] = self.rejected
        return shown
