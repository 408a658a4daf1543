"""Cross-channel journeys on the core (real store, engine and messengers, outbox providers), with
time moved by the virtual clock: who got which message when, a send deferred before it is made
and made once afterwards with the same id, and messaging steps run again after a crash window
never sending what their records say was sent."""

from __future__ import annotations

import random
from typing import Any

import pytest

from flowd.channel_rules import PushRules, SlackRules, SmsRules
from flowd.channel_setup import Channels
from flowd.effects.base import EffectFailed, Effects, RecordingMailProvider, SendResult
from flowd.effects.outgoing import RecordingProvider
from flowd.effects.push import OutboxPushProvider
from flowd.effects.signing import delivery_id
from flowd.effects.sms import OutboxSmsProvider
from flowd.mailer import Mailer, MailSettings
from flowd.messenger import Messenger
from flowd.steps import sending
from flowd.steps.base import Outcome, StepContext
from flowd.steps.channels import SendPushStep, SendSmsStep
from flowd.store.records import Message, MessageStatus, RunStatus
from flowd.templates import Scope
from flowd.waits import Wait, WaitKind
from tests.core import START, Core, close_core, make_core

HOUR = 3_600_000
DAY = 24 * HOUR


def _effects(store, clock, ingest) -> dict[str, Any]:
    mailer = Mailer(store, clock, RecordingMailProvider(), ingest, MailSettings(
        sender="news@acme.example", reply_to=None, track_opens=False, track_clicks=False),
        public_url=lambda: "https://flowd.example.com")
    channels = Channels(
        sms=Messenger(store, clock, OutboxSmsProvider(), SmsRules(ingest)),
        push=Messenger(store, clock, OutboxPushProvider(), PushRules(ingest)),
        slack=Messenger(store, clock, RecordingProvider(), SlackRules("")))
    return {"email": mailer, "audiences": mailer, **channels.effects()}


@pytest.fixture
async def core(tmp_path):
    core = await make_core(tmp_path, with_effects=_effects)
    await core.effects["email"].start(retry_unsent=False)
    for name in ("sms", "push", "slack"):
        await core.effects[name].start()
    yield core
    await core.effects["email"].close()
    for name in ("sms", "push", "slack"):
        await core.effects[name].close()
    await close_core(core)


async def _contact(core: Core, contact_id: str, **fields: Any) -> None:
    now = core.clock.now_ms()
    await core.store.write(lambda tx: tx.contacts.upsert("default", contact_id, fields, now))


async def _messages(core: Core, contact_id: str) -> list[Message]:
    page = await core.store.read(lambda tx: tx.messages.page(
        "default", contact_id=contact_id, channel=None, status=None, run_id=None, before=None,
        limit=100))
    return sorted(page.items, key=lambda m: (m.created_at, m.channel, m.recipients))


async def _advance(core: Core, ms: int, run_ids: list[str]) -> None:
    """Move virtual time on; the runs whose timers came due go on, as the scheduler's claim
    and slots would take them."""
    core.clock.advance(ms)
    for run, contact, loaded in await core.engine.claim(run_ids):
        await core.execute(run, contact, contact_loaded=loaded)


JOURNEY = [
    {"id": "push", "type": "send_push", "config": {
        "title": "Your cart", "body": "{{ contact.traits.first_name }}, it is still there"}},
    {"id": "hour", "type": "wait", "config": {"duration": "PT1H"}},
    {"id": "email", "type": "send_email", "config": {
        "subject": "Still thinking?", "text": "Hi {{ contact.traits.first_name }}"}},
    {"id": "days", "type": "wait", "config": {"duration": "P3D"}},
    {"id": "sms", "type": "send_sms", "config": {
        "body": "Last call, {{ contact.traits.first_name }}"}},
]


