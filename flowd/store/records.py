"""Records the store hands out (plain dataclasses and enums: never rows), their JSON shapes in
the API contract, and the store's own exceptions."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from flowd.timeutil import format_ms
from flowd.waits import EventWaitSpec, Wait, Wake


class StoreError(Exception):
    """The database cannot be used (not a database, unreadable, a schema from a newer flowd):
    the message says why."""


class NameTaken(Exception):
    """Another object of the project already has this name."""


class RunPreempted(Exception):
    """The run changed under the engine (cancelled, exited, deleted): its step is not recorded."""


class LastAdminKey(Exception):
    """Revoking this key would leave its project without an active admin key, and with that
    nobody could make or revoke its keys through the API again."""

    def __init__(self, key_id: str, project_id: str) -> None:
        super().__init__("this is the project's last active admin key; "
                         "create another admin key first")
        self.key_id = key_id
        self.project_id = project_id


class Role(str, Enum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    INGEST = "ingest"


@dataclass(frozen=True)
class ApiKey:
    id: str
    project_id: str
    role: Role
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "project": self.project_id, "role": self.role.value,
                "name": self.name, "prefix": self.prefix,
                "created_at": format_ms(self.created_at)}


@dataclass(frozen=True)
class Session:
    """A browser's sign-in with an API key: the key's project and role, until `expires_at`.
    Only the hash of its token is stored."""

    token_hash: str
    key_id: str
    project_id: str
    role: Role
    created_at: int
    expires_at: int


DEFAULT_SUBSCRIBED = {"email": True, "sms": True, "push": True}


@dataclass
class Contact:
    id: str
    created_at: int
    updated_at: int
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    subscribed: dict[str, bool] = field(default_factory=lambda: dict(DEFAULT_SUBSCRIBED))
    push_tokens: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "phone": self.phone,
                "timezone": self.timezone, "traits": self.traits, "tags": self.tags,
                "subscribed": self.subscribed, "push_tokens": self.push_tokens,
                "created_at": format_ms(self.created_at), "updated_at": format_ms(self.updated_at)}


class ContactChange(NamedTuple):
    """What one upsert did to a contact, worked out where the change is made (the store), so
    contact events say exactly what changed. `changed` names the changed fields as a condition
    would address them: "email", "traits.plan", "subscribed.email", "tags"."""
    contact_id: str
    created: bool
    changed: list[str]
    tags_added: list[str]
    tags_removed: list[str]


class Upserted(NamedTuple):
    """A contact upsert's result: three fields, so the old `contact, created = …` fails loudly
    rather than reading the change as `created`."""
    contact: Contact
    created: bool
    change: ContactChange


@dataclass
class Event:
    id: str
    project_id: str
    name: str
    contact_id: str | None
    properties: dict[str, Any]
    timestamp: int
    received_at: int
    message_id: str | None
    runs_started: list[str] = field(default_factory=list)
    runs_resumed: list[str] = field(default_factory=list)
    runs_exited: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "contact_id": self.contact_id,
                "properties": self.properties, "timestamp": format_ms(self.timestamp),
                "received_at": format_ms(self.received_at), "message_id": self.message_id}


@dataclass(frozen=True)
class Page:
    """One page of a newest-first listing; `next_before` is the position to continue from."""

    items: list[Any]
    next_before: int | None


def encode_cursor(position: int | None) -> str | None:
    if position is None:
        return None
    return base64.urlsafe_b64encode(f"p{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raises ValueError for anything this server did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("is not a cursor this server returned") from None
    if not raw.startswith("p") or not raw[1:].isdigit():
        raise ValueError("is not a cursor this server returned")
    return int(raw[1:])


class WorkflowStatus(str, Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


@dataclass
class Workflow:
    id: str
    project_id: str
    name: str
    description: str
    status: WorkflowStatus
    version: int
    definition: dict[str, Any]     # {"trigger", "settings", "steps"} of `version`
    issues: list[dict[str, Any]]
    created_at: int
    updated_at: int
    hook_generation: int = 1       # in its webhook trigger's URL; rotating bumps it

    def to_json(self, *, with_steps: bool = True) -> dict[str, Any]:
        body = {"id": self.id, "name": self.name, "description": self.description,
                "status": self.status.value, "version": self.version,
                "trigger": self.definition["trigger"], "settings": self.definition["settings"]}
        if with_steps:
            body["steps"] = self.definition["steps"]
        body["issues"] = self.issues
        body["created_at"] = format_ms(self.created_at)
        body["updated_at"] = format_ms(self.updated_at)
        return body


@dataclass(frozen=True)
class WorkflowVersion:
    workflow_id: str
    version: int
    definition: dict[str, Any]
    issues: list[dict[str, Any]]
    created_at: int


class RunStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PAUSED)
TERMINAL_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass
class Run:
    id: str
    project_id: str
    workflow_id: str
    workflow_version: int
    contact_id: str | None
    status: RunStatus
    current_step_id: str | None
    trigger: dict[str, Any]
    created_at: int
    updated_at: int
    due_at: int | None = None
    wait: Wait | None = None
    wake: Wake | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    steps_executed: int = 0
    trace_len: int = 0
    error: dict[str, Any] | None = None
    exit_reason: str | None = None
    parent_run_id: str | None = None
    completed_at: int | None = None
    # Derived from the trace (see Runs.step_state), kept in memory while the engine drives the
    # run: writing them with every step would rewrite a growing blob per step.
    outputs: dict[str, Any] = field(default_factory=dict)   # step id -> latest output
    visits: dict[str, int] = field(default_factory=dict)    # step id -> times entered
    # The status the stored row has, which the next save expects (None: as `status`).
    stored_status: RunStatus | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "workflow_id": self.workflow_id,
                "workflow_version": self.workflow_version, "contact_id": self.contact_id,
                "status": self.status.value, "current_step_id": self.current_step_id,
                "wait": None if self.wait is None else self.wait.to_json(),
                "trigger": self.trigger, "vars": self.vars, "error": self.error,
                "exit_reason": self.exit_reason, "parent_run_id": self.parent_run_id,
                "created_at": format_ms(self.created_at), "updated_at": format_ms(self.updated_at),
                "completed_at": format_ms(self.completed_at)}


@dataclass
class TraceEntry:
    seq: int
    step_id: str
    type: str
    status: str              # ok | failed | skipped | waiting
    attempt: int
    visit: int
    started_at: int
    finished_at: int | None = None
    outcome: str | None = None
    branch: str | None = None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        duration = None if self.finished_at is None else self.finished_at - self.started_at
        return {"seq": self.seq, "step_id": self.step_id, "type": self.type, "status": self.status,
                "outcome": self.outcome, "branch": self.branch, "attempt": self.attempt,
                "started_at": format_ms(self.started_at), "finished_at": format_ms(self.finished_at),
                "duration_ms": duration, "input": self.input, "output": self.output,
                "error": self.error}


@dataclass(frozen=True)
class EventWait:
    """A registered event wait: which run, and what ends it."""

    run_id: str
    spec: EventWaitSpec


CHANNELS = ("email", "sms", "push")             # of templates and subscriptions
MESSAGE_CHANNELS = (*CHANNELS, "slack")         # of message records


@dataclass
class Template:
    id: str
    project_id: str
    name: str
    channel: str
    content: dict[str, Any]       # the channel's fields: email subject/html/text; sms body; …
    created_at: int
    updated_at: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "channel": self.channel, **self.content,
                "created_at": format_ms(self.created_at), "updated_at": format_ms(self.updated_at)}


@dataclass
class Audience:
    """A named filter over the project's contacts (flowd.audiences), evaluated when asked."""

    id: str
    project_id: str
    name: str
    description: str
    filter: Any                   # a condition over the contact, as given
    created_at: int
    updated_at: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description,
                "filter": self.filter, "created_at": format_ms(self.created_at),
                "updated_at": format_ms(self.updated_at)}


