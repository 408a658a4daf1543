"""What every messaging step (`send_email`, `send_sms`, `send_push`, `slack`) shares: the checks
that run before a send, the rendering of a stored or inline message, and how a delivery becomes
the step's outcome.

The checks before a send are ONE path, `before_send`, over `PRE_SEND_CHECKS`: the audience
check (`audience` in the step's config, evaluated now through the `Audiences` effect), then the
send policy (flowd.steps.send_policy_check: quiet hours, frequency caps; a step with
`"transactional": true` is exempt). A check returns None to let the send go on, or the step's
outcome instead of it: `suppressed` (the contact is not in the audience), `rate_limited`, or
`deferred` with a timer `Wait`: the run waits, and when the wait ends `MessagingStep.resume`
runs the step again as the same visit, so the new attempt has the same message id (a send the
policy deferred is never sent twice) and its trace entry becomes the real outcome.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, ClassVar

from flowd.effects.base import Channel, Email
from flowd.effects.messages import Delivery
from flowd.steps.base import Outcome, StepContext, StepFailed, StepType
from flowd.steps.send_policy_check import (
    TRANSACTIONAL,
    capped_turn,
    deferral,
    send_policy_check,
    with_deferral,
)
from flowd.store.records import MessageStatus
from flowd.validation import String
from flowd.waits import Wake

AUDIENCE = String(min_len=1, max_len=200, description=(
    "An audience's id or name: send only while the contact is in it (checked at send time; "
    "otherwise the step takes its `suppressed` branch)."))

__all__ = ["AUDIENCE", "TRANSACTIONAL", "MessagingStep", "before_send", "content",
           "delivery_outcome", "text_of"]

PreSendCheck = Callable[[StepContext, str], Awaitable["Outcome | None"]]


async def audience_check(ctx: StepContext, channel: str) -> Outcome | None:
    audience = ctx.config.get("audience")
    if not audience:
        return None
    audiences = ctx.effects.audiences
    if audiences is None:
        raise StepFailed("unknown_audience", f"no audience {audience!r}: this server evaluates "
                         "no audiences", retryable=False)
    if await audiences.in_audience(ctx.project_id, str(audience), ctx.contact_id):
        return None
    return Outcome("suppressed", branch="suppressed",
                   output={"status": "suppressed", "reason": "not_in_audience"})


# In order; the first that answers decides: a contact outside the audience is not kept
# waiting by the send policy.
PRE_SEND_CHECKS: tuple[PreSendCheck, ...] = (audience_check, send_policy_check)


async def before_send(ctx: StepContext, channel: str) -> Outcome | None:
    """The outcome that replaces the send, or None: send now."""
    for check in PRE_SEND_CHECKS:
        held = await check(ctx, channel)
        if held is not None:
            return held
    return None


class MessagingStep(StepType):
    channel: ClassVar[str]
    # A sent message goes on along the default path; so does a suppressed one unless `next`
    # routes `suppressed` somewhere.
    branches = ("suppressed",)
    optional_branches = ("suppressed",)
    reads_scope = True           # a template may read anything of the run and its contact
    calls_out = True

    async def run(self, ctx: StepContext) -> Outcome:
        async with capped_turn(ctx, self.channel):
            held = await before_send(ctx, self.channel)
            if held is not None:
                return held
            return with_deferral(await self.send(ctx), ctx)

    async def send(self, ctx: StepContext) -> Outcome:
        raise NotImplementedError

    def resume(self, ctx: StepContext, wake: Wake) -> Outcome:
        # Only a pre-send check makes a messaging step wait (a deferral): its end is a fresh
        # attempt at the send, as the same visit — the same message id.
        return Outcome("deferred", output=deferral(ctx.wait), again=True)


async def content(ctx: StepContext, effect: Email | Channel, noun: str,
                  inline: tuple[str, ...]) -> dict[str, Any]:
    """The message's fields: the stored template's (`template`, by id or name) rendered with
    the run's scope, else the config's `inline` fields (already rendered by the engine)."""
    ref = ctx.config.get("template")
    if ref is None:
        return {key: ctx.config[key] for key in inline if key in ctx.config}
    compiled = await effect.template(ctx.project_id, str(ref))
    if compiled is None:
        raise StepFailed("unknown_template", f"no {noun} template has the id or name {ref!r}",
                         retryable=False)
    return compiled.render(ctx.scope)


def text_of(value: Any) -> str:
    """A rendered field as message text: a value that is not text is its JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def delivery_outcome(delivery: Delivery, noun: str) -> Outcome:
    """One message's delivery as the step's outcome: `sent`, `suppressed`, or a failure."""
    output = delivery.to_json()
    if delivery.status is MessageStatus.SUPPRESSED:
        return Outcome("suppressed", branch="suppressed", output=output)
    if delivery.status is MessageStatus.SENT:
        return Outcome("sent", output=output)
    raise StepFailed(delivery.reason or delivery.status.value,
                     f"the {noun} was not sent: {delivery.status.value}"
                     + (f" ({delivery.error or delivery.reason})"
                        if delivery.error or delivery.reason else ""),
                     retryable=False, output=output)
