"""Run verbs from the API: fire a workflow for a contact, cancel, resume, retry, cancel all.
Each is one unit of the group commit; runs that become due are handed to the scheduler."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any, Callable

from flowd.errors import Conflict, NotFound, Problem, ValidationError
from flowd.matching import may_enter, new_run
from flowd.store import Database
from flowd.store import contacts as contact_store
from flowd.store import runs as run_store
from flowd.store import workflows as workflow_store
from flowd.store.runs import Run, RunStatus
from flowd.store.workflows import WorkflowStatus
from flowd.timeutil import Clock, format_ms
from flowd.triggers import IndexedWorkflow

TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunControl:
    def __init__(self, db: Database, clock: Clock,
                 indexed: Callable[[str], IndexedWorkflow | None],
                 on_runs_due: Callable[[list[str]], None],
                 on_started: Callable[[list[tuple[Run, dict[str, Any] | None]]], None]) -> None:
        self._db = db
        self._clock = clock
        self._indexed = indexed
        self._on_runs_due = on_runs_due
        self._on_started = on_started

    async def get(self, project_id: str, run_id: str) -> Run:
        run = await self._db.read(run_store.get_run, project_id, run_id)
        if run is None:
            raise NotFound("no such run")
        return run

    async def fire(self, project_id: str, workflow_id: str, payload: dict[str, Any], *,
                   contact_id: str | None = None, email: str | None = None) -> tuple[Run, bool]:
        """Start a run for one contact, named by id or by email; (run, created). Follows the
        workflow's reentry rule."""
        now = self._clock.now_ms()

        def unit(conn: sqlite3.Connection) -> tuple[Run, bool, dict[str, Any] | None]:
            nonlocal contact_id
            if email is not None:
                contact_id = _contact_with_email(conn, project_id, email)
            workflow = workflow_store.get_workflow(conn, project_id, workflow_id)
            if workflow is None:
                raise NotFound("no such workflow")
            if workflow.status not in (WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED):
                raise Conflict(f"the workflow is {workflow.status.value}; only an active or "
                               "paused workflow can be fired")
            indexed = self._indexed(workflow_id)
            if indexed is None or indexed.version != workflow.version:
                raise Conflict("the workflow is being changed; try again")
            if contact_id is not None:
                contact_store.ensure_contact(conn, project_id, contact_id, now)
            blocking = may_enter(conn, indexed, contact_id)
            if blocking is not None:
                existing = run_store.get_run(conn, project_id, blocking)
                assert existing is not None
                return existing, False, None
            event = {"id": None, "name": "api.fire", "contact_id": contact_id,
                     "properties": payload, "timestamp": format_ms(now),
                     "received_at": format_ms(now), "message_id": None}
            run = new_run(indexed, contact_id, {"type": "api", "event": event}, now)
            run_store.insert_run(conn, run)
            contact = (contact_store.get_contact(conn, project_id, contact_id)
                       if contact_id is not None else None)
            return run, True, contact.to_json() if contact else None

        run, created, contact = await self._db.write(unit)
        reply = dataclasses.replace(run)  # the engine takes `run` itself and changes it
        if created and run.status is RunStatus.PENDING:
            self._on_started([(run, contact)])
        return reply, created

    async def cancel(self, project_id: str, run_id: str) -> Run:
        now = self._clock.now_ms()

        def unit(conn: sqlite3.Connection) -> Run:
            run = _existing(conn, project_id, run_id)
            if run.status is RunStatus.CANCELLED:
                return run
            if run.status in TERMINAL:
                raise Conflict(f"the run is {run.status.value}; only an active run can be cancelled")
            run_store.finish(conn, run_id, RunStatus.CANCELLED, now)
            return _existing(conn, project_id, run_id)

        return await self._db.write(unit)

    async def resume(self, project_id: str, run_id: str) -> Run:
        now = self._clock.now_ms()

        def unit(conn: sqlite3.Connection) -> Run:
            run = _existing(conn, project_id, run_id)
            workflow = workflow_store.get_workflow(conn, project_id, run.workflow_id)
            if run.status is RunStatus.PAUSED and workflow is not None \
                    and workflow.status is WorkflowStatus.PAUSED:
                # It would only be held again at its next step: say so instead.
                raise Conflict("the run's workflow is paused; resume the workflow to let its "
                               "runs go on")
            if not run_store.resume_run(conn, run_id, now):
                raise Conflict(f"the run is {run.status.value}; only a paused run can be resumed")
            return _existing(conn, project_id, run_id)

        run = await self._db.write(unit)
        self._on_runs_due([run.id])
        return run

    async def retry(self, project_id: str, run_id: str, from_step: str | None) -> Run:
        now = self._clock.now_ms()
        run = await self.get(project_id, run_id)
        if from_step is not None:
            version = await self._db.read(workflow_store.get_version, run.workflow_id,
                                          run.workflow_version)
            if version is None or from_step not in {s["id"] for s in version[0]["steps"]}:
                raise ValidationError([Problem("from_step", f"version {run.workflow_version} of "
                                               f"the workflow has no step '{from_step}'",
                                               "unknown_step")])

        def unit(conn: sqlite3.Connection) -> Run:
            current = _existing(conn, project_id, run_id)
            if current.status is not RunStatus.FAILED:
                raise Conflict(f"the run is {current.status.value}; only a failed run can be retried")
            current.status, current.due_at, current.updated_at = RunStatus.PENDING, now, now
            current.current_step_id = from_step or current.current_step_id
            current.error, current.completed_at, current.attempt = None, None, 1
            current.wait, current.wake = None, None
            run_store.save_run(conn, current, expect=RunStatus.FAILED)
            return current

        run = await self._db.write(unit)
        self._on_runs_due([run.id])
        return run

    async def erase_contact(self, project_id: str, contact_id: str) -> None:
        """Delete a contact; its active runs are cancelled in the same transaction."""
        now = self._clock.now_ms()

        def unit(conn: sqlite3.Connection) -> None:
            for run_id in run_store.active_runs_of_contact(conn, project_id, contact_id):
                run_store.finish(conn, run_id, RunStatus.CANCELLED, now)
            if not contact_store.delete_contact(conn, project_id, contact_id):
                raise NotFound("no such contact")

        await self._db.write(unit)

    async def cancel_all(self, project_id: str, workflow_id: str) -> int:
        now = self._clock.now_ms()

        def unit(conn: sqlite3.Connection) -> int:
            if workflow_store.get_workflow(conn, project_id, workflow_id) is None:
                raise NotFound("no such workflow")
            cancelled = 0
            # In chunks, so the statement per chunk stays small; bounded by the number of runs.
            while ids := run_store.active_run_ids(conn, workflow_id, 1000):
                cancelled += sum(run_store.finish(conn, run_id, RunStatus.CANCELLED, now)
                                 for run_id in ids)
            return cancelled

        return await self._db.write(unit)


def _contact_with_email(conn: sqlite3.Connection, project_id: str, email: str) -> str:
    found = contact_store.list_contacts(conn, project_id, email=email, tag=None, before=None,
                                        limit=2).items
    if not found:
        raise NotFound("no contact has this email")
    if len(found) > 1:
        raise Conflict("several contacts have this email; name the contact by contact_id")
    return found[0].id


def _existing(conn: sqlite3.Connection, project_id: str, run_id: str) -> Run:
    run = run_store.get_run(conn, project_id, run_id)
    if run is None:
        raise NotFound("no such run")
    return run
