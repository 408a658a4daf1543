"""`send_email`: an email to the run's contact (or to `to`), from a stored template or written
inline, through the email effect — which checks suppression, records the message before it is
sent and never sends it twice once its record says sent. The checks before the send (the
audience) and the outcome of a delivery are every messaging step's (flowd.steps.sending)."""

from __future__ import annotations

import html
from typing import Any

from flowd.effects.messages import EmailRequest
from flowd.effects.signing import delivery_id
from flowd.errors import Problem
from flowd.steps.base import Outcome, StepConfigError, StepContext, StepFailed
from flowd.steps.sending import (
    AUDIENCE,
    TRANSACTIONAL,
    MessagingStep,
    content,
    delivery_outcome,
)
from flowd.validation import Object, String

_INLINE = ("subject", "html", "text")


class SendEmailStep(MessagingStep):
    name = "send_email"
    channel = "email"
    summary = ("Sends an email by template or inline to the contact (or `to`); an unsubscribed, "
               "bounced or missing address takes the `suppressed` branch.")
    escaped = {"html": html.escape}
    schema = Object({
        "template": String(min_len=1, max_len=200, description="A template's id or name."),
        "subject": String(max_len=2000),
        "html": String(max_len=200_000, description="Values put in are HTML-escaped."),
        "text": String(max_len=200_000),
        "to": String(min_len=1, max_len=1000, description="Default: {{ contact.email }}."),
        "from": String(min_len=1, max_len=500, description="Default: [email] from."),
        "reply_to": String(min_len=1, max_len=500, description="Default: [email] reply_to."),
        "audience": AUDIENCE,
        "transactional": TRANSACTIONAL,
    })

    def compile(self, config: dict[str, Any], path: str) -> None:
        inline = [key for key in _INLINE if key in config]
        if "template" in config and inline:
            raise StepConfigError([("invalid_config", Problem(
                path, "give a template or inline content (subject, html, text), not both"))])
        if "template" not in config and not ("subject" in config and
                                             ("html" in config or "text" in config)):
            raise StepConfigError([("missing_config", Problem(
                path, 'needs a "template", or a "subject" with "html", "text" or both'))])

    async def send(self, ctx: StepContext) -> Outcome:
        email = ctx.effects.email
        if email is None:
            raise StepFailed("email_unavailable", "this server has no email effect",
                             retryable=False)
        config = ctx.config
        fields = await content(ctx, email, "email", _INLINE)
        to = config["to"] if "to" in config else ctx.scope.lookup("contact.email")[1]
        delivery = await email.send(EmailRequest(
            project_id=ctx.project_id, message_id=delivery_id(ctx.run_id, ctx.step_id, ctx.visit),
            to=(str(to),) if to else (), subject=str(fields.get("subject") or ""),
            text=_text_or_none(fields.get("text")), html=_text_or_none(fields.get("html")),
            contact_id=ctx.contact_id, sender=_text_or_none(config.get("from")),
            reply_to=_text_or_none(config.get("reply_to")), run_id=ctx.run_id,
            step_id=ctx.step_id, workflow_id=ctx.workflow_id, final_attempt=ctx.final_attempt))
        return delivery_outcome(delivery, "email")


def _text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
