"""Bulk job verbs from the API: create a job (its contact list stored with it), read and list
jobs, approve and cancel. Each is one unit of work; the processor (flowd.bulk) is woken once a
job it should process has committed."""

from __future__ import annotations

from typing import Any, Callable

from flowd.clock import Clock
from flowd.errors import Conflict, NotFound, Problem, ValidationError
from flowd.ids import new_id
from flowd.runs import fireable_workflow
from flowd.store import Store, Transaction
from flowd.store.records import (
    BulkJob,
    BulkJobStatus,
    BulkSource,
    Page,
)

_CANCELLABLE = (BulkJobStatus.APPROVAL, BulkJobStatus.RUNNING)


class BulkControl:
    def __init__(self, store: Store, clock: Clock, on_runnable: Callable[[], None]) -> None:
        self._store = store
        self._clock = clock
        self._on_runnable = on_runnable

    async def create(self, project_id: str, workflow_id: str, *, payload: dict[str, Any],
                     require_approval: bool, contact_ids: list[str] | None = None,
                     audience: str | None = None) -> BulkJob:
        """A job over the given contacts (or audience), waiting for approval or running."""
        # Order kept, duplicates counted once: the list is what the job's positions number.
        listed = list(dict.fromkeys(contact_ids)) if contact_ids is not None else []
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> BulkJob:
            fireable_workflow(tx, project_id, workflow_id)
            if audience is not None:
                # The job reads its contacts from a source by position, so an audience source
                # slots in beside the list once audiences exist (the channels issue).
                raise ValidationError([Problem(
                    "audience", f"no audience '{audience}': audiences do not exist in flowd "
                    "yet; name the contacts with contact_ids", "unknown_audience")])
            status = BulkJobStatus.APPROVAL if require_approval else BulkJobStatus.RUNNING
            job = BulkJob(id=new_id("job", now), project_id=project_id, workflow_id=workflow_id,
                          status=status, source=BulkSource.CONTACT_IDS, source_ref=None,
                          payload=payload, require_approval=require_approval,
                          total=len(listed), created_at=now, updated_at=now)
            tx.bulk_jobs.create(job, listed)
            if status is BulkJobStatus.RUNNING:
                tx.after_commit.append(self._on_runnable)
            return job

        return await self._store.write(unit)

    async def get(self, project_id: str, job_id: str) -> BulkJob:
        job = await self._store.read(lambda tx: tx.bulk_jobs.get(project_id, job_id))
        if job is None:
            raise NotFound("no such bulk job")
        return job

    async def page(self, project_id: str, workflow_id: str, *, before: int | None,
                   limit: int) -> Page:
        def query(tx: Transaction) -> Page:
            if tx.workflows.get(project_id, workflow_id) is None:
                raise NotFound("no such workflow")
            return tx.bulk_jobs.page(project_id, workflow_id=workflow_id, before=before,
                                     limit=limit)

        return await self._store.read(query)

    async def approve(self, project_id: str, job_id: str) -> BulkJob:
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> BulkJob:
            job = _existing(tx, project_id, job_id)
            if not tx.bulk_jobs.set_status(job_id, BulkJobStatus.RUNNING, now,
                                           expect=(BulkJobStatus.APPROVAL,)):
                raise Conflict(f"the job is {job.status.value}; only a job waiting for "
                               "approval can be approved")
            tx.after_commit.append(self._on_runnable)
            return _existing(tx, project_id, job_id)

        return await self._store.write(unit)

    async def cancel(self, project_id: str, job_id: str) -> BulkJob:
        """Stops the job: once this has committed, no chunk starts another run for it (each
        chunk checks the job's status in its own unit). Runs already started stay."""
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> BulkJob:
            job = _existing(tx, project_id, job_id)
            if job.status is BulkJobStatus.CANCELLED:
                return job
            if not tx.bulk_jobs.set_status(job_id, BulkJobStatus.CANCELLED, now,
                                           expect=_CANCELLABLE):
                raise Conflict(f"the job is {job.status.value}; only a job waiting for approval "
                               "or running can be cancelled")
            return _existing(tx, project_id, job_id)

        return await self._store.write(unit)


def _existing(tx: Transaction, project_id: str, job_id: str) -> BulkJob:
    job = tx.bulk_jobs.get(project_id, job_id)
    if job is None:
        raise NotFound("no such bulk job")
    return job
