"""`send_email`: an email to the run's contact (or to `to`), from a stored template or written
inline, through the email effect — which checks suppression, records the message before it is
sent and never sends it twice once its record says sent."""

from __future__ import annotations

import html
from typing import Any

from flowd.effects.messages import EmailRequest
from flowd.effects.signing import delivery_id
from flowd.errors import Problem
from flowd.steps.base import Outcome, StepConfigError, StepContext, StepFailed, StepType
from flowd.store.records import MessageStatus
from flowd.validation import Object, String

_INLINE = ("subject", "html", "text")


class SendEmailStep(StepType):
    name = "send_email"
    summary = ("Sends an email by template or inline to the contact (or `to`); an unsubscribed, "
               "bounced or missing address takes the `suppressed` branch.")
    # A sent email goes on along the default path; so does a suppressed one unless `next`
    # routes `suppressed` somewhere.
    branches = ("suppressed",)
    optional_branches = ("suppressed",)
    reads_scope = True           # a template may read anything of the run and its contact
    calls_out = True
    escaped = {"html": html.escape}
    schema = Object({
        "template": String(min_len=1, max_len=200, description="A template's id or name."),
        "subject": String(max_len=2000),
        "html": String(max_len=200_000, description="Values put in are HTML-escaped."),
        "text": String(max_len=200_000),
        "to": String(min_len=1, max_len=1000, description="Default: {{ contact.email }}."),
        "from": String(min_len=1, max_len=500, description="Default: [email] from."),
        "reply_to": String(min_len=1, max_len=500, description="Default: [email] reply_to."),
        "audience": String(min_len=1, max_len=200, description=(
            "Send only while the contact is in this audience (checked at send time).")),
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

    async def run(self, ctx: StepContext) -> Outcome:
        email = ctx.effects.email
        if email is None:
            raise StepFailed("email_unavailable", "this server has no email effect",
                             retryable=False)
        config = ctx.config
        audience = config.get("audience")
        if audience and not await email.in_audience(ctx.project_id, str(audience),
                                                    ctx.contact_id):
            return Outcome("suppressed", branch="suppressed",
                           output={"status": "suppressed", "reason": "not_in_audience"})
        content = await self._content(ctx)
        to = config["to"] if "to" in config else ctx.scope.lookup("contact.email")[1]
        delivery = await email.send(EmailRequest(
            project_id=ctx.project_id, message_id=delivery_id(ctx.run_id, ctx.step_id, ctx.visit),
            to=(str(to),) if to else (), subject=str(content.get("subject") or ""),
            text=_text_or_none(content.get("text")), html=_text_or_none(content.get("html")),
            contact_id=ctx.contact_id, sender=_text_or_none(config.get("from")),
            reply_to=_text_or_none(config.get("reply_to")), run_id=ctx.run_id,
            step_id=ctx.step_id, workflow_id=ctx.workflow_id, final_attempt=ctx.final_attempt))
        output = delivery.to_json()
        if delivery.status is MessageStatus.SUPPRESSED:
            return Outcome("suppressed", branch="suppressed", output=output)
        if delivery.status is MessageStatus.SENT:
            return Outcome("sent", output=output)
        raise StepFailed(delivery.reason or delivery.status.value,
                         f"the email was not sent: {delivery.status.value}"
                         + (f" ({delivery.reason})" if delivery.reason else ""),
                         retryable=False, output=output)

    async def _content(self, ctx: StepContext) -> dict[str, Any]:
        ref = ctx.config.get("template")
        if ref is None:
            return {key: ctx.config[key] for key in _INLINE if key in ctx.config}
        assert ctx.effects.email is not None
        compiled = await ctx.effects.email.template(ctx.project_id, str(ref))
        if compiled is None:
            raise StepFailed("unknown_template", f"no email template has the id or name {ref!r}",
                             retryable=False)
        return compiled.render(ctx.scope)


def _text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
