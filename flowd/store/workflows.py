"""Workflows and their immutable versions."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flowd.ids import new_id
from flowd.store.paging import count_by_status, fetch_page
from flowd.store.records import Page
from flowd.timeutil import format_ms

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode


class WorkflowStatus(str, Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


@dataclass
class Workflow:
    id: str
    project_id: str
    name: str
    description: str
    status: WorkflowStatus
    version: int
    definition: dict[str, Any]     # {"trigger", "settings", "steps"} of `version`
    issues: list[dict[str, Any]]
    created_at: int
    updated_at: int

    def to_json(self, *, with_steps: bool = True) -> dict[str, Any]:
        body = {"id": self.id, "name": self.name, "description": self.description,
                "status": self.status.value, "version": self.version,
                "trigger": self.definition["trigger"], "settings": self.definition["settings"]}
        if with_steps:
            body["steps"] = self.definition["steps"]
        body["issues"] = self.issues
        body["created_at"] = format_ms(self.created_at)
        body["updated_at"] = format_ms(self.updated_at)
        return body


_COLUMNS = ("w.id, w.project_id, w.name, w.description, w.status, w.version, v.definition, "
            "v.issues, w.created_at, w.updated_at")
_FROM = "workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.version"


def _workflow(row: tuple) -> Workflow:
    return Workflow(row[0], row[1], row[2], row[3], WorkflowStatus(row[4]), row[5],
                    json.loads(row[6]), json.loads(row[7]), row[8], row[9])


def create_workflow(conn: sqlite3.Connection, *, project_id: str, name: str, description: str,
                    status: WorkflowStatus, definition: dict[str, Any],
                    issues: list[dict[str, Any]], now: int) -> Workflow:
    workflow_id = new_id("wf", now)
    conn.execute("INSERT INTO workflows (id, project_id, name, description, status, version, "
                 "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                 (workflow_id, project_id, name, description, status.value, now, now))
    conn.execute("INSERT INTO workflow_versions (workflow_id, version, definition, issues, "
                 "created_at) VALUES (?, 1, ?, ?, ?)",
                 (workflow_id, _dumps(definition), _dumps(issues), now))
    return Workflow(workflow_id, project_id, name, description, status, 1, definition, issues,
                    now, now)


def get_workflow(conn: sqlite3.Connection, project_id: str, workflow_id: str) -> Workflow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE w.id = ? AND w.project_id = ?",
                       (workflow_id, project_id)).fetchone()
    return _workflow(row) if row else None


def update_workflow(conn: sqlite3.Connection, workflow: Workflow, *, name: str, description: str,
                    definition: dict[str, Any], issues: list[dict[str, Any]], now: int) -> Workflow:
    """Save edits; a changed definition becomes a new immutable version."""
    version = workflow.version
    if _dumps(definition) != _dumps(workflow.definition):
        version += 1
        conn.execute("INSERT INTO workflow_versions (workflow_id, version, definition, issues, "
                     "created_at) VALUES (?, ?, ?, ?, ?)",
                     (workflow.id, version, _dumps(definition), _dumps(issues), now))
    conn.execute("UPDATE workflows SET name = ?, description = ?, version = ?, updated_at = ? "
                 "WHERE id = ?", (name, description, version, now, workflow.id))
    return Workflow(workflow.id, workflow.project_id, name, description, workflow.status, version,
                    definition, issues if version != workflow.version else workflow.issues,
                    workflow.created_at, now)


def set_status(conn: sqlite3.Connection, workflow_id: str, status: WorkflowStatus, now: int) -> None:
    conn.execute("UPDATE workflows SET status = ?, updated_at = ? WHERE id = ?",
                 (status.value, now, workflow_id))


def delete_workflow(conn: sqlite3.Connection, workflow_id: str) -> None:
    # Runs, their steps and event waits go with it (ON DELETE CASCADE).
    conn.execute("DELETE FROM workflows WHERE id = ?", (workflow_id,))


def list_workflows(conn: sqlite3.Connection, project_id: str, *, status: str | None,
                   name: str | None, before: int | None, limit: int) -> Page:
    where, args = ["w.project_id = ?"], [project_id]
    if status is not None:
        where.append("w.status = ?")
        args.append(status)
    else:
        where.append("w.status != 'archived'")  # archived ones are listed only when asked for
    if name is not None:
        where.append("w.name LIKE ? ESCAPE '\\'")
        args.append("%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    return fetch_page(conn, table=_FROM, columns=_COLUMNS, where=where, args=args, before=before,
                      limit=limit, convert=_workflow, seq="w.seq")


def list_versions(conn: sqlite3.Connection, workflow_id: str) -> list[tuple[int, int, list]]:
    """(version, created_at, issues), newest first."""
    rows = conn.execute("SELECT version, created_at, issues FROM workflow_versions "
                        "WHERE workflow_id = ? ORDER BY version DESC", (workflow_id,)).fetchall()
    return [(r[0], r[1], json.loads(r[2])) for r in rows]


def get_version(conn: sqlite3.Connection, workflow_id: str, version: int
                ) -> tuple[dict[str, Any], list, int] | None:
    """(definition, issues, created_at) of one version."""
    row = conn.execute("SELECT definition, issues, created_at FROM workflow_versions "
                       "WHERE workflow_id = ? AND version = ?", (workflow_id, version)).fetchone()
    return (json.loads(row[0]), json.loads(row[1]), row[2]) if row else None


def all_current(conn: sqlite3.Connection) -> list[Workflow]:
    """Every workflow with its current version: the engine's trigger index is built from this."""
    return [_workflow(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM {_FROM}")]


def status_counts(conn: sqlite3.Connection, project_id: str) -> dict[str, int]:
    return count_by_status(conn, "workflows", project_id, (s.value for s in WorkflowStatus))
