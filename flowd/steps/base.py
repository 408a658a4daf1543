"""The seam between the engine and step types.

A step type declares its config shape, the branch labels it can produce, whether it waits, how
to compile its config once per workflow version, and a coroutine that runs it. A step touches
the world only through `StepContext` (effects, clock) and reports everything else — contact
changes, variables, waits — in its `Outcome`, which the engine commits in one transaction with
the step's trace record.

`Effects` (defined with its protocols in `flowd.effects.base`) is the outside world as steps see
it: protocols only, so the server gives steps the real clients and a dry run gives them
recorders.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from flowd.effects.base import Effects
from flowd.errors import Problem
from flowd.validation import Object
from flowd.waits import EventWaitSpec, Wait, Wake

if TYPE_CHECKING:
    from flowd.send_policy import SendPolicy
    from flowd.store.records import Approval
    from flowd.templates import Scope

__all__ = ["ApprovalRequest", "ChildRequest", "Effects", "EmittedEvent", "Outcome", "StepConfigError", "StepContext", "StepFailed", "StepType"]


class StepConfigError(Exception):
    """Config that parses as JSON but cannot work: each problem has an issue code and a path."""

    def __init__(self, issues: list[tuple[str, Problem]]) -> None:
        super().__init__("; ".join(p.message for _, p in issues))
        self.issues = issues


class StepFailed(Exception):
    """An attempt failed for a reason the step decides itself (a non-2xx answer, a bad
    template). `retryable` False skips the remaining attempts. An effect's failure is not
    translated into one: the effect raises `EffectFailed`, which the engine records."""

    def __init__(self, code: str, message: str, *, retryable: bool = True,
                 output: Any = None, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.output = output
        self.retry_after_ms = retry_after_ms   # the next attempt waits at least this long


@dataclass
class Outcome:
    outcome: str                           # short human label: "waited", "yes", "http_200"
    branch: str | None = None              # the `next` label taken; None = the default path
    output: Any = None
    wait: Wait | None = None               # the run waits; the step ends when woken
    event_wait: EventWaitSpec | None = None   # …for an event matching this
    contact_patch: dict[str, Any] | None = None
    vars_patch: dict[str, Any] | None = None
    exit_reason: str | None = None         # the run completes now
    # Orchestration, committed by the engine in the step's own unit:
    approval: ApprovalRequest | None = None     # the decision the run now waits for
    child: ChildRequest | None = None           # a run of another workflow to start
    events: list[EmittedEvent] | None = None    # events ingested as if posted
    # From resume(): instead of moving on, the step runs again as the same visit (a messaging
    # step whose send was deferred tries again, with the same message id).
    again: bool = False


@dataclass
class ApprovalRequest:
    approval: "Approval"
    token_hashes: dict[str, str | None]    # hash of each link's token -> the approver it names


@dataclass
class ChildRequest:
    """A run of `workflow` (an id or a name) for the run's contact, its trigger event's
    properties `input`. With `wait` the step waits for its end (the engine fills in the wait's
    `ref` once it knows the child's id)."""

    workflow: str
    input: dict[str, Any]
    wait: bool


@dataclass
class EmittedEvent:
    name: str
    properties: dict[str, Any]
    contact_id: str | None


@dataclass
class StepContext:
    run_id: str
    project_id: str
    workflow_id: str
    step_id: str
    visit: int
    attempt: int
    now_ms: int
    config: dict[str, Any]         # templates already resolved
    compiled: Any                  # what the type's compile() returned
    scope: "Scope"
    effects: Effects
    random: random.Random          # the only randomness a step may use (a dry run seeds it)
    contact_id: str | None = None
    # When the run reached this step (its previous step committed, or the run was created):
    # events from then on count for a wait that starts here.
    entered_at: int = 0
    # No retry follows if this attempt fails (an effect's record can then say `failed`).
    final_attempt: bool = True
    # How many runs led to this one (parents, or runs that emitted its trigger event).
    depth: int = 0
    # This step's output from its previous visit (a loop counts its items with it).
    previous_output: Any = None
    # The send policy of the run's workflow (the project's [policy] as its settings override
    # it), which messaging steps follow; None where the engine has none to give (resume()).
    send_policy: "SendPolicy | None" = None
    # In resume(): the wait that ended.
    wait: Wait | None = None


class StepType:
    name: ClassVar[str]
    summary: ClassVar[str]                # one sentence for people (API docs, the builder)
    schema: ClassVar[Object]
    branches: ClassVar[tuple[str, ...]] = ()
    # Branches that, when `next` does not map them, take the default path rather than end the
    # run: an outcome worth routing on, but not one that should stop a journey unnoticed.
    optional_branches: ClassVar[tuple[str, ...]] = ()
    waits: ClassVar[bool] = False
    reads_scope: ClassVar[bool] = False   # evaluates conditions against the run's data
    # Config keys whose text is HTML: values rendered into them are escaped (`{"html": …}`).
    escaped: ClassVar[Mapping[str, Callable[[str], str]]] = {}
    # Config keys taken as written, never as templates (a code step's source: `{{` is
    # JavaScript there, and the script reads the run's data itself).
    literal: ClassVar[frozenset[str]] = frozenset()
    # Awaits the outside world (an effect): its attempts run under the engine's step timeout.
    # A step that never awaits could not be interrupted by a timeout anyway.
    calls_out: ClassVar[bool] = False
    # Every visit commits and counts toward the step limit, so a cycle through this step is
    # not one that spins without end (a `loop`).
    breaks_cycles: ClassVar[bool] = False

    def compile(self, config: dict[str, Any], path: str) -> Any:
        """Check and pre-compile `config` (already shape-checked by `schema`)."""
        return None

    def recorded_input(self, config: dict[str, Any]) -> Any:
        """What the trace keeps as the step's input (and a waiting step's resume() gets back
        as its config): the resolved config, unless that repeats something big at every
        visit."""
        return config

    def branch_labels(self, config: dict[str, Any]) -> tuple[str, ...]:
        return self.branches

    async def run(self, ctx: StepContext) -> Outcome:
        raise NotImplementedError

    def resume(self, ctx: StepContext, wake: Wake) -> Outcome:
        """A waiting step ends, whatever woke it (`wake`: its timer, an event, …). `ctx.config`
        is the config as resolved when the wait began; `ctx.scope` holds the run's data but
        not its contact. Only types with `waits = True` are resumed; this runs on the event
        loop, never inside a transaction."""
        return Outcome("waited")
