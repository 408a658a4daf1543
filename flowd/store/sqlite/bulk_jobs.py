"""Bulk jobs and their contact lists, in SQLite."""

from __future__ import annotations

import itertools
import json
import sqlite3
from typing import Any, Iterable

from flowd.store import base
from flowd.store.records import BULK_JOB_ENDED, BulkJob, BulkJobStatus, BulkSource, Page
from flowd.store.sqlite.paging import fetch_page

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_COLUMNS = ("id, project_id, workflow_id, status, source, source_ref, payload, require_approval, "
            "total, created_at, updated_at, started, skipped, cursor, error, finished_at")
# Contact ids written per statement: one JSON array each, so a 100,000-id list is a few
# statements of bounded size rather than one huge one or 100,000 bound rows.
_LIST_CHUNK = 10_000


def _job(r: tuple) -> BulkJob:
    return BulkJob(r[0], r[1], r[2], BulkJobStatus(r[3]), BulkSource(r[4]), r[5],
                   json.loads(r[6]), bool(r[7]), r[8], r[9], r[10], r[11], r[12], r[13],
                   None if r[14] is None else json.loads(r[14]), r[15])


def _in(values: Iterable[Any]) -> tuple[str, list[Any]]:
    listed = list(values)
    return f"({','.join('?' * len(listed))})", listed


class SqliteBulkJobs(base.BulkJobs):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def create(self, job: BulkJob, contact_ids: Iterable[str]) -> None:
        self._conn.execute(
            f"INSERT INTO bulk_jobs ({_COLUMNS}) VALUES ({','.join('?' * 16)})",
            (job.id, job.project_id, job.workflow_id, job.status.value, job.source.value,
             job.source_ref, _dumps(job.payload), int(job.require_approval), job.total,
             job.created_at, job.updated_at, job.started, job.skipped, job.cursor,
             None if job.error is None else _dumps(job.error), job.finished_at))
        ids = iter(contact_ids)
        position = 0
        while chunk := list(itertools.islice(ids, _LIST_CHUNK)):
            # json_each's key is the index within the chunk: positions continue across chunks.
            self._conn.execute(
                "INSERT INTO bulk_job_contacts (job_id, position, contact_id) "
                "SELECT ?, ? + key + 1, value FROM json_each(?)",
                (job.id, position, _dumps(chunk)))
            position += len(chunk)

    def get(self, project_id: str | None, job_id: str) -> BulkJob | None:
        if project_id is None:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM bulk_jobs WHERE id = ?",
                                     (job_id,)).fetchone()
        else:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM bulk_jobs WHERE id = ? AND "
                                     "project_id = ?", (job_id, project_id)).fetchone()
        return _job(row) if row else None

    def page(self, project_id: str, *, workflow_id: str, before: int | None,
             limit: int) -> Page:
        return fetch_page(self._conn, table="bulk_jobs", columns=_COLUMNS,
                          where=["workflow_id = ?", "project_id = ?"],
                          args=[workflow_id, project_id], before=before, limit=limit,
                          convert=_job)

    def running_ids(self, limit: int) -> list[str]:
        rows = self._conn.execute("SELECT id FROM bulk_jobs WHERE status = 'running' "
                                  "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [row[0] for row in rows]

    def listed_contacts(self, job_id: str, after: int, limit: int) -> list[tuple[int, str]]:
        return self._conn.execute(
            "SELECT position, contact_id FROM bulk_job_contacts WHERE job_id = ? AND "
            "position > ? ORDER BY position LIMIT ?", (job_id, after, limit)).fetchall()

    def advance(self, job_id: str, *, cursor_from: int, cursor_to: int, started: int,
                skipped: int, now: int, finished: bool) -> bool:
        status = BulkJobStatus.FINISHED if finished else BulkJobStatus.RUNNING
        cursor = self._conn.execute(
            "UPDATE bulk_jobs SET cursor = ?, started = started + ?, skipped = skipped + ?, "
            "status = ?, updated_at = ?, finished_at = ? "
            "WHERE id = ? AND status = 'running' AND cursor = ?",
            (cursor_to, started, skipped, status.value, now, now if finished else None, job_id,
             cursor_from))
        return cursor.rowcount == 1

    def set_status(self, job_id: str, status: BulkJobStatus, now: int, *,
                   expect: Iterable[BulkJobStatus],
                   error: dict[str, Any] | None = None) -> bool:
        placeholders, expected = _in(s.value for s in expect)
        cursor = self._conn.execute(
            f"UPDATE bulk_jobs SET status = ?, updated_at = ?, finished_at = ?, error = ? "
            f"WHERE id = ? AND status IN {placeholders}",
            (status.value, now, now if status in BULK_JOB_ENDED else None,
             None if error is None else _dumps(error), job_id, *expected))
        return cursor.rowcount == 1
