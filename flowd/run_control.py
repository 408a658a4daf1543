"""Run verbs from the API: fire a workflow for a contact, cancel, resume, retry, cancel all, and
erasing a contact. Each is one unit of work; runs that become due are handed on once it has
committed (after_commit)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from flowd.clock import Clock
from flowd.errors import Conflict, NotFound, Problem, ValidationError
from flowd.runs import blocking_run, end_active_run, fireable_workflow, new_run
from flowd.store import Store, Transaction
from flowd.store.records import TERMINAL_STATUSES, Run, RunStatus, WorkflowStatus
from flowd.timeutil import format_ms
from flowd.triggers import IndexedWorkflow

_CANCEL_CHUNK = 1000


class RunControl:
    def __init__(self, store: Store, clock: Clock,
                 indexed: Callable[[str], IndexedWorkflow | None],
                 on_runs_due: Callable[[list[str]], None],
                 on_started: Callable[[list[tuple[Run, dict[str, Any] | None]]], None]) -> None:
        self._store = store
        self._clock = clock
        self._indexed = indexed
        self._on_runs_due = on_runs_due
        self._on_started = on_started

    async def get(self, project_id: str, run_id: str) -> Run:
        run = await self._store.get_run(project_id, run_id)
        if run is None:
            raise NotFound("no such run")
        return run

    async def fire(self, project_id: str, workflow_id: str, payload: dict[str, Any], *,
                   contact_id: str | None = None, email: str | None = None) -> tuple[Run, bool]:
        """Start a run for one contact, named by id or by email; (run, created). Follows the
        workflow's reentry rule."""
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> tuple[Run, bool]:
            contact = contact_id if email is None else _contact_with_email(tx, project_id, email)
            workflow = fireable_workflow(tx, project_id, workflow_id)
            indexed = self._indexed(workflow_id)
            if indexed is None or indexed.version != workflow.version:
                raise Conflict("the workflow is being changed; try again")
            if contact is not None:
                tx.contacts.ensure(project_id, [contact], now)
            blocking = blocking_run(tx, indexed, contact)
            if blocking is not None:
                existing = tx.runs.get(project_id, blocking)
                assert existing is not None
                return existing, False
            event = {"id": None, "name": "api.fire", "contact_id": contact,
                     "properties": payload, "timestamp": format_ms(now),
                     "received_at": format_ms(now), "message_id": None}
            run = new_run(indexed, contact, {"type": "api", "event": event}, now)
            tx.runs.insert([run])
            reply = dataclasses.replace(run)   # the engine takes `run` itself and changes it
            if run.status is RunStatus.PENDING:
                found = tx.contacts.get(project_id, contact) if contact is not None else None
                started = [(run, found.to_json() if found else None)]
                tx.after_commit.append(lambda: self._on_started(started))
            return reply, True

        return await self._store.write(unit)

    async def cancel(self, project_id: str, run_id: str) -> Run:
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> Run:
            run = _existing(tx, project_id, run_id)
            if run.status is RunStatus.CANCELLED:
                return run
            if run.status in TERMINAL_STATUSES:
                raise Conflict(f"the run is {run.status.value}; only an active run can be cancelled")
            end_active_run(tx, project_id, run_id, RunStatus.CANCELLED, now, self._woken(tx))
            return _existing(tx, project_id, run_id)

        return await self._store.write(unit)

    async def resume(self, project_id: str, run_id: str) -> Run:
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> Run:
            run = _existing(tx, project_id, run_id)
            workflow = tx.workflows.get(project_id, run.workflow_id)
            if run.status is RunStatus.PAUSED and workflow is not None \
                    and workflow.status is WorkflowStatus.PAUSED:
                # It would only be held again at its next step: say so instead.
                raise Conflict("the run's workflow is paused; resume the workflow to let its "
                               "runs go on")
            if not tx.runs.resume(run_id, now):
                raise Conflict(f"the run is {run.status.value}; only a paused run can be resumed")
            tx.after_commit.append(lambda: self._on_runs_due([run_id]))
            return _existing(tx, project_id, run_id)

        return await self._store.write(unit)

    async def retry(self, project_id: str, run_id: str, from_step: str | None) -> Run:
        now = self._clock.now_ms()
        run = await self.get(project_id, run_id)
        if from_step is not None:
            version = await self._store.workflow_version(run.workflow_id, run.workflow_version)
            if version is None or from_step not in {s["id"] for s in version.definition["steps"]}:
                raise ValidationError([Problem("from_step", f"version {run.workflow_version} of "
                                               f"the workflow has no step '{from_step}'",
                                               "unknown_step")])

        def unit(tx: Transaction) -> Run:
            current = _existing(tx, project_id, run_id)
            if current.status is not RunStatus.FAILED:
                raise Conflict(f"the run is {current.status.value}; only a failed run can be retried")
            current.status, current.due_at, current.updated_at = RunStatus.PENDING, now, now
            current.current_step_id = from_step or current.current_step_id
            current.error, current.completed_at, current.attempt = None, None, 1
            current.wait, current.wake = None, None
            tx.runs.save(current, expect=RunStatus.FAILED)
            tx.after_commit.append(lambda: self._on_runs_due([run_id]))
            return current

        return await self._store.write(unit)

    async def erase_contact(self, project_id: str, contact_id: str) -> None:
        """Delete a contact; its active runs are cancelled in the same transaction."""
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> None:
            woken = self._woken(tx)
            for run_id in tx.runs.active_ids(project_id, contact_id=contact_id):
                end_active_run(tx, project_id, run_id, RunStatus.CANCELLED, now, woken)
            if not tx.contacts.delete(project_id, contact_id):
                raise NotFound("no such contact")

        await self._store.write(unit)

    async def cancel_all(self, project_id: str, workflow_id: str) -> int:
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> int:
            if tx.workflows.get(project_id, workflow_id) is None:
                raise NotFound("no such workflow")
            cancelled, woken = 0, self._woken(tx)
            # In chunks, so each statement stays small; bounded by the number of runs.
            while ids := tx.runs.active_ids(project_id, workflow_ids=[workflow_id],
                                            limit=_CANCEL_CHUNK):
                cancelled += sum(end_active_run(tx, project_id, run_id, RunStatus.CANCELLED, now,
                                                woken) for run_id in ids)
            return cancelled

        return await self._store.write(unit)


    def _woken(self, tx: Transaction) -> list[str]:
        """A list for the runs a unit wakes (parents of the runs it ends), handed to the
        scheduler once the unit has committed."""
        woken: list[str] = []
        tx.after_commit.append(lambda: woken and self._on_runs_due(woken))
        return woken


def _contact_with_email(tx: Transaction, project_id: str, email: str) -> str:
    found = tx.contacts.page(project_id, email=email, tag=None, before=None, limit=2).items
    if not found:
        raise NotFound("no contact has this email")
    if len(found) > 1:
        raise Conflict("several contacts have this email; name the contact by contact_id")
    return found[0].id


def _existing(tx: Transaction, project_id: str, run_id: str) -> Run:
    run = tx.runs.get(project_id, run_id)
    if run is None:
        raise NotFound("no such run")
    return run
