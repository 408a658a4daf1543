"""Workflow verbs: create, replace, patch, and the lifecycle (activate, deactivate, pause,
resume, archive, delete), with the contract's rules for runs in flight. Each verb is one unit
of the group commit; the engine's trigger index is updated once it has committed."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from flowd.clock import Clock
from flowd.definitions import (
    Issue,
    analyze,
    audience_issues,
    audience_refs,
    normalize,
    template_issues,
    template_refs,
)
from flowd.errors import Conflict, NotFound, Problem, ValidationError
from flowd.patching import apply_operations
from flowd.store import Store, Transaction
from flowd.store.records import Workflow, WorkflowStatus

ACTIVE_OR_PAUSED = (WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED)


def _errors_of(issues: list[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.severity == "error"]


def _issues(tx: Transaction, project_id: str, definition: dict[str, Any]) -> list[Issue]:
    """The definition's issues, with those only the project's templates and audiences can
    tell."""
    _, issues = analyze(definition)
    if template_refs(definition):
        issues += template_issues(definition, tx.templates.names(project_id))
    if audience_refs(definition):
        issues += audience_issues(definition, tx.audiences.names(project_id))
    return issues


def _refresh_template_issues(tx: Transaction, workflow: Workflow) -> None:
    """Templates and audiences may have been made (or deleted) since the workflow was saved:
    find its unknown_template and unknown_audience issues again before deciding whether it may
    run."""
    if not template_refs(workflow.definition) and not audience_refs(workflow.definition):
        return
    fresh = [i.to_json() for i in template_issues(workflow.definition,
                                                  tx.templates.names(workflow.project_id))]
    fresh += [i.to_json() for i in audience_issues(workflow.definition,
                                                   tx.audiences.names(workflow.project_id))]
    issues = [i for i in workflow.issues
              if i["code"] not in ("unknown_template", "unknown_audience")] + fresh
    if issues != workflow.issues:
        workflow.issues = issues
        tx.workflows.set_issues(workflow.id, workflow.version, issues)


def refuse_errors(issues: list[Issue], why: str) -> ValidationError:
    """The 422 for a definition whose `error` issues keep it from running (each a problem
    with the issue's path and code)."""
    return ValidationError([Problem(i.path, f"{i.code}: {i.message}", i.code)
                            for i in _errors_of(issues)],
                           message=why)


class WorkflowService:
    def __init__(self, store: Store, clock: Clock,
                 on_change: Callable[[Workflow | None, str], None],
                 on_runs_due: Callable[[list[str]], None]) -> None:
        self._store = store
        self._clock = clock
        self._on_change = on_change
        self._on_runs_due = on_runs_due

    async def get(self, project_id: str, workflow_id: str) -> Workflow:
        workflow = await self._store.get_workflow(project_id, workflow_id)
        if workflow is None:
            raise NotFound("no such workflow")
        return workflow

    async def create(self, project_id: str, body: dict[str, Any], *,
                     prepare: Callable[[Transaction, dict[str, Any]], dict[str, Any]] | None
                     = None, extra_issues: Sequence[Issue] = ()) -> Workflow:
        """`prepare(tx, body)`, when given, runs first in the same unit of work and returns the
        body to save: what the workflow needs made with it (a blueprint's templates) commits
        with it or not at all, and its issues see those objects. `extra_issues` are saved
        beside the definition's own (what composing from a prompt left out)."""
        status = WorkflowStatus(body.get("status", "draft"))
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> Workflow:
            saved = prepare(tx, body) if prepare is not None else body
            definition = normalize(saved)
            issues = _issues(tx, project_id, definition) + list(extra_issues)
            if status is WorkflowStatus.ACTIVE and _errors_of(issues):
                raise refuse_errors(issues, "the workflow has errors, so it cannot be created active")
            workflow = tx.workflows.create(
                project_id=project_id, name=saved["name"],
                description=saved.get("description", ""),
                status=status, definition=definition, issues=[i.to_json() for i in issues],
                now=now)
            tx.after_commit.append(lambda: self._on_change(workflow, workflow.id))
            return workflow

        return await self._store.write(unit)

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

        def unit(tx: Transaction) -> Workflow:
            current = tx.workflows.get(project_id, workflow_id)
            if current is None:
                raise NotFound("no such workflow")
            name, description, definition = change(current)
            issues = _issues(tx, project_id, definition)
            if current.status in ACTIVE_OR_PAUSED and _errors_of(issues):
                raise refuse_errors(issues, f"the workflow is {current.status.value} and the new "
                                      "definition has errors; nothing was changed")
            workflow = tx.workflows.update(
                current, name=name, description=description, definition=definition,
                issues=[i.to_json() for i in issues], now=now)
            tx.after_commit.append(lambda: self._on_change(workflow, workflow.id))
            return workflow

        return await self._store.write(unit)

    async def transition(self, project_id: str, workflow_id: str, action: str) -> Workflow:
        """activate | deactivate | pause | resume | archive."""
        now = self._clock.now_ms()

        def unit(tx: Transaction) -> Workflow:
            workflow = tx.workflows.get(project_id, workflow_id)
            if workflow is None:
                raise NotFound("no such workflow")
            return self._transition_in(tx, workflow, action, now)

        return await self._store.write(unit)

    def _transition_in(self, tx: Transaction, workflow: Workflow, action: str,
                       now: int) -> Workflow:
        """One lifecycle action inside the caller's unit of work."""
        if action == "activate":
            _refresh_template_issues(tx, workflow)
        target = _target_status(workflow, action)
        released: list[str] = []
        if workflow.status is WorkflowStatus.PAUSED and target is not WorkflowStatus.PAUSED:
            # Leaving `paused` in any direction lets held runs go on, oldest first.
            released = tx.runs.release_paused(workflow.id, now)
        if target in (WorkflowStatus.DRAFT, WorkflowStatus.ARCHIVED):
            # No new runs: a schedule activated again later counts from then, with no
            # fire for the time it was off (pausing keeps the count: see flowd.schedules).
            tx.schedules.forget(workflow.id)
        if target is not workflow.status:
            tx.workflows.set_status(workflow.id, target, now)
            workflow.status, workflow.updated_at = target, now
        # The index first: a released run must find its workflow no longer paused.
        tx.after_commit.append(lambda: self._on_change(workflow, workflow.id))
        if released:
            tx.after_commit.append(lambda: self._on_runs_due(released))
        return workflow

    def import_in(self, tx: Transaction, project_id: str, existing: Workflow | None,
                  entry: dict[str, Any], now: int, path: str,
                  problems: list[Problem]) -> tuple[str, Workflow | None]:
        """Create or update one workflow of an import (flowd.bundles) inside the caller's unit,
        so that a bundle of many workflows is one unit of work: "created", "updated" or
        "unchanged" with the workflow. A workflow meant to be active or paused whose
        definition has `error` issues adds them to `problems` (under `path`) and is not saved:
        the caller then refuses the whole import."""
        definition = normalize(entry)
        target = WorkflowStatus(entry.get("status", "draft"))
        name, description = entry["name"], entry.get("description", "")
        issues = _issues(tx, project_id, definition)
        if target in ACTIVE_OR_PAUSED and _errors_of(issues):
            problems += [Problem(f"{path}.{p.path}" if p.path else path, p.message, p.code)
                         for p in refuse_errors(issues, "").problems]
            return "refused", None
        if existing is None:
            workflow = tx.workflows.create(
                project_id=project_id, name=name, description=description, status=target,
                definition=definition, issues=[i.to_json() for i in issues], now=now)
            tx.after_commit.append(lambda: self._on_change(workflow, workflow.id))
            return "created", workflow
        if (name, description, canonical(definition), target) == (
                existing.name, existing.description, canonical(existing.definition),
                existing.status):
            return "unchanged", existing
        workflow = tx.workflows.update(existing, name=name, description=description,
                                       definition=definition,
                                       issues=[i.to_json() for i in issues], now=now)
        for action in _actions(workflow.status, target):
            workflow = self._transition_in(tx, workflow, action, now)
        tx.after_commit.append(lambda: self._on_change(workflow, workflow.id))
        return "updated", workflow

    async def delete(self, project_id: str, workflow_id: str, *, force: bool) -> None:
        def unit(tx: Transaction) -> None:
            workflow = tx.workflows.get(project_id, workflow_id)
            if workflow is None:
                raise NotFound("no such workflow")
            if workflow.status in ACTIVE_OR_PAUSED and not force:
                raise Conflict(f"the workflow is {workflow.status.value}; deactivate it first, "
                               "or delete with ?force=true")
            tx.workflows.delete(workflow_id)
            tx.after_commit.append(lambda: self._on_change(None, workflow_id))

        await self._store.write(unit)


def canonical(definition: dict[str, Any]) -> str:
    """A definition's text for comparing: two equal definitions have equal texts."""
    return json.dumps(definition, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _actions(current: WorkflowStatus, target: WorkflowStatus) -> list[str]:
    """The lifecycle actions that take a workflow from one status to another."""
    if current is target:
        return []
    if target is WorkflowStatus.ACTIVE:
        return ["resume"] if current is WorkflowStatus.PAUSED else ["activate"]
    if target is WorkflowStatus.PAUSED:
        return ["pause"] if current is WorkflowStatus.ACTIVE else ["activate", "pause"]
    return ["deactivate"] if target is WorkflowStatus.DRAFT else ["archive"]


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
