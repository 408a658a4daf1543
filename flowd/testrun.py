"""Time-travel test runs: what a workflow would do for one contact over the coming days, in a
fraction of a second, touching nothing.

It is the real machinery, not a second interpreter: the same engine, scheduler, ingest
matching and step code as live runs, over a throwaway in-memory store (the same SQL) that
holds a copy of the workflow, the contact and the templates and audiences it names. Time is a
virtual clock
that jumps to whatever comes next — a due timer or an `events` entry — so a week of waits
passes at once. Effects are recorders: webhooks and HTTP requests are answered from
`responses` (else `200 {}`), ai steps from `responses` too (else they are `ai_unavailable`), emails go through the real mailer to a recording provider,
SMS, push and Slack messages go through their real messengers to recording providers, and
approvals make links that lead nowhere. Code steps run in the server's real sandbox, which
reaches nothing outside itself. Nothing is written to the server's database, sent, or
called. A messaging step's `audience` is checked as live: the audience's filter (copied from
the project when the test run starts) evaluated on the test's own contact, at virtual time.

The work is bounded: a horizon of at most P366D, a step cap, a cap on `events`, and a limit
on wall time, so that a hostile definition cannot hold the server.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from flowd.approvals import ApprovalDesk
from flowd.audience_service import AudienceLimits, AudienceService
from flowd.channel_setup import recording_channels
from flowd.clock import VirtualClock
from flowd.config import AudiencesConfig
from flowd.definitions import audience_refs, template_refs
from flowd.dueruns import DueRuns
from flowd.durations import parse_duration
from flowd.effects.base import (
    Effects,
    HttpResponse,
    Recording,
    RecordingAi,
    RecordingHttp,
    RecordingMailProvider,
    RecordingSigner,
    Sandbox,
)
from flowd.engine import Engine
from flowd.errors import Problem, ValidationError
from flowd.ingest import IncomingEvent, Ingest
from flowd.mailer import Mailer, MailSettings
from flowd.matching import WaitedNames
from flowd.registry import Registry
from flowd.runs import new_run
from flowd.scheduler import Scheduler
from flowd.send_history import StoredSendHistory
from flowd.send_policy import NO_POLICY, SendPolicy
from flowd.slots import RunSlots
from flowd.store import Store
from flowd.store.records import TERMINAL_STATUSES, Audience, Template, WorkflowStatus
from flowd.store.sqlite.memory import MemoryStore
from flowd.timeutil import format_ms

MAX_HORIZON_MS = 366 * 86_400_000
DEFAULT_HORIZON_MS = 30 * 86_400_000
MAX_STEPS = 1000           # committed steps in one test run (loops included)
MAX_EVENTS = 100
MAX_WALL_SECONDS = 5.0     # real time: past it the test run stops where it is
TEST_CONTACT = "test-contact"
PROJECT = "default"        # the throwaway store has one project, whatever the caller's


@dataclass
class TestRunRequest:
    definition: dict[str, Any]             # normalized
    name: str
    event: dict[str, Any] = field(default_factory=dict)     # {"name"?, "properties"?}
    contact: dict[str, Any] | None = None  # a contact upsert, with "id" optional
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # (after ms, …)
    responses: dict[str, HttpResponse] = field(default_factory=dict)
    # By step id, an ai step's answer: {"text"}, {"choice"} or {"fields"} (else the step is
    # ai_unavailable: a test run asks no model).
    ai_responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    horizon_ms: int = DEFAULT_HORIZON_MS
    templates: list[Template] = field(default_factory=list)   # the ones the workflow names
    audiences: list[Audience] = field(default_factory=list)   # likewise


class _Parts:
    """The core of a server, made for one test run on a MemoryStore and a VirtualClock."""

    def __init__(self, store: MemoryStore, clock: VirtualClock, recording: Recording,
                 mail: RecordingMailProvider, public_url: str,
                 mail_settings: MailSettings, send_policy: SendPolicy,
                 slack_webhook_url: str = "", sandbox: Sandbox | None = None) -> None:
        self.store, self.clock = store, clock
        self.registry = Registry(store)
        self.due = DueRuns(clock)
        waited = WaitedNames()
        self.ingest = Ingest(store, clock, index=lambda: self.registry.index, waited=waited,
                             on_started=lambda runs: self.scheduler.start_new(runs),
                             on_runs_due=lambda ids: self.scheduler.notify_now(ids))
        self.audiences = AudienceService(store, clock, AudienceLimits.of(AudiencesConfig()))
        self.mailer = Mailer(store, clock, mail, self.ingest, mail_settings,
                             public_url=lambda: public_url)
        self.approvals = ApprovalDesk(store, clock, public_url=lambda: public_url,
                                      on_runs_due=lambda ids: self.scheduler.notify_now(ids))
        self.channels = recording_channels(store, clock, self.ingest, slack_webhook_url)

        # The send policy counts the messages of this test run only: its own store's.
        history = StoredSendHistory(store)

        def effects_for(step_id: str) -> Effects:
            return Effects(http=RecordingHttp(recording, step_id),
                           signer=RecordingSigner(recording, step_id), email=self.mailer,
                           approvals=self.approvals, audiences=self.audiences,
                           send_history=history, sandbox=sandbox,
                           ai=RecordingAi(recording, step_id),
                           **self.channels.effects())

        self.engine = Engine(store, self.registry, clock, effects_for(""), due=self.due,
                             waited=waited, max_steps_per_run=MAX_STEPS,
                             on_started=lambda runs: self.scheduler.start_new(runs),
                             store_events=self.ingest.store_events, effects_for=effects_for,
                             contact_changed=self.ingest.contact_changed,
                             send_policy=send_policy)
        self.slots = RunSlots(10, self.engine.execute, self.due.notify_now)
        self.scheduler = Scheduler(store, clock, self.due, self.slots, self.engine.claim,
                                   horizon_ms=MAX_HORIZON_MS + 86_400_000)

    async def start(self) -> None:
        await self.mailer.start(retry_unsent=False)
        await self.channels.start()
        await self.approvals.start()

    async def settle(self) -> None:
        """Let everything due now run as far as it can without time passing."""
        for _ in range(MAX_STEPS):
            await self.scheduler.dispatch(self.clock.now_ms())
            await self.slots.drained()
            next_due = self.due.next_due
            if next_due is None or next_due > self.clock.now_ms():
                return


async def test_run(request: TestRunRequest, *, now: int, public_url: str,
                   mail_settings: MailSettings, slack_webhook_url: str = "",
                   send_policy: SendPolicy = NO_POLICY,
                   sandbox: Sandbox | None = None) -> dict[str, Any]:
    """`slack_webhook_url`: the server's [slack] webhook_url (whether a slack step without its
    own URL has somewhere to go; nothing is posted). `send_policy`: the project's [policy].
    `sandbox`: the server's, for code steps (without it they fail sandbox_unavailable)."""
    store = MemoryStore()
    await store.open()
    try:
        return await _run(store, request, now, public_url, mail_settings, slack_webhook_url,
                          send_policy, sandbox)
    finally:
        await store.close()


