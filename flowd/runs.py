"""Starting and ending runs from outside the engine: a run's first state, the reentry rule that
decides whether a contact may enter a workflow again, and ending an active run (cancel,
exit_on). Used inside units of work by ingest, firing, and run control."""

from __future__ import annotations

from typing import Any

from flowd.errors import Conflict, NotFound
from flowd.ids import new_id
from flowd.store import Transaction
from flowd.store.records import (
    ACTIVE_STATUSES,
    Run,
    RunStatus,
    Workflow,
    WorkflowStatus,
)
from flowd.triggers import IndexedWorkflow
from flowd.waits import WaitKind, Wake, WakeReason


def new_run(workflow: IndexedWorkflow, contact_id: str | None, trigger: dict[str, Any],
            now: int, *, parent_run_id: str | None = None, run_id: str | None = None) -> Run:
    """A run of the workflow's current version, at its first step: pending (due now), or paused
    while the workflow is. `run_id`: a deterministic id (a schedule's fire), else a new one."""
    status = RunStatus.PAUSED if workflow.paused else RunStatus.PENDING
    return Run(id=run_id or new_id("run", now), project_id=workflow.project_id,
               workflow_id=workflow.workflow_id, workflow_version=workflow.version,
               contact_id=contact_id, status=status,
               current_step_id=workflow.compiled.first_step, trigger=trigger, created_at=now,
               updated_at=now, due_at=None if workflow.paused else now,
               parent_run_id=parent_run_id)


def fireable_workflow(tx: Transaction, project_id: str, workflow_id: str) -> Workflow:
    """The workflow runs may be started on from outside (a fire, a bulk job): 404 unknown, 409
    unless active or paused."""
    workflow = tx.workflows.get(project_id, workflow_id)
    if workflow is None:
        raise NotFound("no such workflow")
    if workflow.status not in (WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED):
        raise Conflict(f"the workflow is {workflow.status.value}; only an active or paused "
                       "workflow can be fired")
    return workflow


def blocking_run(tx: Transaction, workflow: IndexedWorkflow, contact_id: str | None
                 ) -> str | None:
    """None when the contact may start a new run of the workflow (its reentry rule); else the
    id of the run that keeps it out."""
    reentry = workflow.compiled.reentry
    if contact_id is None or reentry == "always":
        return None
    return tx.runs.blocking_entry(workflow.project_id, workflow.workflow_id, contact_id,
                                  ever=reentry == "once")


def end_active_run(tx: Transaction, project_id: str, run_id: str, status: RunStatus, now: int,
                   woken: list[str], *, exit_reason: str | None = None) -> bool:
    """End a run from outside the engine (cancel, exit_on, a contact erased). False when it was
    not active. A step the engine is running for it meanwhile is then not recorded. Runs its
    end made due (a waiting parent) are added to `woken`, for the caller to hand on."""
    run = tx.runs.get(project_id, run_id)
    if run is None or run.status not in ACTIVE_STATUSES:
        return False
    awaited = waited_child(run)
    run.status, run.completed_at, run.updated_at, run.due_at = status, now, now, None
    run.wait, run.wake, run.exit_reason = None, None, exit_reason
    if not tx.runs.end(run, expect=ACTIVE_STATUSES):
        return False
    after_end(tx, run, now, woken)
    if awaited is not None and status is RunStatus.CANCELLED:
        # The child it waited for has no one left to report to. The chain is at most a
        # dozen runs long (run_workflow's depth limit), so this recursion is bounded.
        end_active_run(tx, project_id, awaited, RunStatus.CANCELLED, now, woken)
    return True


def waited_child(run: Run) -> str | None:
    wait = run.wait
    return wait.ref if wait is not None and wait.kind is WaitKind.CHILD else None


def after_end(tx: Transaction, run: Run, now: int, woken: list[str]) -> None:
    """In the unit that ends a child run: its parent, if it waits on this very run, wakes with
    the child's outcome (and is added to `woken`, for the caller to make due)."""
    if run.parent_run_id is None:
        return
    outcome: dict[str, Any] = {"run_id": run.id, "workflow_id": run.workflow_id,
                               "status": run.status.value, "vars": run.vars}
    if run.error is not None:
        outcome["error"] = run.error
    if tx.runs.wake_for(run.parent_run_id, WaitKind.CHILD, run.id,
                        Wake(WakeReason.CHILD, data=outcome), now):
        woken.append(run.parent_run_id)


def depth(run: Run) -> int:
    """How many runs (parents, or runs whose steps emitted the triggering event) led to this
    one: 0 for a run started from outside."""
    return int(run.trigger.get("depth", 0))
