"""Webhook (and form) triggers: a workflow's capability URL, and a delivery to it turned into a
run.

The URL is `<public url>/v1/hooks/<workflow id>.<generation>.<MAC>`. The MAC is HMAC-SHA256
under the server's `hooks` key (kept in the database, so URLs survive restarts), all 256 bits:
a URL cannot be guessed or forged, and nothing about it is stored. The generation is a column
of the workflow; rotating bumps it, and every earlier URL is then a 404.

A delivery is stored as event `webhook.received` (so it is listed with the project's events,
and its `webhook-id` is de-duplicated by the events' `message_id`) together with the run it
starts, in one unit. That event starts only the hook's own workflow: the URL addresses one
workflow, so it does not go through the event trigger index, exit rules or waits.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from typing import Any, Callable, Mapping, NamedTuple

from flowd.clock import Clock
from flowd.contact_fields import CONTACT_ID
from flowd.definitions import WebhookSpec
from flowd.effects.signing import SignatureRejected, verify
from flowd.errors import Conflict, NotFound, Problem, Unauthorized, ValidationError
from flowd.ids import new_id
from flowd.runs import blocking_run, new_run
from flowd.store import Store, Transaction
from flowd.store.records import Event, Run, RunStatus, Workflow, WorkflowStatus
from flowd.triggers import IndexedWorkflow

KEY_NAME = "hooks"
EVENT_NAME = "webhook.received"
MAX_DELIVERY_ID = 150   # within the events' 200-character message_id, after the workflow id
_MAX_GENERATION_DIGITS = 9
_RUNNING = (WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED)


def _mac(key: bytes, workflow_id: str, generation: int) -> str:
    digest = hmac.new(key, f"hook\0{workflow_id}\0{generation}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def hook_token(key: bytes, workflow_id: str, generation: int) -> str:
    return f"{workflow_id}.{generation}.{_mac(key, workflow_id, generation)}"


def read_hook_token(key: bytes, token: str) -> tuple[str, int] | None:
    """(workflow id, generation) of a token this server made, else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    workflow_id, generation, mac = parts
    # One spelling per generation (no leading zeros), so that a token has exactly one form.
    if not (generation.isascii() and generation.isdigit()
            and len(generation) <= _MAX_GENERATION_DIGITS and generation == str(int(generation))):
        return None
    if not (workflow_id.isascii() and mac.isascii()):
        return None     # compare_digest takes ASCII text only; ours always is
    expected = _mac(key, workflow_id, int(generation))
    return (workflow_id, int(generation)) if hmac.compare_digest(mac, expected) else None


class Target(NamedTuple):
    """The workflow a valid hook URL names, as deliveries start it."""

    workflow_id: str
    generation: int
    indexed: IndexedWorkflow

    @property
    def spec(self) -> WebhookSpec:
        spec = self.indexed.compiled.webhook
        assert spec is not None
        return spec


class Delivered(NamedTuple):
    run_id: str | None     # None: the workflow's reentry rule kept the contact out
    event_id: str
    duplicate: bool        # this webhook-id was delivered before: its first answer

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "event_id": self.event_id, "duplicate": self.duplicate}


def contact_at(properties: dict[str, Any], path: tuple[str, ...]) -> str:
    """The contact id at `path` in a delivery's properties (422 when absent or unusable)."""
    value: Any = properties
    for key in path:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise ValidationError([Problem(".".join(path), "the body has no contact id here "
                                           "(the trigger's contact_id_path)",
                                           "missing_contact_id")])
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    problems: list[Problem] = []
    if not isinstance(value, str) or CONTACT_ID.validate(value, ".".join(path), problems) != value:
        raise ValidationError([Problem(".".join(path), "the contact id here must be 1–200 "
                                       "printable characters, or an integer",
                                       "invalid_contact_id")])
    return value


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The sender's id of this delivery (`webhook-id`), the same on its retries."""
    value = headers.get("webhook-id")
    if value is None:
        return None
    if not (0 < len(value) <= MAX_DELIVERY_ID and value.isascii() and value.isprintable()):
        raise ValidationError([Problem("webhook-id", f"must be 1–{MAX_DELIVERY_ID} printable "
                                       "ASCII characters", "invalid_webhook_id")])
    return value


