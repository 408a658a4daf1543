"""The store's interface: every verb the rest of flowd may use, by table family, and the async
`Store` that runs units of work. Nothing outside `flowd.store` sees a connection, a cursor or a
row; it gets the records of `flowd.store.records` back.

A *unit of work* is a function `unit(tx) -> result` over a `Transaction`. `Store.write(unit)`
runs it as one unit of the group commit (all of it or none of it, with everything queued
beside it in one transaction) and resolves once it is durable; work that must wait for that —
waking the engine, telling the scheduler, refreshing the trigger index — goes in
`tx.after_commit`, which runs on the event loop after the commit and before the caller resumes.
`Store.read(query)` runs `query(tx)` on a read connection.

The families are abstract here; `flowd.store.sqlite` implements them. A second
implementation (PostgreSQL, or the dry run's throwaway store) subclasses that one where its
dialect differs.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

from flowd.metrics import StorageMetrics
from flowd.store.records import (
    AiProjectSettings,
    AlertDelivery,
    AlertSubscription,
    ApiKey,
    Approval,
    Audience,
    BulkJob,
    BulkJobStatus,
    Contact,
    DueDelivery,
    Event,
    EventWait,
    Message,
    Page,
    Role,
    Run,
    RunStatus,
    Session,
    StepCounts,
    Template,
    TraceEntry,
    Upserted,
    Workflow,
    WorkflowStatus,
    WorkflowVersion,
)
from flowd.waits import EventWaitSpec, WaitKind, Wake

if TYPE_CHECKING:
    from flowd.audiences import AudienceQuery

T = TypeVar("T")


@dataclass
class Claim:
    """A due run the scheduler takes, as read by `Runs.claimable` and then moved on."""

    run: Run
    read_status: RunStatus          # the stored row's status and updated_at when it was read:
    read_updated_at: int            # the claim takes the run only if both are unchanged
    ended_wait: TraceEntry | None = None   # its timer ended a wait: the wait's final entry
    ended_event_wait: bool = False         # …a wait_for_event's, whose registration goes


class Keys(abc.ABC):
    """Projects and API keys (stored as hashes only)."""

    LOOKUP_LENGTH = 16   # hex digits of a key's hash that find it

    @abc.abstractmethod
    def ensure_project(self, project_id: str, now: int) -> None: ...

    @abc.abstractmethod
    def create(self, *, project_id: str, role: Role, name: str, key_hash: str, prefix: str,
               now: int) -> ApiKey: ...

    @abc.abstractmethod
    def ensure_admin(self, *, key_hash: str, prefix: str, name: str, now: int) -> ApiKey:
        """Make `key_hash` an active admin key of project `default` (idempotent)."""

    @abc.abstractmethod
    def find_active(self, lookup: str) -> list[tuple[ApiKey, str]]:
        """Active keys whose hash starts with `lookup`, each with its full hash: the caller
        compares that itself, in constant time."""

    @abc.abstractmethod
    def count(self) -> int: ...

    @abc.abstractmethod
    def page(self, *, project_id: str | None, before: int | None, limit: int) -> Page:
        """Active keys, newest first; `project_id` None: every project's (the command line)."""

    @abc.abstractmethod
    def revoke(self, *, key_id: str, project_id: str | None, now: int) -> bool:
        """True when an active key was revoked. Raises LastAdminKey, revoking nothing, for the
        last active admin key of its project."""


class Sessions(abc.ABC):
    """Browser sessions made with an API key, by the hash of their token."""

    @abc.abstractmethod
    def create(self, session: Session) -> None: ...

    @abc.abstractmethod
    def find(self, token_hash: str, now: int) -> Session | None:
        """The session, if it has not expired and its key is not revoked; its project and role
        are the key's."""

    @abc.abstractmethod
    def delete(self, token_hash: str) -> bool: ...

    @abc.abstractmethod
    def delete_expired(self, now: int, limit: int) -> int:
        """Delete at most `limit` sessions that expired; how many were."""