async def _run(store: MemoryStore, request: TestRunRequest, now: int, public_url: str,
               mail_settings: MailSettings, slack_webhook_url: str,
               send_policy: SendPolicy, sandbox: Sandbox | None) -> dict[str, Any]:
    clock = VirtualClock(now)
    recording = Recording(by_step=dict(request.responses), now=clock.now_ms,
                          ai_by_step=dict(request.ai_responses))
    parts = _Parts(store, clock, recording, RecordingMailProvider(), public_url, mail_settings,
                   send_policy, slack_webhook_url, sandbox)
    await parts.start()
    contact_id = str((request.contact or {}).get("id") or TEST_CONTACT)
    workflow_id = await store.write(_seed, request, contact_id, now)
    await parts.registry.load()
    indexed = parts.registry.current(workflow_id)
    assert indexed is not None
    event = {"id": None, "name": request.event.get("name") or "test.run",
             "contact_id": contact_id, "properties": request.event.get("properties") or {},
             "timestamp": format_ms(now), "received_at": format_ms(now), "message_id": None}
    started = new_run(indexed, contact_id, {"type": "test", "event": event}, now)
    await store.write(lambda tx: tx.runs.insert([started]))
    parts.scheduler.start_new([(started, None)])

    horizon = now + request.horizon_ms
    pending = sorted(((now + after, i, name, properties)
                      for i, (after, name, properties) in enumerate(request.events)),
                     reverse=True)
    deadline = time.monotonic() + MAX_WALL_SECONDS
    stopped = None
    while True:
        await parts.settle()
        current = await store.get_run(PROJECT, started.id)
        assert current is not None
        if current.status in TERMINAL_STATUSES:
            break
        if current.steps_executed >= MAX_STEPS:
            stopped = "step_limit"
            break
        if time.monotonic() > deadline:
            stopped = "time_limit"
            break
        candidates = [t for t in (parts.due.next_due, pending[-1][0] if pending else None)
                      if t is not None]
        next_at = min(candidates) if candidates else None
        if next_at is None or next_at > horizon:
            clock.set(horizon)
            break
        clock.set(next_at)
        while pending and pending[-1][0] <= clock.now_ms():
            _, _, name, properties = pending.pop()
            await parts.ingest.ingest(PROJECT, [IncomingEvent(name, contact_id, properties)])
    final = await store.get_run(PROJECT, started.id)
    trace = await store.run_trace(started.id)
    messages = await store.read(lambda tx: tx.messages.page(
        PROJECT, contact_id=None, channel=None, status=None, run_id=None, before=None,
        limit=MAX_STEPS).items)
    assert final is not None
    ended = final.status in TERMINAL_STATUSES
    return {
        "status": final.status.value,
        "run": {"vars": final.vars, "error": final.error, "exit_reason": final.exit_reason,
                "wait": final.wait.to_json() if final.wait else None,
                "current_step_id": None if ended else final.current_step_id},
        "trace": [{"step_id": e.step_id, "type": e.type, "status": e.status,
                   "at": format_ms(e.started_at), "finished_at": format_ms(e.finished_at),
                   "outcome": e.outcome, "branch": e.branch, "input": e.input,
                   "output": e.output, "error": e.error} for e in trace],
        "effects": _effects(recording, messages),
        "ends_at": format_ms(final.completed_at if ended and final.completed_at else horizon),
        "stopped": stopped,
    }


