"""Orchestration steps: `approval` (a person decides), `run_workflow` (another workflow runs,
and this one may wait for it), `loop` (the body runs once per item), `emit_event` (an event as
if posted).

Like timers and `wait_for_event`, approvals and child runs are waits: the step returns a
`Wait`, the run is handed back to the store, and whatever ends the wait — a decision, the
child's end, the deadline — comes back through `resume()` as a `Wake`. What these steps
create (the approval and its links, the child run, the emitted event) is committed by the
engine in the very unit that records the step.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

from flowd.durations import parse_duration
from flowd.effects.messages import EmailRequest
from flowd.effects.signing import delivery_id
from flowd.errors import Problem
from flowd.links import token_hash
from flowd.steps.base import (
    ApprovalRequest,
    ChildRequest,
    EmittedEvent,
    Outcome,
    StepConfigError,
    StepContext,
    StepFailed,
    StepType,
)
from flowd.steps.timing import check_duration, duration_at_run_time
from flowd.store.records import Approval
from flowd.timeutil import deadline, format_ms
from flowd.validation import Array, Boolean, Integer, Json, Object, String, text
from flowd.waits import Wait, WaitKind, Wake, WakeReason

# Runs that start runs (run_workflow, emit_event, and update_contact through contact events)
# nest at most this deep: no workflow ping-pong for ever.
MAX_DEPTH = 10
DEFAULT_EXPIRY = "P7D"
MAX_APPROVERS = 20
DEFAULT_MAX_ITEMS = 1000
MAX_ITEMS = 100_000


def approval_id(run_id: str, step_id: str, visit: int) -> str:
    """Deterministic per (run, step, visit): a step tried again (or re-run after a crash)
    opens the same approval and mails the same links."""
    digest = hashlib.sha256(f"approval/{run_id}/{step_id}/{visit}".encode()).digest()
    return "apv_" + base64.b32encode(digest[:15]).decode().lower()


def _depth_check(ctx: StepContext, what: str) -> None:
    if ctx.depth + 1 > MAX_DEPTH:
        raise StepFailed("depth_exceeded", f"{what} would nest {ctx.depth + 1} runs deep; at "
                         f"most {MAX_DEPTH} runs may lead to one another", retryable=False)


class ApprovalStep(StepType):
    name = "approval"
    summary = ("Asks for a decision: the approvers get a link by email (and `approval_url` is "
               "in the step's output); the run waits until someone approves or rejects, or "
               "until `expires` (default P7D).")
    branches = ("approved", "rejected", "expired")
    waits = True
    calls_out = True
    schema = Object({
        "approvers": Array(String(min_len=3, max_len=254), max_items=MAX_APPROVERS,
                           description="Email addresses; each gets a link of their own "
                                       "(the decision records who decided)."),
        "message": text(1, 5000, description="What is asked: shown on the page and in the "
                                             "email."),
        "expires": String(min_len=1, description="ISO 8601 duration (default P7D); then the "
                                                 "step goes `expired`."),
    }, required=("message",))

    def compile(self, config: dict[str, Any], path: str) -> None:
        issues: list[tuple[str, Problem]] = []
        check_duration(config, "expires", path, issues)
        if issues:
            raise StepConfigError(issues)

    async def run(self, ctx: StepContext) -> Outcome:
        links = ctx.effects.approvals
        if links is None:
            raise StepFailed("approvals_unavailable", "this server cannot make approval links",
                             retryable=False)
        approvers = list(dict.fromkeys(str(a).strip() for a in ctx.config.get("approvers") or ()))
        bad = [a for a in approvers if "@" not in a or any(c.isspace() for c in a)]
        if bad:
            raise StepFailed("invalid_approver", f"not an email address: {bad[0]!r}",
                             retryable=False)
        expires = duration_at_run_time(ctx.config, "expires") or parse_duration(DEFAULT_EXPIRY)
        until = deadline(ctx.now_ms, expires)
        apv = Approval(approval_id(ctx.run_id, ctx.step_id, ctx.visit), ctx.project_id,
                       ctx.run_id, ctx.workflow_id, ctx.step_id, ctx.contact_id,
                       str(ctx.config["message"]), approvers, ctx.now_ms, until)
        tokens = {approver: links.token(apv.id, approver) for approver in approvers}
        general = links.token(apv.id, None)
        emails = [await _notify(ctx, apv, approver, links.url(token))
                  for approver, token in tokens.items()] if ctx.effects.email else []
        hashes: dict[str, str | None] = {token_hash(t): a for a, t in tokens.items()}
        hashes[token_hash(general)] = None
        output = {"approval_id": apv.id, "approval_url": links.url(general),
                  "approvers": approvers, "expires_at": format_ms(until), "emails": emails}
        return Outcome("waiting", output=output,
                       wait=Wait(WaitKind.APPROVAL, until=until, ref=apv.id),
                       approval=ApprovalRequest(apv, hashes))

    def resume(self, ctx: StepContext, wake: Wake) -> Outcome:
        if wake.reason is WakeReason.DECISION and wake.data:
            decision = str(wake.data["decision"])
            return Outcome(decision, branch=decision, output=wake.data)
        return Outcome("expired", branch="expired", output={
            "approval_id": approval_id(ctx.run_id, ctx.step_id, ctx.visit),
            "decision": "expired", "expired_at": format_ms(ctx.now_ms)})


async def _notify(ctx: StepContext, apv: Approval, approver: str, url: str) -> dict[str, Any]:
    """Mail one approver their link: recorded before this returns, sent in the background
    (and retried), never twice — its id comes from the run, step, visit and approver."""
    assert ctx.effects.email is not None
    subject = "Approval requested: " + " ".join(apv.message.split())[:100]
    until = format_ms(apv.expires_at)
    text_body = (f"{apv.message}\n\nApprove or reject (until {until}):\n{url}\n\n"
                 f"Workflow {apv.workflow_id}, run {apv.run_id}"
                 + (f", contact {apv.contact_id}" if apv.contact_id else "") + ".\n")
    html_body = (f"<p>{html.escape(apv.message)}</p><p><a href=\"{html.escape(url)}\">Approve "
                 f"or reject</a> (until {until})</p><p>Workflow {html.escape(apv.workflow_id)}, "
                 f"run {html.escape(apv.run_id)}.</p>")
    delivery = await ctx.effects.email.accept(EmailRequest(
        project_id=ctx.project_id,
        message_id=delivery_id(ctx.run_id, f"{ctx.step_id}:approval:{approver}", ctx.visit),
        to=(approver,), subject=subject, text=text_body, html=html_body,
        run_id=ctx.run_id, step_id=ctx.step_id, workflow_id=ctx.workflow_id,
        respect_unsubscribe=False))
    return {"to": approver, "message_id": delivery.message_id, "status": delivery.status.value}


class RunWorkflowStep(StepType):
    name = "run_workflow"
    summary = ("Starts a run of another workflow for the run's contact, `input` as its trigger "
               "event's properties; with `wait` (default) waits for it to end and gets its "
               "run_id, status and vars.")
    branches = ("completed", "failed")
    optional_branches = ("completed",)
    waits = True
    schema = Object({
        "workflow": text(1, 200, description="The workflow's id, or its name (active or "
                                             "paused)."),
        "input": Json(description="An object (or a template giving one): the child's trigger "
                                  "event's properties."),
        "wait": Boolean(description="Wait for the child's end (default true)."),
    }, required=("workflow",))

    async def run(self, ctx: StepContext) -> Outcome:
        _depth_check(ctx, "run_workflow")
        child_input = ctx.config.get("input") or {}
        if not isinstance(child_input, dict):
            raise StepFailed("invalid_input", "input must be an object", retryable=False)
        wait = ctx.config.get("wait", True) is not False
        child = ChildRequest(str(ctx.config["workflow"]), child_input, wait)
        if not wait:
            return Outcome("started", child=child, output={})
        return Outcome("waiting", child=child, output={},
                       wait=Wait(WaitKind.CHILD, until=None))

    def resume(self, ctx: StepContext, wake: Wake) -> Outcome:
        data = wake.data or {}
        status = data.get("status")
        return Outcome(str(status), branch="completed" if status == "completed" else "failed",
                       output=data)


class LoopStep(StepType):
    name = "loop"
    summary = ("Goes `each` once per item of `items` (templates in the body see `loop.item` "
               "and `loop.index`); the body leads back here; after the last item, `done`.")
    branches = ("each", "done")
    schema = Object({
        "items": Json(description="A list, or a template that gives one (read at each visit)."),
        "max_items": Integer(min=1, max=MAX_ITEMS, description=(
            f"More items than this fails the step with too_many_items (default "
            f"{DEFAULT_MAX_ITEMS}).")),
    }, required=("items",))
    # Each visit is a committed step: a loop cannot spin without end (the step limit holds).
    breaks_cycles = True

    def recorded_input(self, config: dict[str, Any]) -> Any:
        # The whole list in every visit's trace entry would make a loop's trace grow with the
        # square of its length; each visit's output already has its item.
        items = config.get("items")
        if not isinstance(items, list):
            return config
        return {**config, "items": f"[{len(items)} items]"}

    async def run(self, ctx: StepContext) -> Outcome:
        items = ctx.config["items"]
        if not isinstance(items, list):
            raise StepFailed("invalid_items", f"items must be a list, not "
                             f"{type(items).__name__}", retryable=False)
        limit = ctx.config.get("max_items", DEFAULT_MAX_ITEMS)
        if len(items) > limit:
            raise StepFailed("too_many_items", f"{len(items)} items; max_items is {limit}",
                             retryable=False)
        previous = ctx.previous_output
        # Back from the body: the next item. Entered afresh (or after a finished pass): the
        # first one. The previous visit's output says which, so it survives a crash.
        index = previous["index"] + 1 if isinstance(previous, dict) and "index" in previous \
            else 0
        if index >= len(items):
            return Outcome("done", branch="done", output={"iterations": index})
        return Outcome("each", branch="each",
                       output={"index": index, "item": items[index], "iterations": index + 1})


class EmitEventStep(StepType):
    name = "emit_event"
    summary = ("Ingests an event as if it had been posted (of the run's contact unless "
               "`contact_id` says otherwise): it may start or resume other runs.")
    schema = Object({
        "name": text(1, 200, description="e.g. order.escalated"),
        "properties": Json(description="An object (or a template giving one)."),
        "contact_id": text(1, 200, description="Default: the run's contact."),
    }, required=("name",))

    async def run(self, ctx: StepContext) -> Outcome:
        _depth_check(ctx, "emit_event")
        contact_id = ctx.config.get("contact_id", ctx.contact_id)
        properties = ctx.config.get("properties") or {}
        if not isinstance(properties, dict):
            raise StepFailed("invalid_properties", "properties must be an object",
                             retryable=False)
        event = EmittedEvent(str(ctx.config["name"]), properties,
                             None if contact_id is None else str(contact_id))
        # The engine adds the event's id and what it started once it is stored.
        return Outcome("emitted", events=[event],
                       output={"name": event.name, "contact_id": event.contact_id})
