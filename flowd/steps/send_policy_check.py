"""The send policy as messaging steps apply it: one of the checks every messaging step runs
before it sends. The rules and the decision are flowd.send_policy's (pure); this reads what
they need — the run's policy (`ctx.send_policy`), the contact's time zone from the scope, the
contact's recent sends through the `SendHistory` effect — and turns the decision into the
step's outcome:

- `deferred`: a timer `Wait` until the decision's time, output `{"status": "deferred",
  "reason": "quiet_hours" | "frequency_cap", "until": "<RFC 3339>"}`. When the wait ends the
  step runs again as the same visit (same message id), and the policy is checked again.
- `rate_limited` (mode `skip`): nothing is sent and the run goes on along the default path.

A contact unsubscribed from the channel is not held back either: the send goes on to its
suppression at once. A step with `"transactional": true` in its config is exempt (an order confirmation inside a
journey), as are emails that no messaging step sends (POST /v1/messages/email, approvals). A
run without a contact has no sends to count (caps pass) and reads quiet hours on the project's
clock.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Sequence

from flowd.effects.signing import delivery_id
from flowd.send_policy import Defer, Skip, decide
from flowd.steps.base import Outcome, StepContext
from flowd.timeutil import format_ms
from flowd.validation import Boolean
from flowd.waits import Wait, WaitKind

TRANSACTIONAL = Boolean(description=(
    "Exempt from the send policy (quiet hours, frequency caps): a message the contact is "
    "waiting for, such as an order confirmation. Unsubscribes and bounces still suppress it."))


def capped_turn(ctx: StepContext, channel: str) -> AbstractAsyncContextManager[None]:
    """Where a frequency cap counts this send: the contact's sends on the channel take turns
    from the count to the message's record, else concurrent journeys would all pass a count
    none of their messages is in yet. Elsewhere, nothing to wait for."""
    policy, history = ctx.send_policy, ctx.effects.send_history
    if (policy is None or history is None or ctx.contact_id is None
            or ctx.config.get("transactional") is True or policy.cap(channel) is None):
        return nullcontext()
    return history.one_at_a_time(ctx.project_id, ctx.contact_id, channel)


async def send_policy_check(ctx: StepContext, channel: str) -> Outcome | None:
    """The outcome that replaces the send (`deferred`, `rate_limited`), or None: send now."""
    policy = ctx.send_policy
    if policy is None or ctx.config.get("transactional") is True or not policy.applies_to(
            channel):
        return None
    # A contact unsubscribed from the channel gets nothing whenever the step runs: let the
    # send go on to its suppression now rather than hold the journey until morning.
    found, subscribed = ctx.scope.lookup(f"contact.subscribed.{channel}")
    if found and subscribed is False:
        return None
    recent: Sequence[int] = ()
    cap = policy.cap(channel)
    history = ctx.effects.send_history
    if cap is not None and ctx.contact_id is not None and history is not None:
        # This step's own message does not count against it (a retry whose first attempt
        # recorded it before failing).
        recent = await history.recent_sends(
            ctx.project_id, ctx.contact_id, channel, ctx.now_ms - cap.per_ms, cap.max,
            excluding=delivery_id(ctx.run_id, ctx.step_id, ctx.visit))
    _, zone = ctx.scope.lookup("contact.timezone")
    decision = decide(policy, channel, contact_timezone=zone if isinstance(zone, str) else None,
                      now_ms=ctx.now_ms, recent=recent)
    if isinstance(decision, Defer):
        return Outcome("deferred", output={"status": "deferred", "reason": decision.reason,
                                           "until": format_ms(decision.until_ms)},
                       # The reason goes with the wait, for the output once it ends.
                       wait=Wait(WaitKind.TIMER, until=decision.until_ms, ref=decision.reason))
    if isinstance(decision, Skip):
        return Outcome("rate_limited", output={"status": "rate_limited",
                                               "reason": decision.reason})
    return None


def deferral(wait: Wait | None) -> dict[str, Any]:
    """A deferral that ended (the step's output until it runs again): why, and until when."""
    output: dict[str, Any] = {"status": "deferred"}
    if wait is not None:
        if wait.ref:
            output["reason"] = wait.ref
        output["until"] = format_ms(wait.until)
    return output


def with_deferral(outcome: Outcome, ctx: StepContext) -> Outcome:
    """A step run again after a deferral says so in its output (`"deferred": {"reason",
    "until"}`): its trace entry, rewritten with the real outcome, still tells why it took
    that long."""
    previous = ctx.previous_output
    if (isinstance(previous, dict) and previous.get("status") == "deferred"
            and isinstance(outcome.output, dict)):
        outcome.output["deferred"] = {key: previous[key] for key in ("reason", "until")
                                      if key in previous}
    return outcome
