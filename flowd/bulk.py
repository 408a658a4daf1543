"""The bulk processor: works through running bulk jobs, one chunk of contacts at a time.

Each chunk is ONE unit of work: read the next contacts from the job's source after its cursor,
apply the workflow's reentry rule to each (started or skipped), insert the new runs, and move
the cursor and the counts — all or nothing, so a crash never starts a contact twice or skips
one; the runs go to the scheduler once the chunk is durable. Jobs take turns a chunk each, and
the processor awaits every chunk's commit before the next, so the API and the engine get the
writer in between and no transaction grows with the job. Running jobs are found in the store,
so a restart goes on where the last committed chunk left off.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any, Callable

from flowd.clock import Clock
from flowd.runs import blocking_run, new_run
from flowd.store import Store, Transaction
from flowd.store.records import (
    BulkJob,
    BulkJobStatus,
    Run,
    RunStatus,
    WorkflowStatus,
)
from flowd.timeutil import format_ms
from flowd.triggers import IndexedWorkflow

log = logging.getLogger("flowd.bulk")

CHUNK = 500            # contacts per unit of work
_JOBS_PER_ROUND = 100  # running jobs taking turns in one round
_RETRY_MS = 50         # a round that could not move any job waits this long (a workflow change
                       # whose commit the registry has not caught up with yet)
_ERROR_PAUSE_MS = 1000


class _Step(enum.Enum):
    MOVED = "moved"        # a chunk was done; the job may have more
    ENDED = "ended"        # the job is no longer running (finished, failed, cancelled, gone)
    NOT_YET = "not_yet"    # nothing done: try again shortly


Started = list[tuple[Run, "dict[str, Any] | None"]]


class BulkProcessor:
    def __init__(self, store: Store, clock: Clock,
                 indexed: Callable[[str], IndexedWorkflow | None],
                 on_started: Callable[[Started], None], *, chunk: int = CHUNK) -> None:
        self._store = store
        self._clock = clock
        self._indexed = indexed
        self._on_started = on_started
        self._chunk = chunk
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="flowd-bulk")

    async def stop(self) -> None:
        """Returns once the chunk in flight (if any) has committed; no chunk starts after."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        """A job became running (created or approved)."""
        self._wake.set()

    async def run_round(self) -> bool:
        """One chunk of every running job; True when some job moved or ended."""
        job_ids = await self._store.read(lambda tx: tx.bulk_jobs.running_ids(_JOBS_PER_ROUND))
        progressed = False
        for job_id in job_ids:
            if self._stopping:
                break
            progressed |= await self.process_chunk(job_id) is not _Step.NOT_YET
        return progressed

    async def process_chunk(self, job_id: str) -> _Step:
        now = self._clock.now_ms()
        return await self._store.write(self._chunk_unit, job_id, now)

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                progressed = await self.run_round()
            except Exception:
                log.exception("bulk round failed; retrying in a second")
                await self._pause(_ERROR_PAUSE_MS)
                continue
            if self._stopping:
                break
            if progressed:
                await asyncio.sleep(0)   # let handlers and the engine run between rounds
            elif await self._store.read(lambda tx: tx.bulk_jobs.running_ids(1)):
                await self._pause(_RETRY_MS)
            else:
                await self._wake.wait()

    async def _pause(self, ms: int) -> None:
        await self._clock.wait_until(self._wake, self._clock.now_ms() + ms)

    # -- one chunk: runs in the writer ----------------------------------------------------

    def _chunk_unit(self, tx: Transaction, job_id: str, now: int) -> _Step:
        job = tx.bulk_jobs.get(None, job_id)
        if job is None or job.status is not BulkJobStatus.RUNNING:
            return _Step.ENDED   # cancelled (or deleted with its workflow) meanwhile
        workflow = tx.workflows.get(job.project_id, job.workflow_id)
        if workflow is None or workflow.status not in (WorkflowStatus.ACTIVE,
                                                       WorkflowStatus.PAUSED):
            state = "deleted" if workflow is None else workflow.status.value
            tx.bulk_jobs.set_status(job_id, BulkJobStatus.FAILED, now,
                                    expect=(BulkJobStatus.RUNNING,), error={
                                        "code": "workflow_not_running",
                                        "message": f"the workflow became {state} after "
                                                   f"{job.started + job.skipped} of {job.total} "
                                                   "contacts; the rest were not started"})
            return _Step.ENDED
        indexed = self._indexed(job.workflow_id)
        if indexed is None or indexed.version != workflow.version \
                or indexed.paused != (workflow.status is WorkflowStatus.PAUSED):
            # A change to the workflow has committed but the registry learns of it only after
            # its commit: start runs on the version (and pause state) the store has, later.
            return _Step.NOT_YET
        chunk, exhausted = self._next_contacts(tx, job)
        contact_ids = [contact_id for _, contact_id in chunk]
        tx.contacts.ensure(job.project_id, contact_ids, now)
        runs = []
        for contact_id in contact_ids:
            if blocking_run(tx, indexed, contact_id) is None:
                runs.append(new_run(indexed, contact_id, _trigger(job, contact_id, now), now))
        tx.runs.insert(runs)
        moved = tx.bulk_jobs.advance(job_id, cursor_from=job.cursor,
                                     cursor_to=chunk[-1][0] if chunk else job.cursor,
                                     started=len(runs), skipped=len(chunk) - len(runs), now=now,
                                     finished=exhausted)
        assert moved, "the job was read running at its cursor in this same unit"
        started: Started = [(run, None) for run in runs if run.status is RunStatus.PENDING]
        if started:
            tx.after_commit.append(lambda: self._on_started(started))
        return _Step.ENDED if exhausted else _Step.MOVED

    def _next_contacts(self, tx: Transaction, job: BulkJob) -> tuple[list[tuple[int, str]], bool]:
        """The source's next chunk after the job's cursor, and whether nothing comes after.
        Both sources are the job's own list: an audience's members were listed when the job
        was created (flowd.bulk_control)."""
        chunk = tx.bulk_jobs.listed_contacts(job.id, job.cursor, self._chunk)
        return chunk, not chunk or chunk[-1][0] >= job.total


def _trigger(job: BulkJob, contact_id: str, now: int) -> dict[str, Any]:
    """A bulk run's trigger: the job's payload as the properties of an `api.bulk` event."""
    at = format_ms(now)
    return {"type": "bulk", "job_id": job.id, "event": {
        "id": None, "name": "api.bulk", "contact_id": contact_id, "properties": job.payload,
        "timestamp": at, "received_at": at, "message_id": None}}