async def test_push_wait_email_wait_sms_for_three_kinds_of_contact(core: Core):
    await _contact(core, "ann", email="ann@example.com", phone="+4915112345678",
                   timezone="Europe/Berlin", push_tokens=["ann-phone"],
                   traits={"first_name": "Ann"})
    await _contact(core, "bo", email="bo@example.com", phone="+14155550123",
                   timezone="America/Los_Angeles", push_tokens=["bo-phone", "bo-tablet"],
                   subscribed={"sms": False}, traits={"first_name": "Bo"})
    await _contact(core, "cy", email="cy@example.com", phone="+819012345678",
                   timezone="Asia/Tokyo", traits={"first_name": "Cy"})
    workflow = await core.workflow(JOURNEY)
    runs = [await core.start(workflow, contact_id) for contact_id in ("ann", "bo", "cy")]
    for run in runs:
        await core.execute(run)
    ids = [run.id for run in runs]
    assert {(await core.run(i)).status for i in ids} == {RunStatus.WAITING}
    await _advance(core, HOUR, ids)
    await _advance(core, 3 * DAY, ids)
    assert {(await core.run(i)).status for i in ids} == {RunStatus.COMPLETED}

    def got(messages: list[Message]) -> list[tuple[Any, ...]]:
        return [(m.channel, m.status.value, m.recipients, (m.error or {}).get("code"),
                 m.created_at - START) for m in messages]

    assert got(await _messages(core, "ann")) == [
        ("push", "sent", ["ann-phone"], None, 0),
        ("email", "sent", ["ann@example.com"], None, HOUR),
        ("sms", "sent", ["+4915112345678"], None, HOUR + 3 * DAY)]
    assert got(await _messages(core, "bo")) == [
        ("push", "sent", ["bo-phone"], None, 0),
        ("push", "sent", ["bo-tablet"], None, 0),
        ("email", "sent", ["bo@example.com"], None, HOUR),
        ("sms", "suppressed", ["+14155550123"], "unsubscribed", HOUR + 3 * DAY)]
    assert got(await _messages(core, "cy")) == [
        ("push", "suppressed", [], "no_push_token", 0),
        ("email", "sent", ["cy@example.com"], None, HOUR),
        ("sms", "sent", ["+819012345678"], None, HOUR + 3 * DAY)]
    sms = next(m for m in await _messages(core, "ann") if m.channel == "sms")
    assert sms.body == "Last call, Ann" and sms.subject is None
    [ann_run] = [r for r in runs if r.contact_id == "ann"]
    assert sms.id == delivery_id(ann_run.id, "sms", 1)


async def test_a_deferred_send_runs_again_as_the_same_visit_and_goes_once(core, monkeypatch):
    """What the send policy will do: a pre-send check defers the send with a timer wait; when
    it ends the step runs again as the same visit — here after a restart in between, which
    reads the run back from the store — and the message goes once, with the visit's id."""
    seen: list[tuple[str, int, int, str]] = []

    async def defer_once(ctx: StepContext, channel: str) -> Outcome | None:
        seen.append((ctx.step_id, ctx.visit, ctx.attempt, channel))
        if len(seen) > 1:
            return None
        return Outcome("deferred", output={"status": "deferred"},
                       wait=Wait(WaitKind.TIMER, until=ctx.now_ms + HOUR))

    monkeypatch.setattr(sending, "PRE_SEND_CHECKS", (defer_once, *sending.PRE_SEND_CHECKS))
    await _contact(core, "ann", phone="+4915112345678")
    workflow = await core.workflow([
        {"id": "text", "type": "send_sms", "config": {"body": "Good morning"}},
        {"id": "after", "type": "set", "config": {"vars": {"done": True}}}])
    run = await core.start(workflow, "ann")
    await core.execute(run)
    waiting = await core.run(run.id)
    assert waiting.status is RunStatus.WAITING and waiting.wait.kind is WaitKind.TIMER
    assert await _messages(core, "ann") == []

    core.clock.advance(HOUR)
    [(claimed, _, _)] = await core.engine.claim([run.id])   # the wait ends: resume()
    assert claimed.status is RunStatus.RUNNING and claimed.current_step_id == "text"
    # The process stops before the step runs again; at the next start the run is read back.
    await core.store.write(lambda tx: tx.runs.recover_running(core.clock.now_ms()))
    [(fresh, contact, loaded)] = await core.engine.claim([run.id])
    await core.execute(fresh, contact, contact_loaded=loaded)

    done = await core.run(run.id)
    assert done.status is RunStatus.COMPLETED and done.vars == {"done": True}
    assert seen == [("text", 1, 1, "sms"), ("text", 1, 1, "sms")]
    # The visit's waiting entry became its real outcome: one entry, not a deferred one and a
    # sent one.
    assert [(e.step_id, e.status, e.outcome, e.visit) for e in await core.trace(run.id)] == [
        ("text", "ok", "sent", 1), ("after", "ok", "set", 1)]
    [message] = await _messages(core, "ann")
    assert message.id == delivery_id(run.id, "text", 1)
    assert message.status is MessageStatus.SENT and message.created_at == START + HOUR


