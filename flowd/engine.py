"""The run executor: claim a run, then walk it step by step — resolve templates, run the step
type, and commit the step's trace record together with the run's new state in ONE unit of the
group commit before deciding the next step. Immediate next steps continue in-process, with no
trip through the scheduler; a step that waits hands the run back to the store (and the
scheduler, for timers).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict, deque
from typing import Any, Callable

from flowd.definitions import CompiledStep, CompiledWorkflow, analyze
from flowd.errors import FlowdError
from flowd.matching import WaitedNames, event_json, name_pattern, wait_filter
from flowd.steps.base import Effects, Outcome, StepContext, StepFailed, Wake
from flowd.store import Database
from flowd.store import contacts as contact_store
from flowd.store import events as event_store
from flowd.store import runs as run_store
from flowd.store import workflows as workflow_store
from flowd.store.runs import Run, RunPreempted, RunStatus, TraceEntry
from flowd.store.workflows import Workflow, WorkflowStatus
from flowd.templates import Scope, TemplateError

EMPTY_SCOPE = Scope({})
from flowd.timeutil import Clock, deadline, format_ms
from flowd.triggers import IndexedWorkflow, TriggerIndex

log = logging.getLogger("flowd.engine")

LOOKBACK_SCAN_LIMIT = 1000
_VERSION_CACHE_SIZE = 1024


class Engine:
    def __init__(self, db: Database, clock: Clock, effects: Effects, *, max_concurrent: int,
                 waited: WaitedNames, max_steps_per_run: int = 10_000,
                 on_due: Callable[[str, int], None] | None = None) -> None:
        self._db = db
        self._step_limit = max_steps_per_run
        self._waited = waited
        self._clock = clock
        self._effects = effects
        self.max_concurrent = max_concurrent
        # Called with (run_id, due_at) whenever a run becomes due at a known time.
        self.on_due = on_due or (lambda run_id, due_at: None)
        self.index = TriggerIndex([])
        self._status: dict[str, WorkflowStatus] = {}
        self._current: dict[str, tuple[str, int]] = {}   # workflow id -> (project, version)
        self._versions: OrderedDict[tuple[str, int], CompiledWorkflow] = OrderedDict()
        self._executing: dict[str, asyncio.Task[None]] = {}
        # Runs waiting for a free slot (a burst of due timers or events can exceed the slots),
        # with their contact when it is already loaded: claimed runs, and runs this process
        # created that are still `pending`. `_waiting_ids` mirrors it for is_executing().
        self._ready: deque[tuple[Run, dict[str, Any] | None, bool]] = deque()
        self._waiting_ids: set[str] = set()
        self.capacity = asyncio.Event()
        self.capacity.set()
        self.steps_committed = 0

    # ------------------------------------------------------------ workflows

    async def load_workflows(self) -> None:
        for project_id, pattern in await self._db.read(run_store.waited_event_names):
            self._waited.add(project_id, pattern)
        for workflow in await self._db.read(workflow_store.all_current):
            self._remember(workflow)
        self._rebuild_index()

    def workflow_changed(self, workflow: Workflow | None, workflow_id: str) -> None:
        """Call after any committed change to a workflow (None: deleted)."""
        if workflow is None:
            self._status.pop(workflow_id, None)
            self._current.pop(workflow_id, None)
        else:
            self._remember(workflow)
        self._rebuild_index()

    def _remember(self, workflow: Workflow) -> None:
        self._status[workflow.id] = workflow.status
        if workflow.status in (WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED):
            compiled, _ = analyze(workflow.definition)
            if compiled is not None:
                self._cache_version(workflow.id, workflow.version, compiled)
        self._current[workflow.id] = (workflow.project_id, workflow.version)

    def _rebuild_index(self) -> None:
        entries = []
        for workflow_id, status in self._status.items():
            project_id, version = self._current[workflow_id]
            compiled = self._versions.get((workflow_id, version))
            if compiled is None:
                continue
            if status in (WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED):
                entries.append(IndexedWorkflow(workflow_id, project_id, version,
                                               status is WorkflowStatus.PAUSED, compiled))
        self.index = TriggerIndex(entries)

    def _cache_version(self, workflow_id: str, version: int, compiled: CompiledWorkflow) -> None:
        self._versions[(workflow_id, version)] = compiled
        self._versions.move_to_end((workflow_id, version))
        while len(self._versions) > _VERSION_CACHE_SIZE:
            self._versions.popitem(last=False)

    async def compiled(self, workflow_id: str, version: int) -> CompiledWorkflow | None:
        key = (workflow_id, version)
        compiled = self._versions.get(key)
        if compiled is None:
            stored = await self._db.read(workflow_store.get_version, workflow_id, version)
            if stored is None:
                return None
            compiled, _ = analyze(stored[0])
            if compiled is not None:
                self._cache_version(workflow_id, version, compiled)
        return compiled

    # ------------------------------------------------------------ dispatch

    def has_capacity(self) -> bool:
        return len(self._executing) < self.max_concurrent

    @property
    def executing(self) -> int:
        return len(self._executing)

    @property
    def backlog(self) -> int:
        """Runs queued for a slot."""
        return len(self._ready)

    def enqueue(self, run: Run, contact: dict[str, Any] | None = None, *,
                contact_loaded: bool = False) -> None:
        """Execute `run` (see start()) now if there is a free slot, else as soon as one frees."""
        if run.id in self._waiting_ids or run.id in self._executing:
            return
        if not self.start(run, contact, contact_loaded=contact_loaded):
            self._ready.append((run, contact, contact_loaded))
            self._waiting_ids.add(run.id)

    def is_executing(self, run_id: str) -> bool:
        """True while this process holds the run: executing it, or queued for a slot."""
        return run_id in self._executing or run_id in self._waiting_ids

    def start(self, run: Run, contact: dict[str, Any] | None = None, *,
              contact_loaded: bool = False) -> bool:
        """Execute `run` in the background. The run is either claimed (stored as `running`) or
        was just created by this process and is still `pending`: then its first commit is
        the claim. False when it is already executing here or there is no capacity."""
        if run.id in self._executing or not self.has_capacity():
            return False
        if run.stored_status is None:
            run.stored_status = run.status
        run.status = RunStatus.RUNNING
        task = asyncio.create_task(self._execute(run, contact, contact_loaded),
                                   name=f"run {run.id}")
        self._executing[run.id] = task
        if not self.has_capacity():
            self.capacity.clear()
        task.add_done_callback(lambda _: self._finished(run.id))
        return True

    async def claim(self, run_ids: list[str]) -> list[tuple[Run, dict[str, Any] | None, bool]]:
        """Claim due runs; see claim_unit()."""
        return await self._db.write(self.claim_unit, run_ids)

    def _finished(self, run_id: str) -> None:
        self._executing.pop(run_id, None)
        while self._ready and self.has_capacity():
            run, contact, contact_loaded = self._ready.popleft()
            self._waiting_ids.discard(run.id)
            self.start(run, contact, contact_loaded=contact_loaded)
        if self.has_capacity():
            self.capacity.set()

    async def stop(self) -> None:
        """Cancel what is executing; claimed runs (executing or not) are recovered at the
        next start like any run a crash left `running`."""
        self._ready.clear()
        self._waiting_ids.clear()
        tasks = list(self._executing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _execute(self, run: Run, contact: dict[str, Any] | None,
                       contact_loaded: bool) -> None:
        try:
            await self._drive(run, contact, contact_loaded)
        except RunPreempted:
            pass  # cancelled or exited while a step ran; that step's result is dropped
        except asyncio.CancelledError:
            raise  # shutdown: the run stays `running` and is recovered at next start
        except Exception:
            log.exception("run %s failed inside the engine", run.id)
            await self._fail_internal(run)

    async def _fail_internal(self, run: Run) -> None:
        now = self._clock.now_ms()
        run.status, run.completed_at, run.updated_at, run.due_at = (
            RunStatus.FAILED, now, now, None)
        run.error = {"code": "internal", "message": "the engine hit an unexpected error; see the "
                     "server log", "step_id": run.current_step_id}
        try:
            await self._db.write(run_store.save_run, run, expect=run.stored_status)
        except Exception:
            log.exception("could not record the failure of run %s", run.id)

    # ------------------------------------------------------------ the step loop

    async def _drive(self, run: Run, contact: dict[str, Any] | None, contact_loaded: bool) -> None:
        workflow = await self.compiled(run.workflow_id, run.workflow_version)
        if workflow is None:
            raise RuntimeError(f"version {run.workflow_version} of {run.workflow_id} cannot run")
        # The contact is read only once a step's templates or condition may read it: many runs
        # (timers, webhooks that do not mention it) never do.
        contact_loaded = contact_loaded or run.contact_id is None
        while run.status is RunStatus.RUNNING:
            if self._status.get(run.workflow_id) is WorkflowStatus.PAUSED:
                await self._pause(run)
                return
            step = workflow.steps.get(run.current_step_id or "")
            if step is None:
                await self._commit(run, None, fail=("unknown_step", f"no step '{run.current_step_id}'"))
                return
            if step.reads_contact and not contact_loaded:
                found = await self._db.read(contact_store.get_contact, run.project_id,
                                            run.contact_id)
                contact, contact_loaded = (found.to_json() if found else None), True
            updated = await self._advance(run, step, contact)
            if updated is not contact:  # the step changed the contact: this is it now
                contact, contact_loaded = updated, True

    async def _pause(self, run: Run) -> None:
        now = self._clock.now_ms()
        if run.wait is not None and run.wake is None:
            # Claimed because its timer came due: it fires on resume.
            run.wake = {"reason": "timer"}
        run.status, run.due_at, run.updated_at = RunStatus.PAUSED, None, now
        await self._db.write(self._save_paused, run, run.stored_status)
        run.stored_status = run.status

    @staticmethod
    def _save_paused(conn: sqlite3.Connection, run: Run, expect: RunStatus) -> None:
        run_store.remove_event_wait(conn, run.id)
        run_store.save_run(conn, run, expect=expect)

    def _scope(self, run: Run, contact: dict[str, Any] | None, now: int) -> Scope:
        return Scope({"contact": contact or {}, "event": run.trigger.get("event") or {},
                      "vars": run.vars, "steps": run.outputs,
                      "run": {"id": run.id, "workflow_id": run.workflow_id,
                              "workflow_version": run.workflow_version,
                              "contact_id": run.contact_id},
                      "now": format_ms(now)})

    async def _advance(self, run: Run, step: CompiledStep,
                       contact: dict[str, Any] | None) -> dict[str, Any] | None:
        """Execute (or end the wait of) the current step and commit the result."""
        now = self._clock.now_ms()
        # Only templated configs and condition steps read the scope; most steps need none.
        scope = self._scope(run, contact, now) if step.needs_scope else EMPTY_SCOPE
        waiting = run.wait is not None and not run.wait.get("retry")
        if waiting:
            entry, outcome, ended_event_wait = self._end_wait(run, step, now)
            return await self._settle(run, step, entry, outcome, contact, replace=True,
                                      clear_event_wait=ended_event_wait)

        if run.steps_executed >= self._step_limit:
            return await self._commit(run, None, fail=(
                "step_limit", f"the run executed {self._step_limit} steps; it is stopped"))
        run.wait = None
        entered_at = run.created_at if run.trace_len == 0 else run.updated_at
        visit = run.visits.get(step.id, 0) + (1 if run.attempt == 1 else 0)
        entry = TraceEntry(run.trace_len + 1, step.id, step.type.name, "ok", run.attempt, visit,
                           started_at=now)
        try:
            try:
                config = step.config.render(scope)
            except TemplateError as exc:
                raise StepFailed("invalid_template", str(exc), retryable=False) from None
            entry.input = config
            ctx = self._context(run, step, visit, now, config, scope)
            ctx.entered_at = entered_at
            outcome = await step.type.run(ctx)
        except StepFailed as failure:
            return await self._failed(run, step, entry, failure, contact)
        except FlowdError as exc:
            return await self._failed(run, step, entry, StepFailed(exc.code, exc.message), contact)
        except Exception as exc:
            log.exception("step %s of run %s raised", step.id, run.id)
            failure = StepFailed("step_crashed", f"{type(exc).__name__} inside the step")
            return await self._failed(run, step, entry, failure, contact)
        entry.finished_at = self._clock.now_ms()
        entry.outcome, entry.branch, entry.output = outcome.outcome, outcome.branch, outcome.output
        run.visits[step.id] = visit
        run.steps_executed += 1
        run.trace_len = entry.seq
        if outcome.wait is not None:
            entry.status, entry.finished_at = "waiting", None
            run.status = RunStatus.WAITING
            run.wait = {"kind": outcome.wait.kind, "until": outcome.wait.until,
                        "started_at": now, "input": entry.input}
            if outcome.wait.event is not None:
                run.wait["event"] = outcome.wait.event["event"]
            run.due_at = outcome.wait.until
            return await self._commit(run, entry, event_wait=outcome.wait.event, contact=contact,
                                      contact_patch=outcome.contact_patch)
        return await self._settle(run, step, entry, outcome, contact, replace=False)

    async def _settle(self, run: Run, step: CompiledStep, entry: TraceEntry, outcome: Outcome,
                      contact: dict[str, Any] | None, *, replace: bool,
                      clear_event_wait: bool = False) -> dict[str, Any] | None:
        """A step ended well: record its output and move to the next step (or end the run)."""
        self._move_on(run, step, outcome)
        return await self._commit(run, entry, contact=contact, contact_patch=outcome.contact_patch,
                                  replace=replace, clear_event_wait=clear_event_wait)

    def _end_wait(self, run: Run, step: CompiledStep, now: int
                  ) -> tuple[TraceEntry, Outcome, bool]:
        """A waiting step ends (its event came, or its timer): its trace entry becomes `ok`.
        Returns the entry, the outcome, and whether it was an event wait."""
        assert run.wait is not None
        wake = Wake(**run.wake) if run.wake else Wake("timer")
        visit = run.visits.get(step.id, 1)
        outcome = step.type.resume(self._context(run, step, visit, now, {}, EMPTY_SCOPE), wake)
        entry = TraceEntry(run.trace_len, step.id, step.type.name, "ok", run.attempt, visit,
                           started_at=run.wait.get("started_at", now), finished_at=now,
                           outcome=outcome.outcome, branch=outcome.branch,
                           input=run.wait.get("input"), output=outcome.output)
        ended_event_wait = run.wait.get("kind") == "event"
        run.wait, run.wake = None, None
        return entry, outcome, ended_event_wait

    def _move_on(self, run: Run, step: CompiledStep, outcome: Outcome) -> None:
        """Record a good outcome and point the run at its next step, or end it."""
        run.outputs[step.id] = outcome.output
        if outcome.vars_patch:
            run.vars.update(outcome.vars_patch)
        run.attempt = 1
        if outcome.exit_reason is not None:
            self._end(run, RunStatus.COMPLETED, exit_reason=outcome.exit_reason)
            return
        target = step.target(outcome.branch)
        if target is None:
            self._end(run, RunStatus.COMPLETED)
        else:
            run.current_step_id = target
            run.status = RunStatus.RUNNING

    # ------------------------------------------------------------ timers, in bulk

    def claim_unit(self, conn: sqlite3.Connection, run_ids: list[str]
                   ) -> list[tuple[Run, dict[str, Any] | None, bool]]:
        """Runs in the writer thread. Claims due runs and, for those whose timer ended a wait,
        ends the wait right here: its trace entry and the run's move to the next step commit
        with the claim. Ten thousand timers due in the same second are then ended in a few
        statements per transaction, instead of each waiting its turn for the engine. Returns
        the claimed runs that have work left as (run, contact, contact loaded). Contacts are
        loaded here in bulk, rather than one read per run, for runs whose next step needs
        them."""
        now = self._clock.now_ms()  # when the writer gets to it: what the trace records
        runs = run_store.claimable(conn, run_ids, now)
        expected = [run.status for run in runs]
        ended: list[tuple[str, TraceEntry]] = []
        ended_event_waits: list[str] = []
        for run in runs:
            run.status, run.due_at, run.updated_at = RunStatus.RUNNING, None, now
            if run.wait is None or run.wait.get("retry") or run.wake is not None:
                continue  # not a timer that ended a wait: the engine handles it
            step = self._cached_step(run)
            if step is None or self._status.get(run.workflow_id) is WorkflowStatus.PAUSED:
                continue
            entry, outcome, ended_event_wait = self._end_wait(run, step, now)
            self._move_on(run, step, outcome)
            ended.append((run.id, entry))
            if ended_event_wait:
                ended_event_waits.append(run.id)
        run_store.save_runs(conn, runs, expected)
        run_store.end_waits(conn, ended)
        run_store.remove_event_waits(conn, ended_event_waits)
        for run in runs:
            run.stored_status = run.status
        running = [run for run in runs if run.status is RunStatus.RUNNING]
        wanted = {run.id for run in running if run.contact_id and self._reads_contact(run)}
        contacts = contact_store.contacts_json(
            conn, [(run.project_id, run.contact_id) for run in running if run.id in wanted])
        return [(run, contacts.get((run.project_id, run.contact_id)), run.id in wanted)
                for run in running]

    def _reads_contact(self, run: Run) -> bool:
        step = self._cached_step(run)
        return step is None or step.reads_contact

    def _cached_step(self, run: Run) -> CompiledStep | None:
        """The run's current step, if its version is compiled in memory (no read: this runs in
        the writer thread)."""
        workflow = self._versions.get((run.workflow_id, run.workflow_version))
        return workflow.steps.get(run.current_step_id or "") if workflow else None

    async def _failed(self, run: Run, step: CompiledStep, entry: TraceEntry, failure: StepFailed,
                      contact: dict[str, Any] | None) -> dict[str, Any] | None:
        now = self._clock.now_ms()
        entry.status, entry.finished_at = "failed", now
        entry.outcome = "failed"
        entry.error = {"code": failure.code, "message": failure.message}
        entry.output = failure.output
        run.visits[step.id] = entry.visit
        run.steps_executed += 1
        run.trace_len = entry.seq
        if failure.retryable and run.attempt < step.retry.max_attempts:
            until = deadline(now, step.retry.delay_ms(run.attempt))
            run.attempt += 1
            run.status, run.due_at = RunStatus.WAITING, until
            run.wait = {"kind": "timer", "until": until, "retry": True}
            return await self._commit(run, entry, contact=contact)
        run.attempt = 1
        has_error_branch, target = step.error_target()
        if has_error_branch or step.on_error == "continue":
            if has_error_branch:
                entry.branch = "error"
            else:
                target = step.target(None)
            run.outputs[step.id] = failure.output
            if target is None:
                self._end(run, RunStatus.COMPLETED)
            else:
                run.current_step_id, run.status = target, RunStatus.RUNNING
            return await self._commit(run, entry, contact=contact)
        return await self._commit(run, entry, contact=contact, fail=(failure.code, failure.message))

    def _end(self, run: Run, status: RunStatus, *, exit_reason: str | None = None) -> None:
        now = self._clock.now_ms()
        run.status, run.completed_at, run.due_at = status, now, None
        run.wait, run.wake = None, None
        if exit_reason is not None:
            run.exit_reason = exit_reason

    def _context(self, run: Run, step: CompiledStep, visit: int, now: int,
                 config: dict[str, Any], scope: Scope) -> StepContext:
        return StepContext(run_id=run.id, project_id=run.project_id, workflow_id=run.workflow_id,
                           step_id=step.id, visit=visit, attempt=run.attempt, now_ms=now,
                           config=config, compiled=step.compiled, scope=scope,
                           effects=self._effects, contact_id=run.contact_id)

    # ------------------------------------------------------------ the commit

    async def _commit(self, run: Run, entry: TraceEntry | None, *,
                      contact: dict[str, Any] | None = None,
                      contact_patch: dict[str, Any] | None = None,
                      event_wait: dict[str, Any] | None = None,
                      fail: tuple[str, str] | None = None,
                      replace: bool = False,
                      clear_event_wait: bool = False) -> dict[str, Any] | None:
        """One unit: the trace entry, the contact change, the event wait, the run's new state.
        Returns the run's contact as it now is."""
        now = self._clock.now_ms()
        run.updated_at = now
        if fail is not None:
            self._end(run, RunStatus.FAILED)
            run.error = {"code": fail[0], "message": fail[1], "step_id": run.current_step_id}
        new_contact = await self._db.write(self._commit_unit, run, entry, contact_patch,
                                           event_wait, now, replace, clear_event_wait,
                                           run.stored_status)
        run.stored_status = run.status
        self.steps_committed += 1
        if run.status is RunStatus.WAITING and run.due_at is not None:
            self.on_due(run.id, run.due_at)
        return new_contact if new_contact is not None else contact

    def _commit_unit(self, conn: sqlite3.Connection, run: Run, entry: TraceEntry | None,
                     contact_patch: dict[str, Any] | None, event_wait: dict[str, Any] | None,
                     now: int, replace: bool, clear_event_wait: bool,
                     expect: RunStatus) -> dict[str, Any] | None:
        if entry is not None:
            run_store.write_trace(conn, run.id, entry, replace=replace)
        contact = None
        if contact_patch and run.contact_id is not None:
            contact = contact_store.upsert_contact(conn, run.project_id, run.contact_id,
                                                   contact_patch, now)[0].to_json()
        if event_wait is not None:
            matched = self._lookback(conn, run, event_wait, contact)
            if matched is not None:
                # An event that arrived before the wait was registered satisfies it at once.
                run.status, run.due_at = RunStatus.RUNNING, None
                run.wake = {"reason": "event", "event": matched}
            else:
                run_store.add_event_wait(conn, run, event_wait["event"], event_wait.get("filter"),
                                         event_wait["since"])
                self._waited.add(run.project_id, event_wait["event"])
        elif clear_event_wait:
            run_store.remove_event_wait(conn, run.id)
        run_store.save_run(conn, run, expect=expect)
        return contact

    def _lookback(self, conn: sqlite3.Connection, run: Run, wait: dict[str, Any],
                  contact: dict[str, Any] | None) -> dict[str, Any] | None:
        matches_name = name_pattern(wait["event"])
        condition = wait_filter(wait["filter"]) if wait.get("filter") is not None else None
        for event in event_store.events_since(conn, run.project_id, run.contact_id, wait["since"],
                                              LOOKBACK_SCAN_LIMIT):
            if not matches_name(event.name):
                continue
            data = event_json(event)
            if condition is not None:
                if contact is None and run.contact_id is not None:
                    found = contact_store.get_contact(conn, run.project_id, run.contact_id)
                    contact = found.to_json() if found else {}
                if not condition.evaluate(Scope({"event": data, "contact": contact or {}}),
                                          self._clock.now_ms()):
                    continue
            return data
        return None
