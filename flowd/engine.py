"""The step loop: walk a run step by step — resolve templates, run the step type, and commit the
step's trace record together with the run's new state in ONE unit of the group commit before
deciding the next step. Immediate next steps continue in-process, with no trip through the
scheduler; a step that waits hands the run back to the store (and its due time to the
scheduler's `DueRuns`).

Which runs execute, and when, is not decided here: the scheduler and ingest hand runs to the
`RunSlots`, which call `execute`. `claim` ends, for a batch of due runs, the waits their timers
ended — in memory, then in one unit that takes the runs if nothing touched them meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Callable

from flowd.alerts import AlertRecorder
from flowd.clock import Clock
from flowd.config import EngineConfig
from flowd.definitions import CompiledStep
from flowd.dueruns import DueRuns
from flowd.effects.base import EffectFailed
from flowd.errors import FlowdError
from flowd.ingest import IncomingEvent
from flowd.matching import EventView, WaitedNames, wait_matches
from flowd.metrics import Metrics
from flowd.registry import Registry
from flowd.runs import after_end, depth, new_run
from flowd.send_policy import NO_POLICY, SendPolicy
from flowd.steps.base import Effects, Outcome, StepContext, StepFailed
from flowd.steps.orchestration import MAX_DEPTH
from flowd.store import Claim, RunPreempted, Store, Transaction
from flowd.store.records import ContactChange, Run, RunStatus, TraceEntry
from flowd.templates import Scope, TemplateError
from flowd.timeutil import deadline, format_ms
from flowd.waits import TIMER_WAKE, EventWaitSpec, Wait, WaitKind, Wake, WakeReason

log = logging.getLogger("flowd.engine")

LOOKBACK_SCAN_LIMIT = 1000
# Runs this engine parked on a timer due within the scheduler's horizon are kept in memory (at
# most this many), so their claim needs no read: see claim().
PARKED_LIMIT = 50_000
EMPTY_SCOPE = Scope({})
_TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)

RunWithContact = tuple[Run, "dict[str, Any] | None", bool]   # (run, contact, contact loaded)
StartedRuns = list[tuple[Run, "dict[str, Any] | None"]]
StoreEvents = Callable[[Transaction, str, list[IncomingEvent], int], list[Any]]
ContactChanged = Callable[..., list[Any]]   # ingest's contact_changed(tx, project, change, now,
#                                            depth=)


class Engine:
    def __init__(self, store: Store, registry: Registry, clock: Clock, effects: Effects, *,
                 due: DueRuns, waited: WaitedNames, rng: random.Random | None = None,
                 max_steps_per_run: int = 10_000,
                 step_timeout_seconds: float = EngineConfig.step_timeout_seconds,
                 on_started: Callable[[StartedRuns], None] = lambda runs: None,
                 store_events: StoreEvents | None = None,
                 effects_for: Callable[[str], Effects] | None = None,
                 alerts: AlertRecorder | None = None,
                 contact_changed: ContactChanged | None = None,
                 metrics: Metrics | None = None,
                 send_policy: SendPolicy = NO_POLICY) -> None:
        self._store = store
        self._registry = registry
        self._clock = clock
        self._effects = effects
        self._due = due
        self._waited = waited
        self._random = rng or random.Random()
        self._step_limit = max_steps_per_run
        self._step_timeout = step_timeout_seconds
        self._parked: dict[str, Run] = {}
        self._on_started = on_started          # child runs a step started
        self._store_events = store_events      # ingest's unit: events a step emitted
        # A test run hands each step recorders bound to it (so each call says which step
        # made it and that step's canned answer applies); a server, the same effects to all.
        self._effects_for = effects_for
        self._alerts = alerts                  # records alert webhooks in the same units
        self._contact_changed = contact_changed  # contact events of a step's contact change
        self.steps_committed = 0
        self._metrics = metrics or Metrics()
        self._send_policy = send_policy        # the project's [policy]; workflows override it

    async def load(self) -> None:
        """What the engine needs in memory at start: the names runs wait for."""
        for project_id, pattern in await self._store.read(
                lambda tx: tx.runs.waited_event_names()):
            self._waited.add(project_id, pattern)

    # ------------------------------------------------------------ executing one run

    async def execute(self, run: Run, contact: dict[str, Any] | None,
                      contact_loaded: bool) -> None:
        """Drive `run` until it waits, ends or is paused (RunSlots call this)."""
        try:
            await self._drive(run, contact, contact_loaded)
        except RunPreempted:
            pass  # cancelled or exited while a step ran; that step's result is dropped
        except Exception:
            log.exception("run %s failed inside the engine", run.id)
            await self._fail_internal(run)

    async def _fail_internal(self, run: Run) -> None:
        now = self._clock.now_ms()
        self._end(run, RunStatus.FAILED, now)
        run.updated_at = now
        run.error = {"code": "internal", "message": "the engine hit an unexpected error; see the "
                     "server log", "step_id": run.current_step_id}
        expect = run.stored_status or RunStatus.RUNNING

        def unit(tx: Transaction) -> None:
            if tx.runs.end(run, expect=[expect]):
                self._after_end(tx, run, now)

        try:
            await self._store.write(unit)
            self._metrics.run_ended(run.workflow_id, failed=True)
        except Exception:
            log.exception("could not record the failure of run %s", run.id)

    async def _drive(self, run: Run, contact: dict[str, Any] | None, contact_loaded: bool) -> None:
        workflow = await self._registry.compiled(run.workflow_id, run.workflow_version)
        if workflow is None:
            raise RuntimeError(f"version {run.workflow_version} of {run.workflow_id} cannot run")
        # The contact is read only once a step's templates or condition may read it: many runs
        # (timers, webhooks that do not mention it) never do.
        contact_loaded = contact_loaded or run.contact_id is None
        send_policy = workflow.send_policy.applied_to(self._send_policy)
        while run.status is RunStatus.RUNNING:
            if self._registry.is_paused(run.workflow_id):
                await self._pause(run)
                return
            step = workflow.steps.get(run.current_step_id or "")
            if step is None:
                await self._commit(run, None, fail=("unknown_step",
                                                    f"no step '{run.current_step_id}'"))
                return
            if step.reads_contact and not contact_loaded:
                assert run.contact_id is not None
                found = await self._store.get_contact(run.project_id, run.contact_id)
                contact, contact_loaded = (found.to_json() if found else None), True
            updated = await self._advance(run, step, contact, send_policy)
            if updated is not contact:  # the step changed the contact: this is it now
                contact, contact_loaded = updated, True

    async def _pause(self, run: Run) -> None:
        if run.wait is not None and run.wake is None:
            # Claimed because its timer came due: it fires on resume.
            run.wake = TIMER_WAKE
        run.status, run.due_at, run.updated_at = RunStatus.PAUSED, None, self._clock.now_ms()
        expect = run.stored_status or RunStatus.RUNNING

        def unit(tx: Transaction) -> None:
            tx.runs.remove_event_waits([run.id])
            tx.runs.save(run, expect=expect)

        await self._store.write(unit)
        run.stored_status = run.status

    def _scope(self, run: Run, step: CompiledStep, contact: dict[str, Any] | None,
               now: int) -> Scope:
        roots = {"contact": contact or {}, "event": run.trigger.get("event") or {},
                 "vars": run.vars, "steps": run.outputs,
                 "run": {"id": run.id, "workflow_id": run.workflow_id,
                         "workflow_version": run.workflow_version,
                         "contact_id": run.contact_id, "parent_run_id": run.parent_run_id},
                 "now": format_ms(now)}
        if step.loop_id is not None:
            # Inside a loop's body: the item the loop's latest visit took.
            roots["loop"] = run.outputs.get(step.loop_id) or {}
        return Scope(roots)

    async def _advance(self, run: Run, step: CompiledStep, contact: dict[str, Any] | None,
                       send_policy: SendPolicy | None = None) -> dict[str, Any] | None:
        """Execute (or end the wait of) the current step and commit the result."""
        now = self._clock.now_ms()
        if run.wait is not None and not run.wait.is_retry:
            entry, outcome, ended_event_wait = self._end_wait(run, step, now)
            self._move_on(run, step, outcome, now)
            return await self._commit(run, entry, contact=contact,
                                      contact_patch=outcome.contact_patch, replace=True,
                                      clear_event_wait=ended_event_wait)
        if run.steps_executed >= self._step_limit:
            return await self._commit(run, None, fail=(
                "step_limit", f"the run executed {self._step_limit} steps; it is stopped"))
        run.wait = None
        entered_at = run.created_at if run.trace_len == 0 else run.updated_at
        again = run.attempt == 0      # resume() asked for the same visit once more
        if again:
            run.attempt = 1
        visit = run.visits.get(step.id, 0) + (1 if run.attempt == 1 and not again else 0)
        # Run again, the visit's waiting entry becomes its real outcome (`sent`, …): the same
        # seq, rewritten in place (its start and input stay those of the visit's start).
        entry = TraceEntry(run.trace_len + (0 if again else 1), step.id, step.type.name, "ok",
                           run.attempt, visit, started_at=now)
        # Only templated configs and condition steps read the scope; most steps need none.
        scope = self._scope(run, step, contact, now) if step.needs_scope else EMPTY_SCOPE
        try:
            try:
                config = step.config.render(scope)
            except TemplateError as exc:
                raise StepFailed("invalid_template", str(exc), retryable=False) from None
            entry.input = step.type.recorded_input(config)
            ctx = self._context(run, step, visit, now, config, scope, entered_at)
            ctx.send_policy = send_policy
            outcome = await self._attempt(step, ctx)
            child = self._child_run(run, outcome, now) if outcome.child is not None else None
        except StepFailed as failure:
            return await self._failed(run, step, entry, failure, contact, replace=again)
        except EffectFailed as exc:
            # Whatever the step type: the effect's code and message are the attempt's error,
            # and the effect knows whether trying again can help.
            failure = StepFailed(exc.code, exc.message, retryable=exc.retryable,
                                 retry_after_ms=exc.retry_after_ms)
            return await self._failed(run, step, entry, failure, contact, replace=again)
        except FlowdError as exc:
            return await self._failed(run, step, entry, StepFailed(exc.code, exc.message), contact,
                                      replace=again)
        except Exception as exc:
            log.exception("step %s of run %s raised", step.id, run.id)
            failure = StepFailed("step_crashed", f"{type(exc).__name__} inside the step")
            return await self._failed(run, step, entry, failure, contact, replace=again)
        entry.finished_at = self._clock.now_ms()
        entry.outcome, entry.branch, entry.output = outcome.outcome, outcome.branch, outcome.output
        run.visits[step.id] = visit
        run.steps_executed += 1
        self._metrics.steps_executed += 1
        run.trace_len = entry.seq
        if outcome.wait is not None:
            entry.status, entry.finished_at = "waiting", None
            run.status = RunStatus.WAITING
            run.wait = outcome.wait
            run.wait.started_at, run.wait.input = now, entry.input
            run.due_at = outcome.wait.until
            return await self._commit(run, entry, event_wait=outcome.event_wait, contact=contact,
                                      contact_patch=outcome.contact_patch, outcome=outcome,
                                      child=child, replace=again)
        self._move_on(run, step, outcome, entry.finished_at)
        return await self._commit(run, entry, contact=contact, contact_patch=outcome.contact_patch,
                                  outcome=outcome, child=child, replace=again)

    def _child_run(self, run: Run, outcome: Outcome, now: int) -> Run:
        """The run a `run_workflow` step starts (inserted with the step's commit): of the
        named workflow, for this run's contact, one level deeper."""
        request = outcome.child
        assert request is not None
        found = self._registry.index.find(run.project_id, request.workflow)
        if not found:
            raise StepFailed("unknown_workflow", f"no active or paused workflow has the id or "
                             f"name {request.workflow!r}", retryable=False)
        if len(found) > 1:
            raise StepFailed("ambiguous_workflow", f"{len(found)} workflows are named "
                             f"{request.workflow!r}; name it by id", retryable=False)
        event = {"id": None, "name": "workflow.child", "contact_id": run.contact_id,
                 "properties": request.input, "timestamp": format_ms(now),
                 "received_at": format_ms(now), "message_id": None}
        trigger = {"type": "workflow", "parent_run_id": run.id, "event": event,
                   "depth": depth(run) + 1}
        child = new_run(found[0], run.contact_id, trigger, now, parent_run_id=run.id)
        if outcome.wait is not None:
            outcome.wait.ref = child.id
        outcome.output = {**(outcome.output or {}), "run_id": child.id,
                          "workflow_id": child.workflow_id}
        return child

    async def _attempt(self, step: CompiledStep, ctx: StepContext) -> Outcome:
        """One attempt of a step, under the one timeout every attempt gets: a slow provider
        (or a step that never returns) cannot hold a run slot for ever. It is the event loop's
        monotonic time, not the injected clock: it bounds real waiting on the outside world.
        Steps that never await (set, condition…) could not be interrupted: they go without."""
        if not step.type.calls_out:
            return await step.type.run(ctx)
        limit = asyncio.timeout(self._step_timeout)
        try:
            async with limit:
                return await step.type.run(ctx)
        except TimeoutError:
            if not limit.expired():
                raise  # the step's own TimeoutError: a crash like any other exception
            raise StepFailed("step_timeout", f"the step did not finish within "
                             f"{self._step_timeout:g} s ([engine] step_timeout_seconds)") from None

    def _end_wait(self, run: Run, step: CompiledStep, now: int
                  ) -> tuple[TraceEntry, Outcome, bool]:
        """A waiting step ends, whatever woke it (its timer, an event, …): the step type's
        resume() decides the outcome, and the wait's trace entry becomes `ok`. Returns the
        entry, the outcome, and whether it was an event wait."""
        wait = run.wait
        assert wait is not None
        wake = run.wake or TIMER_WAKE
        visit = run.visits.get(step.id, 1)
        # resume() sees the config as it was resolved when the wait began, and the run's data
        # (not its contact, which this path never needs to load).
        scope = self._scope(run, step, None, now) if step.needs_scope else EMPTY_SCOPE
        ctx = self._context(run, step, visit, now, wait.input or {}, scope, wait.started_at)
        ctx.wait = wait
        outcome = step.type.resume(ctx, wake)
        entry = TraceEntry(run.trace_len, step.id, step.type.name, "ok", run.attempt, visit,
                           started_at=wait.started_at or now, finished_at=now,
                           outcome=outcome.outcome, branch=outcome.branch, input=wait.input,
                           output=outcome.output)
        run.wait, run.wake = None, None
        return entry, outcome, wait.kind is WaitKind.EVENT

    def _move_on(self, run: Run, step: CompiledStep, outcome: Outcome, now: int) -> None:
        """Record a good outcome and point the run at its next step, or end it."""
        run.outputs[step.id] = outcome.output
        if outcome.vars_patch:
            run.vars.update(outcome.vars_patch)
        run.attempt = 1
        if outcome.again:
            # Attempt 0 (stored with the run, so it survives a crash) marks the step's next
            # execution as this same visit, as its first attempt: see _advance.
            run.attempt = 0
            run.current_step_id, run.status = step.id, RunStatus.RUNNING
            return
        if outcome.exit_reason is not None:
            self._end(run, RunStatus.COMPLETED, now, exit_reason=outcome.exit_reason)
            return
        target = step.target(outcome.branch)
        if target is None:
            self._end(run, RunStatus.COMPLETED, now)
        else:
            run.current_step_id = target
            run.status = RunStatus.RUNNING

    async def _failed(self, run: Run, step: CompiledStep, entry: TraceEntry, failure: StepFailed,
                      contact: dict[str, Any] | None, *,
                      replace: bool = False) -> dict[str, Any] | None:
        now = self._clock.now_ms()
        entry.status, entry.finished_at = "failed", now
        entry.outcome = "failed"
        entry.error = {"code": failure.code, "message": failure.message}
        entry.output = failure.output
        run.visits[step.id] = entry.visit
        run.steps_executed += 1
        self._metrics.steps_executed += 1
        run.trace_len = entry.seq
        if failure.retryable and run.attempt < step.retry.max_attempts:
            # The backoff, unless the other side asked for a longer pause (Retry-After).
            until = deadline(now, max(step.retry.delay_ms(run.attempt),
                                      failure.retry_after_ms or 0))
            run.attempt += 1
            run.status, run.due_at = RunStatus.WAITING, until
            run.wait = Wait(WaitKind.RETRY, until=until, started_at=now)
            return await self._commit(run, entry, contact=contact, replace=replace)
        run.attempt = 1
        has_error_branch, target = step.error_target()
        if has_error_branch or step.on_error == "continue":
            if has_error_branch:
                entry.branch = "error"
            else:
                target = step.target(None)
            run.outputs[step.id] = failure.output
            if target is None:
                self._end(run, RunStatus.COMPLETED, now)
            else:
                run.current_step_id, run.status = target, RunStatus.RUNNING
            return await self._commit(run, entry, contact=contact, replace=replace)
        return await self._commit(run, entry, contact=contact, fail=(failure.code, failure.message),
                                  replace=replace)

    @staticmethod
    def _end(run: Run, status: RunStatus, now: int, *, exit_reason: str | None = None) -> None:
        run.status, run.completed_at, run.due_at = status, now, None
        run.wait, run.wake = None, None
        if exit_reason is not None:
            run.exit_reason = exit_reason

    def _context(self, run: Run, step: CompiledStep, visit: int, now: int,
                 config: dict[str, Any], scope: Scope, entered_at: int) -> StepContext:
        return StepContext(run_id=run.id, project_id=run.project_id, workflow_id=run.workflow_id,
                           step_id=step.id, visit=visit, attempt=run.attempt, now_ms=now,
                           config=config, compiled=step.compiled, scope=scope,
                           effects=self._effects_for(step.id) if self._effects_for
                           else self._effects, random=self._random,
                           contact_id=run.contact_id, entered_at=entered_at,
                           final_attempt=run.attempt >= step.retry.max_attempts,
                           depth=depth(run), previous_output=run.outputs.get(step.id))

    # ------------------------------------------------------------ the commit

    async def _commit(self, run: Run, entry: TraceEntry | None, *,
                      contact: dict[str, Any] | None = None,
                      contact_patch: dict[str, Any] | None = None,
                      event_wait: EventWaitSpec | None = None,
                      fail: tuple[str, str] | None = None,
                      replace: bool = False,
                      clear_event_wait: bool = False,
                      outcome: Outcome | None = None,
                      child: Run | None = None) -> dict[str, Any] | None:
        """One unit: the trace entry, the contact change, the event wait, what the step
        started (a child run, an approval, emitted events), the run's new state. Returns the
        run's contact as it now is."""
        now = self._clock.now_ms()
        run.updated_at = now
        if fail is not None:
            self._end(run, RunStatus.FAILED, now)
            run.error = {"code": fail[0], "message": fail[1], "step_id": run.current_step_id}
        expect = run.stored_status or RunStatus.RUNNING

        def unit(tx: Transaction) -> tuple[dict[str, Any] | None, bool]:
            if outcome is not None:
                self._commit_started(tx, run, entry, outcome, child, contact, now)
            upserted = None
            if contact_patch and run.contact_id is not None:
                upserted = tx.contacts.upsert(run.project_id, run.contact_id, contact_patch, now)
                if (depth(run) + 1 > MAX_DEPTH and (upserted.created or upserted.change.changed)
                        and entry is not None and isinstance(entry.output, dict)):
                    # Past the depth limit the change emits no contact events: say why.
                    entry.output["contact_events"] = "depth_exceeded"
            if entry is not None:
                tx.runs.write_trace(run.id, entry, replace=replace)
            new_contact = upserted.contact.to_json() if upserted is not None else None
            if event_wait is not None:
                self._register_event_wait(tx, run, event_wait, new_contact or contact)
            elif clear_event_wait:
                tx.runs.remove_event_waits([run.id])
            if run.status in _TERMINAL:
                # The engine ended the run from a step: no wait of it is open.
                if not tx.runs.end(run, expect=[expect], waiting=False):
                    raise RunPreempted(run.id)
                self._after_end(tx, run, now)
            else:
                tx.runs.save(run, expect=expect)
            # The contact events go after the run's own state is saved, so that an exit_on
            # rule they match can end this very run (which then stops after this commit).
            exited = upserted is not None and self._contact_events(tx, run, upserted.change,
                                                                   now)
            if run.status is RunStatus.WAITING and run.due_at is not None and not exited:
                tx.after_commit.append(lambda: self._park(run))
            return new_contact, exited

        new_contact, exited = await self._store.write(unit)
        if exited:
            raise RunPreempted(run.id)   # the step is recorded; its contact events ended it
        run.stored_status = run.status
        self.steps_committed += 1
        if expect is RunStatus.PENDING:
            self._metrics.run_started(run.workflow_id)
        if run.status in _TERMINAL:
            self._metrics.run_ended(run.workflow_id, failed=run.status is RunStatus.FAILED)
        return new_contact if new_contact is not None else contact

    def _commit_started(self, tx: Transaction, run: Run, entry: TraceEntry | None,
                        outcome: Outcome, child: Run | None, contact: dict[str, Any] | None,
                        now: int) -> None:
        if outcome.approval is not None:
            tx.approvals.open(outcome.approval.approval, outcome.approval.token_hashes)
            if self._alerts is not None:
                self._alerts.approval_requested(tx, outcome.approval.approval, now)
        if child is not None:
            tx.runs.insert([child])
            if child.due_at is not None:   # a paused workflow's run waits for its resume
                started = [(child, contact if run.contact_id is not None else None)]
                tx.after_commit.append(lambda: self._on_started(started))
        if outcome.events:
            if self._store_events is None:
                raise RuntimeError("the engine was built without store_events")
            next_depth = depth(run) + 1
            results = self._store_events(tx, run.project_id, [
                IncomingEvent(e.name, e.contact_id, e.properties, depth=next_depth)
                for e in outcome.events], now)
            if entry is not None and isinstance(entry.output, dict):
                # The same dict is the step's output in run.outputs: both say what happened.
                entry.output.update(event_id=results[0].id, runs_started=results[0].runs_started,
                                    runs_resumed=results[0].runs_resumed)

    def _contact_events(self, tx: Transaction, run: Run, change: ContactChange,
                        now: int) -> bool:
        """Ingest the contact events of a step's change, one run deeper (like emit_event: past
        MAX_DEPTH there are none, and the chain ends). True when they ended `run` itself (an
        exit_on rule of its workflow)."""
        if self._contact_changed is None:   # an engine without ingest: nothing listens
            return False
        results = self._contact_changed(tx, run.project_id, change, now, depth=depth(run) + 1)
        return any(run.id in result.runs_exited for result in results)

    def _after_end(self, tx: Transaction, run: Run, now: int) -> None:
        """In the unit that ends `run`: a parent waiting for it wakes, and goes on once the
        unit is durable."""
        woken: list[str] = []
        after_end(tx, run, now, woken)
        if run.status is RunStatus.FAILED and self._alerts is not None:
            self._alerts.run_failed(tx, run, now)
        if woken:
            tx.after_commit.append(lambda: self._due.notify_now(woken))

    def _register_event_wait(self, tx: Transaction, run: Run, spec: EventWaitSpec,
                             contact: dict[str, Any] | None) -> None:
        """In the unit that starts the wait: an event that arrived before it (`lookback`)
        ends it at once; else it is registered, for ingest to match in the unit that stores
        the event — so no event can fall between the two."""
        matched = self._lookback(tx, run, spec, contact)
        if matched is not None:
            run.status, run.due_at = RunStatus.RUNNING, None
            run.wake = Wake(WakeReason.EVENT, event=matched)
        else:
            tx.runs.add_event_wait(run, spec)
            self._waited.add(run.project_id, spec.pattern)

    def _lookback(self, tx: Transaction, run: Run, spec: EventWaitSpec,
                  contact: dict[str, Any] | None) -> dict[str, Any] | None:
        loaded: list[dict[str, Any] | None] = [] if contact is None else [contact]

        def load_contact() -> dict[str, Any] | None:
            if not loaded:
                found = (tx.contacts.get(run.project_id, run.contact_id)
                         if run.contact_id is not None else None)
                loaded.append(found.to_json() if found else None)
            return loaded[0]

        now = self._clock.now_ms()
        for event in tx.events.since(run.project_id, run.contact_id, spec.since,
                                     LOOKBACK_SCAN_LIMIT):
            view = EventView(event, load_contact, now)
            if wait_matches(spec, view):
                return view.data
        return None

    # ------------------------------------------------------------ timers, in bulk

    def _park(self, run: Run) -> None:
        """A run's wait is durable: tell the scheduler when it is due, and keep the run (as it
        was committed, outputs and visits included) if that is soon."""
        assert run.due_at is not None
        if run.due_at <= self._due.loaded_until and len(self._parked) < PARKED_LIMIT:
            self._parked[run.id] = run
        self._due.notify(run.id, run.due_at)

    async def claim(self, run_ids: list[str]) -> list[RunWithContact]:
        """Take due runs. For those whose timer ended a wait, the wait ends here — resume()
        runs on the event loop, between reading the runs and the one unit that takes them —
        so ten thousand timers due in one second end in a few statements per transaction
        instead of each waiting its turn in the engine. Runs this engine parked are taken as
        it committed them, without a read; the unit takes a run only if its row is still as
        it was (changed ones are left to whoever changed them, who also made them due).
        Returns the runs with work left, with their contact when their next step reads it
        (loaded in bulk, not one read per run)."""
        now = self._clock.now_ms()
        runs, unknown = [], []
        for run_id in run_ids:
            run = self._parked.get(run_id)
            if run is not None and run.due_at is not None and run.due_at <= now:
                runs.append(self._parked.pop(run_id))
            else:
                # Not parked, or due for another reason than its parked timer (an event woke
                # it; or an older due time, which the read finds no longer due): read it.
                unknown.append(run_id)
        if unknown:
            runs += await self._store.read(lambda tx: tx.runs.claimable(unknown, now))
        if not runs:
            return []
        now = self._clock.now_ms()   # when the timers are ended: what the trace records
        claims = [self._claim(run, now) for run in runs]
        taken = await self._store.write(self._take, claims, now)
        running = [run for run in taken if run.status is RunStatus.RUNNING]
        wanted = [run for run in running if run.contact_id and self._reads_contact(run)]
        contacts = await self._store.read(lambda tx: tx.contacts.get_many_json(
            [(run.project_id, run.contact_id) for run in wanted])) if wanted else {}
        wanted_ids = {run.id for run in wanted}
        return [(run, contacts.get((run.project_id, run.contact_id)), run.id in wanted_ids)
                for run in running]

    def _take(self, tx: Transaction, claims: list[Claim], now: int) -> list[Run]:
        taken = tx.runs.claim(claims)
        for run in taken:
            if run.status in _TERMINAL:   # its timer ended its last step
                self._after_end(tx, run, now)
        return taken

    def _claim(self, run: Run, now: int) -> Claim:
        claim = Claim(run, run.status, run.updated_at)
        run.status, run.due_at, run.updated_at = RunStatus.RUNNING, None, now
        wait = run.wait
        if wait is None or wait.is_retry or run.wake is not None:
            return claim  # not a timer that ended a wait: the engine handles it
        step = self._registry.cached_step(run)
        if step is None or self._registry.is_paused(run.workflow_id):
            return claim
        claim.ended_wait, outcome, claim.ended_event_wait = self._end_wait(run, step, now)
        self._move_on(run, step, outcome, now)
        return claim

    def _reads_contact(self, run: Run) -> bool:
        step = self._registry.cached_step(run)
        return step is None or step.reads_contact