def _context(core: Core, effects: Effects, config: dict[str, Any], contact: dict[str, Any],
             step_id: str = "s1") -> StepContext:
    return StepContext(run_id="run_1", project_id="default", workflow_id="wf_1",
                       step_id=step_id, visit=1, attempt=1, now_ms=core.clock.now_ms(),
                       config=config, compiled=None, scope=Scope({"contact": contact}),
                       effects=effects, random=random.Random(1), contact_id=contact["id"])


async def test_a_push_step_run_again_sends_only_to_tokens_not_yet_sent(core: Core):
    provider: RecordingProvider = RecordingProvider(by_recipient={
        "flaky": EffectFailed("push_unavailable", "FCM answered HTTP 503", retryable=True)})
    push = Messenger(core.store, core.clock, provider, PushRules(core.ingest))
    effects = Effects(http=core.http, signer=None, push=push)   # type: ignore[arg-type]
    await _contact(core, "ann", push_tokens=["phone", "flaky"])
    ctx = _context(core, effects, {"title": "T", "body": "B"}, {"id": "ann"})
    ctx.final_attempt = False
    with pytest.raises(EffectFailed):       # "flaky" may work later: the step is retried
        await SendPushStep().run(ctx)
    # The crash window: the step's outcome was never committed; it runs again, as the same
    # visit, with a new token on the contact meanwhile and "flaky" working again.
    del provider.by_recipient["flaky"]
    await _contact(core, "ann", push_tokens=["phone", "flaky", "tablet"])
    outcome = await SendPushStep().run(ctx)
    again = await SendPushStep().run(ctx)
    assert [m.token for m in provider.sent] == ["phone", "flaky", "flaky", "tablet"]
    assert outcome.outcome == again.outcome == "sent" and again.output["sent"] == 3
    assert [m["message_id"] for m in outcome.output["messages"]] == [
        m["message_id"] for m in again.output["messages"]]
    assert len({m["message_id"] for m in again.output["messages"]}) == 3


async def test_an_sms_step_run_again_does_not_send_again(core: Core):
    provider: RecordingProvider = RecordingProvider(by_recipient={
        "+4915112345678": SendResult("SM1", ("+4915112345678",), {})})
    sms = Messenger(core.store, core.clock, provider, SmsRules(core.ingest))
    effects = Effects(http=core.http, signer=None, sms=sms)   # type: ignore[arg-type]
    await _contact(core, "ann", phone="+4915112345678")
    ctx = _context(core, effects, {"body": "Code 1234"},
                   {"id": "ann", "phone": "+4915112345678"})
    first = await SendSmsStep().run(ctx)
    second = await SendSmsStep().run(ctx)
    assert len(provider.sent) == 1
    assert first.output == second.output == {
        "message_id": delivery_id("run_1", "s1", 1), "status": "sent", "to": "+4915112345678",
        "provider_message_id": "SM1"}
