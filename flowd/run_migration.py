"""Moving waiting runs from one version of a workflow to a newer one, deliberately (runs
otherwise stay on the version they started on).

Which runs: those `waiting` on `from_version` (a timer, an event, an approval, a child run, a
retry's backoff). Paused runs stay: a pause holds them where they are, and they can be moved
once the workflow is resumed and they wait again. A run waiting at step S moves to
`step_map[S]`; S not in the map moves to the step of the same id in `to_version` if that step
has the same type; otherwise the run stays and is reported as unmapped. A target step must have
the type of the step it replaces (a wait stays a wait of the same kind), so the run's wait —
its `until`, its event registration, its approval or child — stays valid as it is.

A real migration moves runs in chunks, one transaction each, so that a million waiting runs
never hold the write lock for long; a dry run reads and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowd.clock import Clock
from flowd.definitions import analyze
from flowd.errors import NotFound, Problem, ValidationError
from flowd.store import Store, Transaction
from flowd.store.records import WorkflowVersion
from flowd.workflows import refuse_errors

CHUNK = 500   # runs per transaction


@dataclass(frozen=True)
class Plan:
    step_map: dict[str, str]          # given entries and the same-id, same-type defaults
    waiting: dict[str, int]           # runs waiting on from_version, by step


def _types(version: WorkflowVersion) -> dict[str, str]:
    return {step["id"]: step["type"] for step in version.definition["steps"]}


def resolve_step_map(source: WorkflowVersion, target: WorkflowVersion,
                     given: dict[str, str]) -> dict[str, str]:
    """The mapping to apply; a ValidationError names every entry that cannot be."""
    old, new = _types(source), _types(target)
    problems = []
    for step, to in given.items():
        path = f"step_map.{step}"
        if step not in old:
            problems.append(Problem(path, f"version {source.version} has no step {step!r}",
                                    "unknown_step"))
        elif to not in new:
            problems.append(Problem(path, f"version {target.version} has no step {to!r}",
                                    "unknown_step"))
        elif old[step] != new[to]:
            problems.append(Problem(path, f"step {step!r} is a {old[step]} but {to!r} is a "
                                          f"{new[to]}: a run's wait only fits a step of its "
                                          "own type", "type_mismatch"))
    if problems:
        raise ValidationError(problems, message="the step map does not fit these versions")
    defaults = {step: step for step, kind in old.items()
                if step not in given and new.get(step) == kind}
    return {**defaults, **given}


class RunMigration:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def migrate(self, project_id: str, workflow_id: str,
                      body: dict[str, Any]) -> dict[str, Any]:
        plan = await self._store.read(self._plan, project_id, workflow_id, body)
        unmapped_now = _unmapped(plan.waiting, plan.step_map)
        if body.get("dry_run", False):
            return {"runs": sum(plan.waiting.values()),
                    "moved": sum(n for step, n in plan.waiting.items() if step in plan.step_map),
                    "unmapped": unmapped_now, "step_map": plan.step_map, "dry_run": True}
        moved = 0
        if any(step in plan.step_map for step in plan.waiting):
            while True:
                chunk = await self._store.write(self._move, workflow_id, body["from_version"],
                                                body["to_version"], plan.step_map)
                moved += chunk
                if chunk < CHUNK:
                    break
            left = await self._store.read(
                lambda tx: tx.runs.waiting_at(workflow_id, body["from_version"]))
            unmapped_now = _unmapped(left, plan.step_map)
        return {"runs": moved + sum(u["runs"] for u in unmapped_now), "moved": moved,
                "unmapped": unmapped_now, "step_map": plan.step_map, "dry_run": False}

    def _move(self, tx: Transaction, workflow_id: str, from_version: int, to_version: int,
              step_map: dict[str, str]) -> int:
        return tx.runs.move_waiting(workflow_id, from_version, to_version, step_map, CHUNK,
                                    self._clock.now_ms())

    @staticmethod
    def _plan(tx: Transaction, project_id: str, workflow_id: str, body: dict[str, Any]) -> Plan:
        if tx.workflows.get(project_id, workflow_id) is None:
            raise NotFound("no such workflow")
        versions = {}
        for field in ("from_version", "to_version"):
            versions[field] = tx.workflows.version(workflow_id, body[field])
            if versions[field] is None:
                raise NotFound(f"no such version: {field} {body[field]}")
        source, target = versions["from_version"], versions["to_version"]
        if target.version <= source.version:
            raise ValidationError([Problem("to_version", "must be newer than from_version",
                                           "not_newer")])
        compiled, issues = analyze(target.definition)
        if compiled is None:
            raise refuse_errors(issues, f"version {target.version} has errors and cannot run")
        step_map = resolve_step_map(source, target, body.get("step_map") or {})
        return Plan(step_map, tx.runs.waiting_at(workflow_id, source.version))


def _unmapped(waiting: dict[str, int], step_map: dict[str, str]) -> list[dict[str, Any]]:
    return [{"step_id": step, "runs": n}
            for step, n in sorted((s, n) for s, n in waiting.items() if s is not None)
            if step not in step_map and n]