class AudienceTooCostly(Exception):
    """Evaluating a filter would check more contacts one by one in Python than allowed (the
    parts SQL cannot decide): `needed` is how many it would check at least."""

    def __init__(self, needed: int, limit: int, parts: tuple[str, ...]) -> None:
        super().__init__(f"the filter needs at least {needed:,} contacts checked one by one, "
                         f"more than the {limit:,} allowed")
        self.needed = needed
        self.limit = limit
        self.parts = parts


@dataclass
class Approval:
    """A human decision a run waits for (the `approval` step)."""

    id: str
    project_id: str
    run_id: str
    workflow_id: str
    step_id: str
    contact_id: str | None
    message: str
    approvers: list[str]
    created_at: int
    expires_at: int
    decided_at: int | None = None
    decision: str | None = None          # approved | rejected
    comment: str | None = None
    decided_by: str | None = None

    def status(self, now: int) -> str:
        if self.decision is not None:
            return self.decision
        return "expired" if now >= self.expires_at else "pending"

    def to_json(self, now: int) -> dict[str, Any]:
        return {"id": self.id, "status": self.status(now), "message": self.message,
                "workflow_id": self.workflow_id, "run_id": self.run_id, "step_id": self.step_id,
                "contact_id": self.contact_id, "approvers": self.approvers,
                "created_at": format_ms(self.created_at), "expires_at": format_ms(self.expires_at),
                "decision": self.decision, "comment": self.comment,
                "decided_by": self.decided_by, "decided_at": format_ms(self.decided_at)}


class MessageStatus(str, Enum):
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    SUPPRESSED = "suppressed"


