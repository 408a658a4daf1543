"""Bulk job verbs from the API: create a job (its contact list stored with it), read and list
jobs, approve and cancel. Each is one unit of work; the processor (flowd.bulk) is woken once a
job it should process has committed.

A job over an audience lists the audience's members when it is created (the one evaluator of
flowd.audience_service, at that moment) and from then on reads that list like any other: a
job waiting for approval starts exactly the contacts its approver saw counted in `total`, and
later changes to contacts or to the audience do not move it."""

from __future__ import annotations

from typing import Any, Callable

from flowd.audience_service import AudienceService, TooManyMembers, too_costly
from flowd.clock import Clock
from flowd.errors import Conflict, NotFound, Problem, ValidationError
from flowd.ids import new_id
from flowd.runs import fireable_workflow
from flowd.store import Store, Transaction
from flowd.store.records import (
    AudienceTooCostly,
    BulkJob,
    BulkJobStatus,
    BulkSource,
    Page,
)

_CANCELLABLE = (BulkJobStatus.APPROVAL, BulkJobStatus.RUNNING)


class BulkControl:
    def __init__(self, store: Store, clock: Clock, on_runnable: Callable[[], None],
                 audiences: AudienceService | None = None) -> None:
        self._store = store
        self._clock = clock
        self._on_runnable = on_runnable
        self._audiences = audiences

    async def create(self, project_id: str, workflow_id: str, *, payload: dict[str, Any],
                     require_approval: bool, contact_ids: list[str] | None = None,
                     audience: str | None = None) -> BulkJob:
        """A job over the given contacts (or audience), waiting for approval or running."""
        # Order kept, duplicates counted once: the list is what the job's positions number.
        listed = list(dict.fromkeys(contact_ids)) if contact_ids is not None else []
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> BulkJob:
            fireable_workflow(tx, project_id, workflow_id)
            source, source_ref, contacts = BulkSource.CONTACT_IDS, None, listed
            if audience is not None:
                source, (source_ref, contacts) = BulkSource.AUDIENCE, self._members(
                    tx, project_id, audience, now)
            status = BulkJobStatus.APPROVAL if require_approval else BulkJobStatus.RUNNING
            job = BulkJob(id=new_id("job", now), project_id=project_id, workflow_id=workflow_id,
                          status=status, source=source, source_ref=source_ref,
                          payload=payload, require_approval=require_approval,
                          total=len(contacts), created_at=now, updated_at=now)
            tx.bulk_jobs.create(job, contacts)
            if status is BulkJobStatus.RUNNING:
                tx.after_commit.append(self._on_runnable)
            return job

        return await self._store.write(unit)

    def _members(self, tx: Transaction, project_id: str, ref: str,
                 now: int) -> tuple[str, list[str]]:
        """(audience id, its members now): 422 for an unknown audience or too many members."""
        found = tx.audiences.get(project_id, ref)
        if found is None or self._audiences is None:
            raise ValidationError([Problem("audience", f"no audience has the id or name {ref!r}",
                                           "unknown_audience")])
        try:
            return found.id, self._audiences.member_ids_in(tx, found, now)
        except TooManyMembers as error:
            raise ValidationError([Problem("audience", f"{error}: a bulk job takes at most "
                                           f"{error.limit:,}", "too_many_members")]) from None
        except AudienceTooCostly as error:
            raise too_costly(error) from None

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
