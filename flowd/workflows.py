"""Workflow verbs: create, replace, patch, and the lifecycle (activate, deactivate, pause,
resume, archive, delete), with the contract's rules for runs in flight. Each verb is one unit
of the group commit; the engine's trigger index is updated once it has committed."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Callable

from flowd.definitions import Issue, analyze, normalize
from flowd.errors import Conflict, NotFound, Problem, ValidationError
from flowd.patching import apply_operations
from flowd.store import Database
from flowd.store import runs as run_store
from flowd.store import workflows as workflow_store
from flowd.store.workflows import Workflow, WorkflowStatus
from flowd.timeutil import Clock

ACTIVE_OR_PAUSED = (WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED)


def _errors_of(issues: list[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.severity == "error"]


def _refuse(issues: list[Issue], why: str) -> ValidationError:
    return ValidationError([Problem(i.path, f"{i.code}: {i.message}", i.code)
                            for i in _errors_of(issues)],
                           message=why)


@dataclass
class Changed:
    workflow: Workflow
    released_runs: list[str]     # paused runs that became due (resume)


class WorkflowService:
    def __init__(self, db: Database, clock: Clock,
                 on_change: Callable[[Workflow | None, str], None],
                 on_runs_due: Callable[[list[str]], None]) -> None:
        self._db = db
        self._clock = clock
        self._on_change = on_change
        self._on_runs_due = on_runs_due

    async def get(self, project_id: str, workflow_id: str) -> Workflow:
        workflow = await self._db.read(workflow_store.get_workflow, project_id, workflow_id)
        if workflow is None:
            raise NotFound("no such workflow")
        return workflow

    async def create(self, project_id: str, body: dict[str, Any]) -> Workflow:
        definition = normalize(body)
        _, issues = analyze(definition)
        status = WorkflowStatus(body.get("status", "draft"))
        if status is WorkflowStatus.ACTIVE and _errors_of(issues):
            raise _refuse(issues, "the workflow has errors, so it cannot be created active")
        workflow = await self._db.write(
            workflow_store.create_workflow, project_id=project_id, name=body["name"],
            description=body.get("description", ""), status=status, definition=definition,
            issues=[i.to_json() for i in issues], now=self._clock.now_ms())
        self._on_change(workflow, workflow.id)
        return workflow

    async def replace(self, project_id: str, workflow_id: str, body: dict[str, Any]) -> Workflow:
        return await self._edit(project_id, workflow_id, lambda current: (
            body["name"], body.get("description", ""), normalize(body)))

    async def patch(self, project_id: str, workflow_id: str, body: dict[str, Any]) -> Workflow:
        def change(current: Workflow) -> tuple[str, str, dict[str, Any]]:
            definition = current.definition
            if "operations" in body:
                definition = apply_operations(definition, body["operations"])
            if "settings" in body:
                definition = {**definition, "settings": {**definition["settings"], **body["settings"]}}
            return (body.get("name", current.name), body.get("description", current.description),
                    normalize(definition))
        return await self._edit(project_id, workflow_id, change)

    async def _edit(self, project_id: str, workflow_id: str,
                    change: Callable[[Workflow], tuple[str, str, dict[str, Any]]]) -> Workflow:
        now = self._clock.now_ms()

        def unit(conn: sqlite3.Connection) -> Workflow:
            current = workflow_store.get_workflow(conn, project_id, workflow_id)
            if current is None:
                raise NotFound("no such workflow")
            name, description, definition = change(current)
            _, issues = analyze(definition)
            if current.status in ACTIVE_OR_PAUSED and _errors_of(issues):
                raise _refuse(issues, f"the workflow is {current.status.value} and the new "
                                      "definition has errors; nothing was changed")
            return workflow_store.update_workflow(
                conn, current, name=name, description=description, definition=definition,
                issues=[i.to_json() for i in issues], now=now)

        workflow = await self._db.write(unit)
        self._on_change(workflow, workflow.id)
        return workflow

    async def transition(self, project_id: str, workflow_id: str, action: str) -> Workflow:
        """activate | deactivate | pause | resume | archive."""
        now = self._clock.now_ms()

        def unit(conn: sqlite3.Connection) -> Changed:
            workflow = workflow_store.get_workflow(conn, project_id, workflow_id)
            if workflow is None:
                raise NotFound("no such workflow")
            target = _target_status(workflow, action)
            released: list[str] = []
            if workflow.status is WorkflowStatus.PAUSED and target is not WorkflowStatus.PAUSED:
                # Leaving `paused` in any direction lets held runs go on, oldest first.
                released = run_store.release_paused(conn, workflow.id, now)
            if target is not workflow.status:
                workflow_store.set_status(conn, workflow.id, target, now)
                workflow.status, workflow.updated_at = target, now
            return Changed(workflow, released)

        changed = await self._db.write(unit)
        self._on_change(changed.workflow, workflow_id)
        if changed.released_runs:
            self._on_runs_due(changed.released_runs)
        return changed.workflow

    async def delete(self, project_id: str, workflow_id: str, *, force: bool) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            workflow = workflow_store.get_workflow(conn, project_id, workflow_id)
            if workflow is None:
                raise NotFound("no such workflow")
            if workflow.status in ACTIVE_OR_PAUSED and not force:
                raise Conflict(f"the workflow is {workflow.status.value}; deactivate it first, "
                               "or delete with ?force=true")
            workflow_store.delete_workflow(conn, workflow_id)

        await self._db.write(unit)
        self._on_change(None, workflow_id)


def _target_status(workflow: Workflow, action: str) -> WorkflowStatus:
    status = workflow.status
    if action == "activate":
        if any(issue["severity"] == "error" for issue in workflow.issues):
            raise ValidationError(
                [Problem(i["path"], f"{i['code']}: {i['message']}", i["code"])
                 for i in workflow.issues if i["severity"] == "error"],
                message="the workflow has errors; fix them before activating it")
        return WorkflowStatus.ACTIVE
    if action == "deactivate":
        return WorkflowStatus.DRAFT
    if action == "archive":
        return WorkflowStatus.ARCHIVED
    if action == "pause":
        if status not in ACTIVE_OR_PAUSED:
            raise Conflict(f"only an active workflow can be paused; this one is {status.value}")
        return WorkflowStatus.PAUSED
    if action == "resume":
        if status not in ACTIVE_OR_PAUSED:
            raise Conflict(f"only a paused workflow can be resumed; this one is {status.value}")
        return WorkflowStatus.ACTIVE
    raise ValueError(action)
