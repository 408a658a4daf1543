"""`send_sms`, `send_push` and `slack`: a message of each channel, through its `Channel` effect
(flowd.messenger) — which checks suppression, records each message before it is sent and never
sends it twice once its record says sent. Ids come from (run, step, visit) as email's do."""

from __future__ import annotations

from typing import Any

from flowd.effects.base import Channel
from flowd.effects.messages import ChannelRequest
from flowd.effects.signing import delivery_id
from flowd.errors import Problem
from flowd.steps.base import Outcome, StepConfigError, StepContext, StepFailed
from flowd.steps.sending import (
    AUDIENCE,
    TRANSACTIONAL,
    MessagingStep,
    content,
    delivery_outcome,
    text_of,
)
from flowd.store.records import MessageStatus
from flowd.validation import Array, Json, Object, String

MAX_DATA_KEYS = 100


def _effect(ctx: StepContext, channel: str) -> Channel:
    effect = getattr(ctx.effects, channel)
    if effect is None:
        raise StepFailed(f"{channel}_unavailable", f"this server has no {channel} effect",
                         retryable=False)
    return effect


def _either(config: dict[str, Any], path: str, inline: tuple[str, ...], needs: str) -> None:
    given = [key for key in inline if key in config]
    if "template" in config and given:
        raise StepConfigError([("invalid_config", Problem(
            path, f"give a template or inline content ({', '.join(inline)}), not both"))])
    if "template" not in config and not given:
        raise StepConfigError([("missing_config", Problem(path, f'needs a "template" or '
                                                                f'{needs}'))])


def _request(ctx: StepContext, **fields: Any) -> ChannelRequest:
    return ChannelRequest(project_id=ctx.project_id,
                          message_id=delivery_id(ctx.run_id, ctx.step_id, ctx.visit),
                          contact_id=ctx.contact_id, run_id=ctx.run_id, step_id=ctx.step_id,
                          workflow_id=ctx.workflow_id, final_attempt=ctx.final_attempt,
                          **fields)


class SendSmsStep(MessagingStep):
    name = "send_sms"
    channel = "sms"
    summary = ("Sends an SMS by template or inline to the contact's phone (or `to`); an "
               "unsubscribed contact, a missing or bad number takes the `suppressed` branch.")
    schema = Object({
        "body": String(min_len=1, max_len=1600, description="The text (at most 1,600 "
                                                            "characters, as Twilio takes)."),
        "template": String(min_len=1, max_len=200, description="An SMS template's id or name."),
        "to": String(min_len=1, max_len=200, description="An E.164 number; default: "
                                                         "{{ contact.phone }}."),
        "audience": AUDIENCE,
        "transactional": TRANSACTIONAL,
    })

    def compile(self, config: dict[str, Any], path: str) -> None:
        _either(config, path, ("body",), 'a "body"')

    async def send(self, ctx: StepContext) -> Outcome:
        sms = _effect(ctx, "sms")
        fields = await content(ctx, sms, "sms", ("body",))
        to = ctx.config["to"] if "to" in ctx.config else ctx.scope.lookup("contact.phone")[1]
        [delivery] = await sms.send(_request(ctx, to=text_of(to) or None,
                                             body=text_of(fields.get("body"))))
        return delivery_outcome(delivery, "sms")


class SendPushStep(MessagingStep):
    name = "send_push"
    channel = "push"
    summary = ("Sends a push notification by template or inline to every push token of the "
               "contact; an unsubscribed contact or one without a token takes the `suppressed` "
               "branch, and a token the provider reports unregistered is removed.")
    schema = Object({
        "title": String(max_len=2000),
        "body": String(max_len=4000),
        "data": Json(object_only=True, description="Sent with the notification; values that "
                                                   "are not text are sent as their JSON."),
        "template": String(min_len=1, max_len=200, description="A push template's id or name."),
        "audience": AUDIENCE,
        "transactional": TRANSACTIONAL,
    })

    def compile(self, config: dict[str, Any], path: str) -> None:
        _either(config, path, ("title", "body", "data"), 'a "title", "body" or "data"')

    async def send(self, ctx: StepContext) -> Outcome:
        push = _effect(ctx, "push")
        fields = await content(ctx, push, "push", ("title", "body", "data"))
        deliveries = await push.send(_request(
            ctx, to=None, title=text_of(fields.get("title")) or None,
            body=text_of(fields.get("body")), data=_data(fields.get("data"))))
        sent = [d for d in deliveries if d.status is MessageStatus.SENT]
        output: dict[str, Any] = {"sent": len(sent),
                                  "messages": [d.to_json() for d in deliveries]}
        if sent:
            return Outcome("sent", output={"status": "sent", **output})
        if all(d.status is MessageStatus.SUPPRESSED for d in deliveries):
            return Outcome("suppressed", branch="suppressed", output={
                "status": "suppressed", "reason": deliveries[0].reason, **output})
        failed = next(d for d in deliveries if d.status is not MessageStatus.SUPPRESSED)
        raise StepFailed(failed.reason or failed.status.value,
                         f"the push notification was not sent to any token: "
                         f"{failed.error or failed.reason or failed.status.value}",
                         retryable=False, output={"status": "failed", **output})


def _data(value: Any) -> dict[str, str]:
    """FCM takes data as strings only: other values go as their JSON."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StepFailed("invalid_data", "data must be an object", retryable=False)
    if len(value) > MAX_DATA_KEYS:
        raise StepFailed("invalid_data", f"data has more than {MAX_DATA_KEYS} keys",
                         retryable=False)
    return {str(key): text_of(item) for key, item in value.items()}


class SlackStep(MessagingStep):
    name = "slack"
    channel = "slack"
    summary = ("Posts a message to a Slack incoming webhook: the step's `webhook_url`, else the "
               "server's [slack] webhook_url.")
    schema = Object({
        "text": String(min_len=1, max_len=40_000),
        "blocks": Array(Json(object_only=True), max_items=50, description=(
            "Block Kit blocks; `text` is then the notification's fallback.")),
        "webhook_url": String(min_len=1, max_len=2000, description=(
            "Default: [slack] webhook_url. Checked by the private-network guard like any URL "
            "a workflow names.")),
        "audience": AUDIENCE,
        "transactional": TRANSACTIONAL,
    }, required=("text",))

    async def send(self, ctx: StepContext) -> Outcome:
        slack = _effect(ctx, "slack")
        url = ctx.config.get("webhook_url")
        blocks = ctx.config.get("blocks")
        [delivery] = await slack.send(_request(
            ctx, to=text_of(url) or None, body=text_of(ctx.config.get("text")),
            blocks=list(blocks) if isinstance(blocks, list) and blocks else None))
        return delivery_outcome(delivery, "slack message")