def _seed(tx: Any, request: TestRunRequest, contact_id: str, now: int) -> str:
    """The throwaway store's contents: the workflow (active), the contact, the templates and
    audiences. The copies get ids of their own, so the definition names them by name."""
    names, audience_names = {}, {}
    for template in request.templates:
        tx.templates.create(project_id=PROJECT, name=template.name, channel=template.channel,
                            content=copy.deepcopy(template.content), now=now)
        names[template.id] = template.name
    for audience in request.audiences:
        tx.audiences.create(project_id=PROJECT, name=audience.name,
                            description=audience.description,
                            filter=copy.deepcopy(audience.filter), now=now)
        audience_names[audience.id] = audience.name
    definition = copy.deepcopy(request.definition)
    for step in definition["steps"]:
        config = step.get("config") or {}
        if config.get("template") in names:
            config["template"] = names[config["template"]]
        if config.get("audience") in audience_names:
            config["audience"] = audience_names[config["audience"]]
    patch = {k: v for k, v in (request.contact or {}).items() if k != "id"}
    tx.contacts.upsert(PROJECT, contact_id, patch, now)
    return tx.workflows.create(project_id=PROJECT, name=request.name, description="",
                               status=WorkflowStatus.ACTIVE, definition=definition, issues=[],
                               now=now).id


def _effects(recording: Recording, messages: list[Any]) -> list[dict[str, Any]]:
    effects: list[tuple[int, int, dict[str, Any]]] = []
    for i, call in enumerate(recording.http_calls):
        body: Any = call.body.decode("utf-8", "replace") if call.body else None
        effects.append((call.at or 0, i, {
            "kind": "webhook" if "webhook-signature" in {h.lower() for h in call.headers}
            else "http_request", "step_id": call.step_id, "at": format_ms(call.at),
            "method": call.method, "url": call.url, "headers": call.headers, "body": body}))
    for i, ai_call in enumerate(recording.ai_calls):
        effects.append((ai_call.at or 0, len(recording.http_calls) + i, {
            "kind": "ai", "step_id": ai_call.step_id, "at": format_ms(ai_call.at),
            "model": ai_call.request.model, "messages": list(ai_call.request.messages),
            "json": ai_call.request.json_schema is not None}))
    calls = len(recording.http_calls) + len(recording.ai_calls)
    # The page is newest first: reversed, messages of the same virtual moment keep the order
    # they were made in.
    for i, message in enumerate(sorted(reversed(messages), key=lambda m: m.created_at)):
        effects.append((message.created_at, calls + i, {
            "kind": message.channel, "step_id": message.step_id,
            "at": format_ms(message.created_at), "to": message.recipients,
            **_what_is_sent(message), "status": message.status.value}))
    return [effect for _, _, effect in sorted(effects, key=lambda e: (e[0], e[1]))]


def _what_is_sent(message: Any) -> dict[str, Any]:
    """A message's content as its channel has it."""
    content = message.content
    if message.channel == "email":
        return {"subject": message.subject, "text": content.get("text"),
                "html": content.get("html")}
    if message.channel == "push":
        return {"title": message.subject, "body": message.body, "data": content.get("data")}
    if message.channel == "slack":
        return {"text": message.body, "blocks": content.get("blocks")}
    return {"body": message.body}


async def templates_for(store: Store, project_id: str, definition: dict[str, Any]
                        ) -> list[Template]:
    """The project's templates a definition names (by id or name), to copy into a test run."""
    refs = {ref for _, _, ref in template_refs(definition)}
    return await _named(store, refs, lambda tx, ref: tx.templates.get(project_id, ref))


async def audiences_for(store: Store, project_id: str, definition: dict[str, Any]
                        ) -> list[Audience]:
    """The project's audiences a definition names (by id or name), to copy into a test run."""
    refs = {ref for _, _, ref in audience_refs(definition)}
    return await _named(store, refs, lambda tx, ref: tx.audiences.get(project_id, ref))


async def _named(store: Store, refs: set[str], get: Callable[[Any, str], Any]) -> list[Any]:
    """What each of `refs` names (several refs may name one object: it is listed once)."""
    def read(tx: Any) -> list[Any]:
        found = {}
        for ref in refs:
            named = get(tx, ref)
            if named is not None:
                found[named.id] = named
        return list(found.values())

    return await store.read(read) if refs else []


def parse_events(raw: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, Any]]]:
    if len(raw) > MAX_EVENTS:
        raise ValidationError([Problem("events", f"at most {MAX_EVENTS} events")])
    events = []
    for i, item in enumerate(raw):
        try:
            after = parse_duration(item.get("after") or "PT0S")
        except ValueError as exc:
            raise ValidationError([Problem(f"events[{i}].after", str(exc),
                                           "invalid_duration")]) from None
        events.append((after, item["name"], item.get("properties") or {}))
    return events


