"""Workflows and their immutable versions, in SQLite."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flowd.ids import new_id
from flowd.store import base
from flowd.store.records import Page, Workflow, WorkflowStatus, WorkflowVersion
from flowd.store.sqlite.paging import count_by_status, fetch_page

# Sorted keys: a definition's text is stable, so "changed?" is a comparison of two strings.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode
_COLUMNS = ("w.id, w.project_id, w.name, w.description, w.status, w.version, v.definition, "
            "v.issues, w.created_at, w.updated_at, w.hook_generation")
_FROM = "workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.version"


def _workflow(row: tuple) -> Workflow:
    return Workflow(row[0], row[1], row[2], row[3], WorkflowStatus(row[4]), row[5],
                    json.loads(row[6]), json.loads(row[7]), row[8], row[9], row[10])


class SqliteWorkflows(base.Workflows):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def create(self, *, project_id: str, name: str, description: str, status: WorkflowStatus,
               definition: dict[str, Any], issues: list[dict[str, Any]], now: int) -> Workflow:
        workflow_id = new_id("wf", now)
        self._conn.execute("INSERT INTO workflows (id, project_id, name, description, status, "
                           "version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                           (workflow_id, project_id, name, description, status.value, now, now))
        self._insert_version(workflow_id, 1, definition, issues, now)
        return Workflow(workflow_id, project_id, name, description, status, 1, definition, issues,
                        now, now)

    def _insert_version(self, workflow_id: str, version: int, definition: dict[str, Any],
                        issues: list[dict[str, Any]], now: int) -> None:
        self._conn.execute("INSERT INTO workflow_versions (workflow_id, version, definition, "
                           "issues, created_at) VALUES (?, ?, ?, ?, ?)",
                           (workflow_id, version, _dumps(definition), _dumps(issues), now))

    def get(self, project_id: str, workflow_id: str) -> Workflow | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.id = ? AND "
                                 "w.project_id = ?", (workflow_id, project_id)).fetchone()
        return _workflow(row) if row else None

    def update(self, workflow: Workflow, *, name: str, description: str,
               definition: dict[str, Any], issues: list[dict[str, Any]], now: int) -> Workflow:
        version = workflow.version
        if _dumps(definition) != _dumps(workflow.definition):
            version += 1
            self._insert_version(workflow.id, version, definition, issues, now)
        self._conn.execute("UPDATE workflows SET name = ?, description = ?, version = ?, "
                           "updated_at = ? WHERE id = ?",
                           (name, description, version, now, workflow.id))
        return Workflow(workflow.id, workflow.project_id, name, description, workflow.status,
                        version, definition,
                        issues if version != workflow.version else workflow.issues,
                        workflow.created_at, now, workflow.hook_generation)

    def find(self, workflow_id: str) -> Workflow | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.id = ?",
                                 (workflow_id,)).fetchone()
        return _workflow(row) if row else None

    def rotate_hook(self, workflow_id: str, now: int) -> None:
        self._conn.execute("UPDATE workflows SET hook_generation = hook_generation + 1, "
                           "updated_at = ? WHERE id = ?", (now, workflow_id))

    def set_status(self, workflow_id: str, status: WorkflowStatus, now: int) -> None:
        self._conn.execute("UPDATE workflows SET status = ?, updated_at = ? WHERE id = ?",
                           (status.value, now, workflow_id))

    def set_issues(self, workflow_id: str, version: int, issues: list[dict[str, Any]]) -> None:
        self._conn.execute("UPDATE workflow_versions SET issues = ? WHERE workflow_id = ? AND "
                           "version = ?", (_dumps(issues), workflow_id, version))

    def delete(self, workflow_id: str) -> None:
        # Runs, their steps and event waits go with it (ON DELETE CASCADE).
        self._conn.execute("DELETE FROM workflows WHERE id = ?", (workflow_id,))

    def page(self, project_id: str, *, status: str | None, name: str | None,
             before: int | None, limit: int) -> Page:
        where, args = ["w.project_id = ?"], [project_id]
        if status is not None:
            where.append("w.status = ?")
            args.append(status)
        else:
            where.append("w.status != 'archived'")  # archived ones are listed only when asked
        if name is not None:
            where.append("w.name LIKE ? ESCAPE '\\'")
            args.append("%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                        + "%")
        return fetch_page(self._conn, table=_FROM, columns=_COLUMNS, where=where, args=args,
                          before=before, limit=limit, convert=_workflow, seq="w.seq")

    def versions(self, workflow_id: str) -> list[WorkflowVersion]:
        rows = self._conn.execute("SELECT version, created_at, issues FROM workflow_versions "
                                  "WHERE workflow_id = ? ORDER BY version DESC",
                                  (workflow_id,)).fetchall()
        return [WorkflowVersion(workflow_id, r[0], {}, json.loads(r[2]), r[1]) for r in rows]

    def version(self, workflow_id: str, version: int) -> WorkflowVersion | None:
        row = self._conn.execute("SELECT definition, issues, created_at FROM workflow_versions "
                                 "WHERE workflow_id = ? AND version = ?",
                                 (workflow_id, version)).fetchone()
        return (WorkflowVersion(workflow_id, version, json.loads(row[0]), json.loads(row[1]),
                                row[2]) if row else None)

    def running(self, project_id: str) -> list[Workflow]:
        return [_workflow(r) for r in self._conn.execute(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.project_id = ? AND "
            "w.status IN ('active', 'paused')", (project_id,))]

    def all_current(self) -> list[Workflow]:
        return [_workflow(r) for r in self._conn.execute(f"SELECT {_COLUMNS} FROM {_FROM}")]

    def every(self, project_id: str, limit: int) -> list[Workflow]:
        return [_workflow(r) for r in self._conn.execute(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.project_id = ? ORDER BY w.seq LIMIT ?",
            (project_id, limit))]

    def status_counts(self, project_id: str) -> dict[str, int]:
        return count_by_status(self._conn, "workflows", project_id,
                               (s.value for s in WorkflowStatus))

    def name_taken(self, project_id: str, name: str) -> bool:
        return self._conn.execute("SELECT 1 FROM workflows WHERE project_id = ? AND name = ? "
                                  "LIMIT 1", (project_id, name)).fetchone() is not None
