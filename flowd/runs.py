"""Starting and ending runs from outside the engine: a run's first state, the reentry rule that
decides whether a contact may enter a workflow again, and ending an active run (cancel,
exit_on). Used inside units of work by ingest, firing, and run control."""

from __future__ import annotations

from typing import Any

from flowd.ids import new_id
from flowd.store import Transaction
from flowd.store.records import ACTIVE_STATUSES, Run, RunStatus
from flowd.triggers import IndexedWorkflow


def new_run(workflow: IndexedWorkflow, contact_id: str | None, trigger: dict[str, Any],
            now: int, *, run_id: str | None = None) -> Run:
    """A run of the workflow's current version, at its first step: pending (due now), or paused
    while the workflow is. `run_id`: a deterministic id (a schedule's fire), else a new one."""
    status = RunStatus.PAUSED if workflow.paused else RunStatus.PENDING
    return Run(id=run_id or new_id("run", now), project_id=workflow.project_id,
               workflow_id=workflow.workflow_id, workflow_version=workflow.version,
               contact_id=contact_id, status=status,
               current_step_id=workflow.compiled.first_step, trigger=trigger, created_at=now,
               updated_at=now, due_at=None if workflow.paused else now)


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
                   *, exit_reason: str | None = None) -> bool:
    """End a run from outside the engine (cancel, exit_on, a contact erased). False when it was
    not active. A step the engine is running for it meanwhile is then not recorded."""
    run = tx.runs.get(project_id, run_id)
    if run is None or run.status not in ACTIVE_STATUSES:
        return False
    run.status, run.completed_at, run.updated_at, run.due_at = status, now, now, None
    run.wait, run.wake, run.exit_reason = None, None, exit_reason
    return tx.runs.end(run, expect=ACTIVE_STATUSES)