@dataclass
class Message:
    id: str
    project_id: str
    channel: str
    status: MessageStatus
    recipients: list[str]
    subject: str | None
    body: str | None
    content: dict[str, Any]        # what sending it again needs (html, headers, links, …)
    created_at: int
    contact_id: str | None = None
    provider_message_id: str | None = None
    run_id: str | None = None
    step_id: str | None = None
    workflow_id: str | None = None
    error: dict[str, Any] | None = None
    sent_at: int | None = None

    def to_json(self, *, full: bool = False) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "id": self.id, "channel": self.channel, "to": ", ".join(self.recipients),
            "subject": self.subject, "body": self.body, "status": self.status.value,
            "provider_message_id": self.provider_message_id, "run_id": self.run_id,
            "step_id": self.step_id, "contact_id": self.contact_id, "error": self.error,
            "created_at": format_ms(self.created_at), "sent_at": format_ms(self.sent_at)}
        if full:
            shown["html"] = self.content.get("html")
            shown["text"] = self.content.get("text")
        return shown


class BulkJobStatus(str, Enum):
    APPROVAL = "approval"     # waits for a second action (PATCH approve) before anything starts
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"


BULK_JOB_ENDED = (BulkJobStatus.FINISHED, BulkJobStatus.CANCELLED, BulkJobStatus.FAILED)


class BulkSource(str, Enum):
    """Where a bulk job's contacts come from; each source is read by position, in chunks."""

    CONTACT_IDS = "contact_ids"   # the job's own list, stored with it
    AUDIENCE = "audience"         # an audience's members, listed when the job was created


@dataclass
class BulkJob:
    id: str
    project_id: str
    workflow_id: str
    status: BulkJobStatus
    source: BulkSource
    source_ref: str | None         # the audience id of an audience source
    payload: dict[str, Any]
    require_approval: bool
    total: int
    created_at: int
    updated_at: int
    started: int = 0
    skipped: int = 0
    cursor: int = 0                # the last position of the source already done
    error: dict[str, Any] | None = None
    finished_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "workflow_id": self.workflow_id, "status": self.status.value,
                "source": self.source.value,
                "audience": self.source_ref if self.source is BulkSource.AUDIENCE else None,
                "require_approval": self.require_approval, "total": self.total,
                "started": self.started, "skipped": self.skipped, "error": self.error,
                "created_at": format_ms(self.created_at), "updated_at": format_ms(self.updated_at),
                "finished_at": format_ms(self.finished_at)}


class AlertEvent(str, Enum):
    """What an alert webhook may subscribe to."""

    RUN_FAILED = "run.failed"
    MESSAGE_BOUNCED = "message.bounced"
    APPROVAL_REQUESTED = "approval.requested"
    WORKFLOW_FAILING = "workflow.failing"


class DeliveryStatus(str, Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass
class AlertSubscription:
    """An alert webhook: where a project's alerts of the chosen types are POSTed, and the
    secret they are signed with (kept so that the server can sign; shown once, on create)."""

    id: str
    project_id: str
    url: str
    events: list[str]
    secret: str
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events),
                "created_at": format_ms(self.created_at)}


@dataclass
class AlertDelivery:
    """One alert for one subscription. `body` is the exact JSON sent, fixed when it is
    recorded, so every attempt sends the same bytes under the same webhook-id (its id)."""

    id: str
    subscription_id: str
    project_id: str
    event_type: str
    body: str
    status: DeliveryStatus
    created_at: int
    next_attempt_at: int | None
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "subscription_id": self.subscription_id,
                "event_type": self.event_type, "status": self.status.value,
                "attempts": self.attempts, "last_status_code": self.last_status_code,
                "last_error": self.last_error, "created_at": format_ms(self.created_at),
                "delivered_at": None if self.delivered_at is None
                else format_ms(self.delivered_at),
                "next_attempt_at": None if self.next_attempt_at is None
                else format_ms(self.next_attempt_at)}


@dataclass
class DueDelivery:
    """A pending delivery with what sending it needs from its subscription."""

    delivery: AlertDelivery
    url: str
    secret: str


@dataclass
class StepCounts:
    """A workflow version's funnel (Runs.step_counts): per step id, the runs that entered it,
    those waiting on it now, and its trace entries that left by each branch label."""

    entered: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    branches: dict[str, dict[str, int]] = field(default_factory=dict)
    # Run totals by status: of the whole workflow, and of the version asked about.
    workflow_runs: dict[str, int] = field(default_factory=dict)
    version_runs: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AiProjectSettings:
    """A project's own language model (PUT /v1/settings/ai). Empty text: not given (the
    server's [ai] value, or the provider's default, applies). The key is left out of repr()
    so that no log line or traceback can show it."""

    project_id: str
    provider: str
    base_url: str
    model: str
    api_key: str = field(repr=False)
    updated_at: int = 0