class Contacts(abc.ABC):
    @abc.abstractmethod
    def get(self, project_id: str, contact_id: str) -> Contact | None: ...

    @abc.abstractmethod
    def get_many_json(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Contacts by (project id, contact id), as JSON; missing ones are left out."""

    @abc.abstractmethod
    def upsert(self, project_id: str, contact_id: str, patch: dict[str, Any],
               now: int) -> Upserted:
        """Create or update by the contract's rules; returns the contact, whether it was
        created, and what changed (for contact events)."""

    @abc.abstractmethod
    def ensure(self, project_id: str, contact_ids: Iterable[str], now: int, *,
               report: bool = False) -> list[str]:
        """Contacts named by events or fired runs exist (unknown ones with only their id).
        With `report`, returns the ids it created (in the given order); else [] (it costs a
        little more, so only callers that emit `contact.created` ask)."""

    @abc.abstractmethod
    def delete(self, project_id: str, contact_id: str) -> bool: ...

    @abc.abstractmethod
    def page(self, project_id: str, *, email: str | None, tag: str | None,
             before: int | None, limit: int) -> Page: ...


class Events(abc.ABC):
    @abc.abstractmethod
    def find_by_message_id(self, project_id: str, message_id: str) -> Event | None: ...

    @abc.abstractmethod
    def insert(self, events: list[Event]) -> None:
        """Store events in order, with what ingesting each did (for duplicates' answers)."""

    @abc.abstractmethod
    def page(self, project_id: str, *, name: str | None, contact_id: str | None,
             before: int | None, limit: int) -> Page: ...

    @abc.abstractmethod
    def since(self, project_id: str, contact_id: str | None, since: int,
              limit: int) -> list[Event]:
        """Events received at or after `since` (of one contact, or of the project), oldest
        first."""


class Runs(abc.ABC):
    """Runs, their step trace, and the event waits ingest matches events against."""

    @abc.abstractmethod
    def ended_by_workflow(self, project_id: str, since: int) -> list[tuple[str, str, int, int]]:
        """Per workflow with runs that ended (completed, failed, cancelled) at or after
        `since`: (workflow id, its name, runs ended, of which failed)."""

    @abc.abstractmethod
    def insert(self, runs: list[Run]) -> None: ...

    @abc.abstractmethod
    def insert_new(self, runs: list[Run]) -> list[Run]:
        """Insert the runs whose id is not taken yet (runs with deterministic ids, such as a
        schedule's fires); returns those inserted. Inserting one again is a no-op."""

    @abc.abstractmethod
    def get(self, project_id: str | None, run_id: str) -> Run | None: ...

    @abc.abstractmethod
    def claimable(self, run_ids: list[str], now: int) -> list[Run]:
        """The runs among `run_ids` that are due and not taken (pending or waiting), each with
        its outputs and visits (see step_state). A read: `claim` then takes them."""

    @abc.abstractmethod
    def claim(self, claims: list[Claim]) -> list[Run]:
        """Take the claimed runs whose stored row still has the status and `updated_at` it had
        when claimable() read it, writing their new state (moved on in memory meanwhile); the
        others are left alone. Returns the runs taken."""

    @abc.abstractmethod
    def save(self, run: Run, *, expect: RunStatus) -> None:
        """Write the run's state; RunPreempted when the stored row is no longer in `expect`.
        A terminal status goes through `end` instead."""

    @abc.abstractmethod
    def end(self, run: Run, *, expect: Iterable[RunStatus], waiting: bool = True) -> bool:
        """The one way a run ends (completed, failed, cancelled; an exit is a completion):
        write its final state if the stored row is in one of `expect`, and (unless the caller
        knows the run has no wait open: `waiting=False`) drop its event wait and close a trace
        entry left waiting. False when the row was not in `expect`. (The orchestration issue
        wakes a waiting parent here.)"""

    @abc.abstractmethod
    def write_trace(self, run_id: str, entry: TraceEntry, *, replace: bool = False) -> None:
        """Append a trace entry; `replace`: it ends the waiting entry with the same seq."""

    @abc.abstractmethod
    def step_state(self, run_id: str) -> tuple[dict[str, Any], dict[str, int]]:
        """(outputs, visits) rebuilt from the trace: each step's latest output, and how many
        times each step was entered."""

    @abc.abstractmethod
    def trace(self, run_id: str, limit: int = 20_000) -> list[TraceEntry]: ...

    @abc.abstractmethod
    def page(self, project_id: str, *, workflow_id: str | None, status: str | None,
             contact_id: str | None, before: int | None, limit: int) -> Page: ...

    @abc.abstractmethod
    def due(self, until: int, limit: int) -> list[tuple[int, str]]:
        """(due_at, id) of runs due by `until`, earliest first."""

    @abc.abstractmethod
    def recover_running(self, now: int) -> int:
        """At start: runs a crash left `running` become due again."""

    @abc.abstractmethod
    def blocking_entry(self, project_id: str, workflow_id: str, contact_id: str, *,
                       ever: bool) -> str | None:
        """The run that keeps the contact from entering the workflow again: its active one, or
        (`ever`) its latest one."""

    @abc.abstractmethod
    def active_ids(self, project_id: str, *, contact_id: str | None = None,
                   workflow_ids: Iterable[str] | None = None, limit: int | None = None
                   ) -> list[str]:
        """Ids of active runs of a contact and/or of workflows."""

    @abc.abstractmethod
    def release_paused(self, workflow_id: str, now: int) -> list[str]:
        """Paused runs of a workflow become due now; their ids, oldest first."""

    @abc.abstractmethod
    def resume(self, run_id: str, now: int) -> bool:
        """A paused run becomes due now; False unless it was paused."""

    @abc.abstractmethod
    def wake(self, run_id: str, wake: Wake, now: int) -> bool:
        """A waiting (or paused) run's wait ends: due now, `wake` recorded; False when it was
        not waiting or had already been woken."""

    @abc.abstractmethod
    def wake_for(self, run_id: str, kind: WaitKind, ref: str, wake: Wake, now: int) -> bool:
        """Like `wake`, only if the run waits for this very thing: the child run (`child`) or
        the approval (`approval`) `ref` names. No event waits to remove: these are not."""

    @abc.abstractmethod
    def children(self, run_id: str, *, active_only: bool = False,
                 limit: int = 1000) -> list[Run]:
        """The runs this run started (run_workflow), oldest first."""

    @abc.abstractmethod
    def add_event_wait(self, run: Run, spec: EventWaitSpec) -> None: ...

    @abc.abstractmethod
    def remove_event_waits(self, run_ids: list[str]) -> None: ...

    @abc.abstractmethod
    def waited_event_names(self) -> list[tuple[str, str]]:
        """(project id, name pattern) of every registered event wait."""

    @abc.abstractmethod
    def event_waits_for(self, project_id: str, name: str,
                        contact_id: str | None) -> list[EventWait]:
        """Waits an event named `name` of `contact_id` may end: the contact's own, and
        contact-less runs' waits (which match by filter alone)."""

    @abc.abstractmethod
    def status_counts(self, project_id: str) -> dict[str, int]: ...

    @abc.abstractmethod
    def workflow_counts(self, workflow_ids: list[str]) -> dict[str, dict[str, int]]:
        """Per workflow id (every one given): {"active": runs pending, running, waiting or
        paused, "failed": failed runs}, in one grouped read."""

    @abc.abstractmethod
    def export_bounds(self, project_id: str, workflow_id: str, *,
                      statuses: list[str] | None, run_id: str | None) -> tuple[int, int | None]:
        """(how many runs of the workflow match the filters, the position just past the newest
        of them), read together (None: no run matches). `export_page(before=that)` starts at
        the runs counted and never lists one created later."""

    @abc.abstractmethod
    def export_page(self, project_id: str, workflow_id: str, *, statuses: list[str] | None,
                    run_id: str | None, before: int, limit: int, max_steps: int,
                    trace_limit: int = 20_000) -> Page:
        """Up to `limit` matching runs below position `before`, newest first, each as a
        (Run, trace) pair with its trace oldest first (at most `trace_limit` entries, as
        `trace` gives). A page stops early after the run whose trace brings its entries past
        `max_steps` (it always holds one run), so that long traces keep a page small; the
        steps of a page are read in one query."""

    @abc.abstractmethod
    def step_counts(self, workflow_id: str, version: int) -> StepCounts:
        """The funnel of one version of a workflow: runs on that version that entered each
        step (distinct runs with a trace entry for it), runs waiting on each step now, trace
        entries that left each step by each branch label (a finished entry without a branch:
        `default`; a failure sent on by its `error` branch: `error`), and run totals by status
        (every status, zeros included) of the workflow and of the version."""

    @abc.abstractmethod
    def waiting_at(self, workflow_id: str, version: int) -> dict[str, int]:
        """Runs of a version that are `waiting`, counted by the step they wait on."""

    @abc.abstractmethod
    def move_waiting(self, workflow_id: str, from_version: int, to_version: int,
                     step_map: dict[str, str], limit: int, now: int) -> int:
        """Move up to `limit` runs that are `waiting` on `from_version` at a step of
        `step_map` to `to_version`, at the mapped step (oldest first). Their wait stays as it
        is; the trace entry of the visit they wait in takes the new step's id, since the new
        step is what ends it. Returns how many moved (fewer than `limit`: none are left)."""


class Workflows(abc.ABC):
    """Workflows and their immutable versions."""

    @abc.abstractmethod
    def create(self, *, project_id: str, name: str, description: str, status: WorkflowStatus,
               definition: dict[str, Any], issues: list[dict[str, Any]], now: int) -> Workflow: ...

    @abc.abstractmethod
    def get(self, project_id: str, workflow_id: str) -> Workflow | None: ...

    @abc.abstractmethod
    def update(self, workflow: Workflow, *, name: str, description: str,
               definition: dict[str, Any], issues: list[dict[str, Any]], now: int) -> Workflow:
        """Save edits; a changed definition becomes a new immutable version."""

    @abc.abstractmethod
    def find(self, workflow_id: str) -> Workflow | None:
        """By id alone, whatever its project: for capability URLs (a webhook trigger's),
        which name no project. Never for a request that has an API key."""

    @abc.abstractmethod
    def rotate_hook(self, workflow_id: str, now: int) -> None:
        """Bump the generation in its webhook URL's token: every earlier URL stops working."""

    @abc.abstractmethod
    def set_status(self, workflow_id: str, status: WorkflowStatus, now: int) -> None: ...

    @abc.abstractmethod
    def set_issues(self, workflow_id: str, version: int, issues: list[dict[str, Any]]) -> None:
        """A version's issues, found again (what other objects it names may have changed)."""

    @abc.abstractmethod
    def delete(self, workflow_id: str) -> None:
        """The workflow, its versions, runs, their traces and event waits."""

    @abc.abstractmethod
    def page(self, project_id: str, *, status: str | None, name: str | None,
             before: int | None, limit: int) -> Page: ...

    @abc.abstractmethod
    def versions(self, workflow_id: str) -> list[WorkflowVersion]:
        """Every version, newest first (definitions left empty)."""

    @abc.abstractmethod
    def version(self, workflow_id: str, version: int) -> WorkflowVersion | None: ...

    @abc.abstractmethod
    def running(self, project_id: str) -> list[Workflow]:
        """The project's active and paused workflows, with their current versions."""

    @abc.abstractmethod
    def all_current(self) -> list[Workflow]:
        """Every workflow with its current version (the trigger index is built from it)."""

    @abc.abstractmethod
    def every(self, project_id: str, limit: int) -> list[Workflow]:
        """Every workflow of the project (archived ones too) with its current version, oldest
        first, at most `limit`: a bundle's export and import."""

    @abc.abstractmethod
    def status_counts(self, project_id: str) -> dict[str, int]: ...

    @abc.abstractmethod
    def name_taken(self, project_id: str, name: str) -> bool:
        """Whether a workflow of the project (archived ones too) has exactly this name."""


class Schedules(abc.ABC):
    """Per schedule-triggered workflow, the instant after which its fires are counted."""

    @abc.abstractmethod
    def since(self, workflow_ids: list[str]) -> dict[str, int]:
        """The stored instants of those workflows that have one."""

    @abc.abstractmethod
    def begin(self, counts: dict[str, int], *, replace: bool) -> None:
        """Start counting at these instants: for workflows without one (`replace` False), or
        over what is stored (a changed schedule)."""

    @abc.abstractmethod
    def fired(self, workflow_id: str, scheduled_at: int) -> bool:
        """Record a fire; False (nothing changes) when one at or after it is recorded."""

    @abc.abstractmethod
    def forget(self, workflow_id: str) -> None:
        """Counting starts afresh the next time the workflow is activated."""


class Secrets(abc.ABC):
    """Per-project secrets: webhook signing secrets, and the language model a project brings
    with its own API key."""

    @abc.abstractmethod
    def valid(self, project_id: str, now: int) -> list[str]:
        """The secrets deliveries are signed with now, newest first."""

    @abc.abstractmethod
    def current(self, project_id: str, now: int, new_secret: Callable[[], str]) -> str:
        """The project's newest secret, created if it has none (with the project, or on the
        first request for it)."""

    @abc.abstractmethod
    def ensure_every_project(self, now: int, new_secret: Callable[[], str]) -> list[str]:
        """Every project without a current secret gets one; their ids. (At start, so that
        signing a delivery only ever reads.)"""

    @abc.abstractmethod
    def rotate(self, project_id: str, now: int, grace_ms: int,
               new_secret: Callable[[], str]) -> str: ...

    @abc.abstractmethod
    def server_key(self, name: str, now: int, new_key: Callable[[], bytes]) -> bytes:
        """The server's own key `name` (made on first use, kept in the database so that links
        it signed stay valid across restarts)."""

    @abc.abstractmethod
    def ai_settings(self, project_id: str) -> AiProjectSettings | None:
        """The project's own language model settings, if it stored any."""

    @abc.abstractmethod
    def set_ai_settings(self, settings: AiProjectSettings) -> None:
        """Store them, replacing what the project had."""

    @abc.abstractmethod
    def delete_ai_settings(self, project_id: str) -> bool:
        """Forget them; False when there were none."""


class Templates(abc.ABC):
    """Message templates, by id or by name within a project."""

    @abc.abstractmethod
    def create(self, *, project_id: str, name: str, channel: str, content: dict[str, Any],
               now: int) -> Template:
        """Raises NameTaken when the project has a template of that name."""

    @abc.abstractmethod
    def get(self, project_id: str, ref: str) -> Template | None:
        """By id, else by name."""

    @abc.abstractmethod
    def update(self, template: Template, *, name: str, content: dict[str, Any],
               now: int) -> Template:
        """Raises NameTaken when another template has that name."""

    @abc.abstractmethod
    def delete(self, template_id: str) -> None: ...

    @abc.abstractmethod
    def names(self, project_id: str) -> dict[str, str]:
        """Every template of the project: id → name."""

    @abc.abstractmethod
    def every(self, project_id: str, limit: int) -> list[Template]:
        """Every template of the project, oldest first, at most `limit`: a bundle's export and
        import."""

    @abc.abstractmethod
    def page(self, project_id: str, *, channel: str | None, before: int | None,
             limit: int) -> Page: ...


class Audiences(abc.ABC):
    """Audiences by id or by name within a project, and their evaluation: a query made by
    flowd.audiences is decided in SQL where it can be, and its `matches` decides the rest on
    each contact SQL left undecided — at most `max_python` of them per call, else
    AudienceTooCostly. Every verb reads the contacts as they are now (nothing is cached)."""

    @abc.abstractmethod
    def create(self, *, project_id: str, name: str, description: str, filter: Any,
               now: int) -> Audience:
        """Raises NameTaken when the project has an audience of that name."""

    @abc.abstractmethod
    def get(self, project_id: str, ref: str) -> Audience | None:
        """By id, else by name."""

    @abc.abstractmethod
    def update(self, audience: Audience, *, name: str, description: str, filter: Any,
               now: int) -> Audience:
        """Raises NameTaken when another audience has that name."""

    @abc.abstractmethod
    def delete(self, audience_id: str) -> None: ...

    @abc.abstractmethod
    def names(self, project_id: str) -> dict[str, str]:
        """Every audience of the project: id → name."""

    @abc.abstractmethod
    def every(self, project_id: str, limit: int) -> list[Audience]:
        """Every audience of the project, oldest first, at most `limit` (bundles)."""

    @abc.abstractmethod
    def page(self, project_id: str, *, before: int | None, limit: int) -> Page: ...

    @abc.abstractmethod
    def count(self, project_id: str, query: "AudienceQuery", *, max_python: int) -> int:
        """How many of the project's contacts are members."""

    @abc.abstractmethod
    def members(self, project_id: str, query: "AudienceQuery", *, before: int | None,
                limit: int, max_python: int) -> Page:
        """Members (Contact records), newest first, continuing below position `before`."""

    @abc.abstractmethod
    def member_ids(self, project_id: str, query: "AudienceQuery", *, limit: int,
                   max_python: int) -> list[str]:
        """The ids of the first `limit` + 1 members, oldest first (a caller that gets more
        than `limit` knows there are too many), read in chunks."""

    @abc.abstractmethod
    def contains(self, project_id: str, query: "AudienceQuery", contact_id: str) -> bool:
        """Whether the contact is a member (an unknown contact is not)."""


class Messages(abc.ABC):
    """Every message sent (or not sent, and why), the addresses that bounced, and the tokens
    of unsubscribe links."""

    @abc.abstractmethod
    def get(self, project_id: str | None, message_id: str) -> Message | None: ...

    @abc.abstractmethod
    def insert(self, message: Message) -> None: ...

    @abc.abstractmethod
    def counts(self) -> dict[tuple[str, str], int]:
        """Messages of every project by (channel, status), for /metrics."""

    @abc.abstractmethod
    def finish(self, message: Message) -> None:
        """Write its outcome: status, provider id, error, sent_at."""

    @abc.abstractmethod
    def page(self, project_id: str, *, contact_id: str | None, channel: str | None,
             status: str | None, run_id: str | None, before: int | None, limit: int) -> Page: ...

    @abc.abstractmethod
    def delivery_counts(self, project_id: str, since: int,
                        recent_since: int) -> dict[tuple[str, str], tuple[int, int]]:
        """The project's messages created at or after `since`, by (channel, status):
        (how many of them were created at or after `recent_since`, how many in all)."""

    @abc.abstractmethod
    def recent_sends(self, project_id: str, contact_id: str, channel: str, after: int,
                     limit: int, *, excluding: str | None = None) -> list[int]:
        """The send policy's count: when the contact's messages on `channel` from its runs
        (not transactional sends) that are `sending` or `sent` were created after `after`,
        newest first, each time once (one send to several devices is one), at most `limit`.
        `excluding`: a message id whose messages do not count — itself, and those whose id
        extends it (the asking step's own, per device)."""

    @abc.abstractmethod
    def unsent(self, after: int, limit: int) -> tuple[list[Message], int]:
        """Messages sent outside any run that are still `sending` (not delivered yet: a crash
        or a failure that a retry may cure), oldest first from position `after` (0 at first);
        and the position to go on from."""

    @abc.abstractmethod
    def bounce(self, project_id: str, address: str, reason: str, message_id: str | None,
               now: int) -> None: ...

    @abc.abstractmethod
    def bounced(self, project_id: str, address: str) -> str | None:
        """Why the address bounced, or None."""

    @abc.abstractmethod
    def remember_unsubscribe_token(self, token_hash: str, project_id: str, contact_id: str,
                                   channel: str) -> None: ...

    @abc.abstractmethod
    def unsubscribe_token(self, token_hash: str) -> tuple[str, str, str] | None:
        """(project id, contact id, channel) of a token's hash."""


class Approvals(abc.ABC):
    """Decisions runs wait for, and the hashes of the links that decide them."""

    @abc.abstractmethod
    def open(self, approval: Approval, tokens: dict[str, str | None]) -> None:
        """Record the approval and its links' token hashes (hash → the approver it names, or
        None for the link anyone with it may use); again for the same id: nothing."""

    @abc.abstractmethod
    def get(self, approval_id: str) -> Approval | None: ...

    @abc.abstractmethod
    def by_token(self, token_hash: str) -> tuple[Approval, str | None] | None:
        """The approval a link's token hash decides, and the approver the link names."""

    @abc.abstractmethod
    def decide(self, approval_id: str, decision: str, comment: str | None, decided_by: str,
               now: int) -> bool:
        """Record the decision if none was made and it has not expired; False otherwise (one
        conditional update: of concurrent decisions exactly one wins)."""


class BulkJobs(abc.ABC):
    """Bulk jobs (one workflow fired for many contacts) and the contact lists they carry. A job
    reads its source by position: `cursor` is the last position done, and moves only together
    with the runs its chunk started (see `advance`)."""

    @abc.abstractmethod
    def create(self, job: BulkJob, contact_ids: Iterable[str]) -> None:
        """Store the job and its contact list (positions 1, 2, … in the given order; the caller
        drops duplicates), written in chunks so that no statement grows with the list."""

    @abc.abstractmethod
    def get(self, project_id: str | None, job_id: str) -> BulkJob | None: ...

    @abc.abstractmethod
    def page(self, project_id: str, *, workflow_id: str, before: int | None,
             limit: int) -> Page: ...

    @abc.abstractmethod
    def running_ids(self, limit: int) -> list[str]:
        """Jobs to process (status running), oldest first."""

    @abc.abstractmethod
    def listed_contacts(self, job_id: str, after: int, limit: int) -> list[tuple[int, str]]:
        """The next chunk of a job's own list: (position, contact id) after position `after`,
        in order."""

    @abc.abstractmethod
    def advance(self, job_id: str, *, cursor_from: int, cursor_to: int, started: int,
                skipped: int, now: int, finished: bool) -> bool:
        """Move a running job's cursor from `cursor_from` to `cursor_to` and add to its counts
        (and end it as finished); False, changing nothing, unless it is running at
        `cursor_from`."""

    @abc.abstractmethod
    def set_status(self, job_id: str, status: BulkJobStatus, now: int, *,
                   expect: Iterable[BulkJobStatus],
                   error: dict[str, Any] | None = None) -> bool:
        """Move the job to `status` if it is in one of `expect` (an ended status also sets
        `finished_at`); False, changing nothing, otherwise."""


class Alerts(abc.ABC):
    """Alert webhooks: subscriptions, their outbox of deliveries, and when each workflow last
    said it was failing."""

    @abc.abstractmethod
    def create(self, subscription: AlertSubscription) -> None: ...

    @abc.abstractmethod
    def count(self, project_id: str) -> int: ...

    @abc.abstractmethod
    def get(self, project_id: str, subscription_id: str) -> AlertSubscription | None: ...

    @abc.abstractmethod
    def page(self, project_id: str, *, before: int | None, limit: int) -> Page: ...

    @abc.abstractmethod
    def delete(self, project_id: str, subscription_id: str) -> bool:
        """The subscription and its deliveries (pending ones are then never sent)."""

    @abc.abstractmethod
    def interested(self, project_id: str, event_type: str) -> list[AlertSubscription]:
        """The project's subscriptions to `event_type`."""

    @abc.abstractmethod
    def enqueue(self, deliveries: list[AlertDelivery]) -> None: ...

    @abc.abstractmethod
    def due(self, now: int, limit: int) -> list[DueDelivery]:
        """Pending deliveries whose next attempt is due, earliest first."""

    @abc.abstractmethod
    def next_due(self) -> int | None:
        """When the earliest pending delivery is due (None: none is pending)."""

    @abc.abstractmethod
    def record_attempt(self, delivery: AlertDelivery) -> bool:
        """Write an attempt's outcome (status, attempts, next attempt, last status code and
        error, delivered_at) if the delivery is still pending; False otherwise."""

    @abc.abstractmethod
    def deliveries(self, subscription_id: str, *, before: int | None, limit: int) -> Page: ...

    @abc.abstractmethod
    def recent_ends(self, workflow_id: str, since: int, limit: int) -> tuple[int, int]:
        """(runs ended, of which failed) among the workflow's latest `limit` runs that ended
        at or after `since`."""

    @abc.abstractmethod
    def mark_failing(self, workflow_id: str, now: int, quiet_since: int) -> bool:
        """Remember that the workflow was said to be failing at `now`, unless it already was
        at or after `quiet_since`; True when this call is the one to say it."""


@dataclass(frozen=True)
class DbSize:
    """The database file in pages: `used_bytes` is what its rows take, the rest is free pages
    an incremental vacuum can hand back to the disk."""

    page_size: int
    page_count: int
    freelist_count: int

    @property
    def file_bytes(self) -> int:
        return self.page_size * self.page_count

    @property
    def used_bytes(self) -> int:
        return self.page_size * (self.page_count - self.freelist_count)


class Retention(abc.ABC):
    """Deleting old rows in small batches, and giving their pages back. Every delete takes at
    most `limit` rows of its table (one short unit of work), oldest first; `before` None means
    "oldest first, whatever their age" (the database is over its size cap). Never touches a
    run that has not ended, nor a message still being sent."""

    @abc.abstractmethod
    def delete_ended_runs(self, before: int | None, limit: int) -> int:
        """Completed, failed and cancelled runs that ended before `before` (with their trace,
        event waits and approvals); how many runs were deleted."""

    @abc.abstractmethod
    def oldest_open_wait_since(self) -> int | None:
        """The earliest `since` of any open wait_for_event wait: events received from then on
        may still be matched by its lookback."""

    @abc.abstractmethod
    def delete_events(self, before: int, limit: int) -> int:
        """Of the `limit` oldest events, those received before `before`."""

    @abc.abstractmethod
    def delete_messages(self, before: int | None, limit: int) -> int:
        """Of the `limit` oldest messages, those created before `before` and not `sending`."""

    @abc.abstractmethod
    def free_pages(self, pages: int) -> int:
        """Give at most `pages` free pages back to the file system (incremental vacuum); how
        many were."""

    @abc.abstractmethod
    def size(self) -> DbSize: ...


class Transaction:
    """What a unit of work (or a read) may do: the verbs of each table family, and the work
    that waits for the commit."""

    FAMILIES = ("keys", "contacts", "events", "runs", "workflows", "secrets", "templates",
                "messages", "approvals", "bulk_jobs", "schedules", "alerts", "retention",
                "sessions", "audiences")
    __slots__ = (*FAMILIES, "after_commit")

    def __init__(self, *, keys: Keys, contacts: Contacts, events: Events, runs: Runs,
                 workflows: Workflows, secrets: Secrets, templates: Templates,
                 messages: Messages, approvals: Approvals, bulk_jobs: BulkJobs,
                 schedules: Schedules, alerts: Alerts, retention: Retention,
                 sessions: Sessions, audiences: Audiences) -> None:
        self.keys = keys
        self.contacts = contacts
        self.events = events
        self.runs = runs
        self.workflows = workflows
        self.secrets = secrets
        self.templates = templates
        self.messages = messages
        self.approvals = approvals
        self.bulk_jobs = bulk_jobs
        self.schedules = schedules
        self.alerts = alerts
        self.retention = retention
        self.sessions = sessions
        self.audiences = audiences
        # Called on the event loop once this unit is durable, before its caller resumes.
        self.after_commit: list[Callable[[], None]] = []


class Store(abc.ABC):
    """Runs units of work and reads; named verbs for what the API reads one at a time."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Commit what is queued, then close."""

    @abc.abstractmethod
    def write(self, unit: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `unit(tx, *args)` as one unit of the next group commit; the future has its
        result once it is committed (and its `after_commit` work done)."""

    @abc.abstractmethod
    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """Run `query(tx, *args)` on a read connection (time-limited)."""

    async def storage_metrics(self) -> "StorageMetrics | None":
        """The writer's queue and commit latencies, file sizes, messages by channel and
        status; None where a store has none of that."""
        return None

    # -- the API's reads, one verb each ---------------------------------------------------

    async def get_run(self, project_id: str, run_id: str) -> Run | None:
        return await self.read(lambda tx: tx.runs.get(project_id, run_id))

    async def run_trace(self, run_id: str) -> list[TraceEntry]:
        return await self.read(lambda tx: tx.runs.trace(run_id))

    async def list_runs(self, project_id: str, **filters: Any) -> Page:
        return await self.read(lambda tx: tx.runs.page(project_id, **filters))

    async def get_contact(self, project_id: str, contact_id: str) -> Contact | None:
        return await self.read(lambda tx: tx.contacts.get(project_id, contact_id))

    async def list_contacts(self, project_id: str, **filters: Any) -> Page:
        return await self.read(lambda tx: tx.contacts.page(project_id, **filters))

    async def list_events(self, project_id: str, **filters: Any) -> Page:
        return await self.read(lambda tx: tx.events.page(project_id, **filters))

    async def get_workflow(self, project_id: str, workflow_id: str) -> Workflow | None:
        return await self.read(lambda tx: tx.workflows.get(project_id, workflow_id))

    async def list_workflows(self, project_id: str, **filters: Any) -> Page:
        return await self.read(lambda tx: tx.workflows.page(project_id, **filters))

    async def workflow_versions(self, workflow_id: str) -> list[WorkflowVersion]:
        return await self.read(lambda tx: tx.workflows.versions(workflow_id))

    async def workflow_version(self, workflow_id: str, version: int) -> WorkflowVersion | None:
        return await self.read(lambda tx: tx.workflows.version(workflow_id, version))

    async def list_keys(self, project_id: str, *, before: int | None, limit: int) -> Page:
        return await self.read(lambda tx: tx.keys.page(project_id=project_id, before=before,
                                                       limit=limit))

    async def status_counts(self, project_id: str) -> dict[str, dict[str, int]]:
        return await self.read(lambda tx: {"workflows": tx.workflows.status_counts(project_id),
                                           "runs": tx.runs.status_counts(project_id)})
