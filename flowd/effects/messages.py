"""What a messaging step asks of the email effect, and what it is told back. The effect itself
(`flowd.mailer.Mailer`: suppression, the message record, links, the provider, bounces) stays
behind the `Email` protocol of flowd.effects.base, so steps never see the store or SMTP."""

from __future__ import annotations

from dataclasses import dataclass, field

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
class Delivery:
    message_id: str
    status: MessageStatus
    to: tuple[str, ...]
    reason: str | None = None        # why it was suppressed, or what failed
    provider_message_id: str | None = None
    accepted: tuple[str, ...] = ()
    rejected: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"message_id": self.message_id, "status": self.status.value,
                                    "to": ", ".join(self.to)}
        if self.reason is not None:
            shown["reason"] = self.reason
        if self.provider_message_id is not None:
            shown["provider_message_id"] = self.provider_message_id
        if self.rejected:
            shown["rejected"] = self.rejected
        return shown