class Hooks:
    def __init__(self, store: Store, clock: Clock,
                 indexed: Callable[[str], IndexedWorkflow | None],
                 on_started: Callable[[list[tuple[Run, dict[str, Any] | None]]], None],
                 public_url: Callable[[], str]) -> None:
        self._store = store
        self._clock = clock
        self._indexed = indexed
        self._on_started = on_started
        self._public_url = public_url
        self._key = b""

    async def start(self) -> None:
        now = self._clock.now_ms()
        self._key = await self._store.write(lambda tx: tx.secrets.server_key(
            KEY_NAME, now, lambda: secrets.token_bytes(32)))

    # -- the URL, in the workflow's JSON ------------------------------------------------------

    def url(self, workflow: Workflow) -> str:
        token = hook_token(self._key, workflow.id, workflow.hook_generation)
        return f"{self._public_url().rstrip('/')}/v1/hooks/{token}"

    def present(self, workflow: Workflow, shown: dict[str, Any]) -> dict[str, Any]:
        """`shown` (the workflow's JSON) with `trigger.url` when its trigger is a webhook."""
        trigger = shown.get("trigger") or {}
        if trigger.get("type") == "webhook":
            # A copy: the stored definition is shared with the registry's caches.
            shown["trigger"] = {**trigger, "url": self.url(workflow)}
        return shown

    async def rotate(self, project_id: str, workflow_id: str) -> Workflow:
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> Workflow:
            workflow = tx.workflows.get(project_id, workflow_id)
            if workflow is None:
                raise NotFound("no such workflow")
            if workflow.definition["trigger"]["type"] != "webhook":
                raise Conflict("the workflow's trigger is not a webhook: it has no URL to rotate")
            tx.workflows.rotate_hook(workflow_id, now)
            return dataclasses.replace(workflow, hook_generation=workflow.hook_generation + 1,
                                       updated_at=now)

        return await self._store.write(unit)

    # -- a delivery ---------------------------------------------------------------------------

    def parse(self, token: str) -> tuple[str, int]:
        """The workflow and generation a URL's token names (404 if this server did not make
        it). Checked before the body is read: a forged URL costs no upload."""
        found = read_hook_token(self._key, token)
        if found is None:
            raise NotFound("no such hook")
        return found

    async def target(self, workflow_id: str, generation: int) -> Target:
        """The workflow, if this URL is still its hook (404) and it takes deliveries (409)."""
        workflow = await self._store.read(lambda tx: tx.workflows.find(workflow_id))
        _check(workflow, generation)
        assert workflow is not None
        indexed = self._indexed(workflow_id)
        if indexed is None or indexed.version != workflow.version:
            raise Conflict("the workflow is being changed; try again")
        return Target(workflow_id, generation, indexed)

    def check_signature(self, target: Target, headers: Mapping[str, str], body: bytes) -> None:
        """401 unless the trigger is unsigned or the delivery is signed with its secret."""
        secret = target.spec.secret
        if secret is None:
            return
        try:
            verify(secret, headers, body, self._clock.now_ms() / 1000)
        except SignatureRejected as exc:
            raise Unauthorized(str(exc)) from None

    async def deliver(self, target: Target, properties: dict[str, Any],
                      webhook_id: str | None) -> Delivered:
        """Store the delivery and start its run (reentry rules apply), in one unit; a
        `webhook-id` delivered to this workflow before answers as it did then."""
        path = target.spec.contact_path
        contact = contact_at(properties, path) if path is not None else None
        indexed = target.indexed
        project_id = indexed.project_id
        message_id = f"{target.workflow_id}/{webhook_id}" if webhook_id is not None else None
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> Delivered:
            current = tx.workflows.find(target.workflow_id)
            _check(current, target.generation)
            assert current is not None
            if current.version != indexed.version:
                raise Conflict("the workflow changed while this delivery was checked; send it "
                               "again")
            if message_id is not None:
                first = tx.events.find_by_message_id(project_id, message_id)
                if first is not None:
                    return Delivered(first.runs_started[0] if first.runs_started else None,
                                     first.id, True)
            if contact is not None:
                tx.contacts.ensure(project_id, [contact], now)
            event = Event(id=new_id("evt", now), project_id=project_id, name=EVENT_NAME,
                          contact_id=contact, properties=properties, timestamp=now,
                          received_at=now, message_id=message_id)
            run = None
            if blocking_run(tx, indexed, contact) is None:
                run = new_run(indexed, contact, {"type": "webhook", "event": event.to_json()}, now)
                tx.runs.insert([run])
                event.runs_started = [run.id]
                if run.status is RunStatus.PENDING:   # a paused workflow's run waits for resume
                    found = tx.contacts.get(project_id, contact) if contact is not None else None
                    started = [(run, found.to_json() if found else None)]
                    tx.after_commit.append(lambda: self._on_started(started))
            tx.events.insert([event])
            return Delivered(run.id if run else None, event.id, False)

        return await self._store.write(unit)


def _check(workflow: Workflow | None, generation: int) -> None:
    if (workflow is None or workflow.hook_generation != generation
            or workflow.definition["trigger"]["type"] != "webhook"):
        raise NotFound("no such hook")   # deleted, rotated, or no longer a webhook trigger
    if workflow.status not in _RUNNING:
        raise Conflict(f"the workflow is {workflow.status.value}; only an active (or paused) "
                       "workflow takes deliveries")
