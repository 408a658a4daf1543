"""The in-memory trigger index: which workflows an event name starts or exits, without
scanning every workflow per event. Immutable once built; the registry swaps in a new one
whenever a workflow changes, so readers (ingest units in the writer thread) never see a
half-built index.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from flowd.conditions import is_wildcard
from flowd.definitions import CompiledWorkflow, EventRule


@dataclass(frozen=True)
class IndexedWorkflow:
    workflow_id: str
    project_id: str
    version: int
    paused: bool               # triggers create paused runs
    compiled: CompiledWorkflow
    name: str = ""


@dataclass(frozen=True)
class _Entry:
    workflow: IndexedWorkflow
    rule: EventRule


class _RuleTable:
    """Exact names in a dict; wildcard patterns in a (short) list checked one by one."""

    def __init__(self) -> None:
        self.exact: dict[tuple[str, str], list[_Entry]] = defaultdict(list)
        self.wildcard: dict[str, list[_Entry]] = defaultdict(list)

    def add(self, workflow: IndexedWorkflow, rule: EventRule) -> None:
        if is_wildcard(rule.pattern):
            self.wildcard[workflow.project_id].append(_Entry(workflow, rule))
        else:
            self.exact[(workflow.project_id, rule.pattern)].append(_Entry(workflow, rule))

    def lookup(self, project_id: str, name: str) -> list[_Entry]:
        found = list(self.exact.get((project_id, name), ()))
        found += [e for e in self.wildcard.get(project_id, ()) if e.rule.matches_name(name)]
        return found


class TriggerIndex:
    def __init__(self, workflows: list[IndexedWorkflow]) -> None:
        self._triggers = _RuleTable()
        self._exits = _RuleTable()
        self.by_id = {w.workflow_id: w for w in workflows}
        self._by_name: dict[tuple[str, str], list[IndexedWorkflow]] = defaultdict(list)
        for workflow in workflows:
            compiled = workflow.compiled
            if compiled.trigger is not None:
                self._triggers.add(workflow, compiled.trigger)
            for rule in compiled.exit_on:
                self._exits.add(workflow, rule)
            self._by_name[(workflow.project_id, workflow.name)].append(workflow)

    def triggered(self, project_id: str, name: str) -> list[tuple[IndexedWorkflow, EventRule]]:
        return [(e.workflow, e.rule) for e in self._triggers.lookup(project_id, name)]

    def find(self, project_id: str, ref: str) -> list[IndexedWorkflow]:
        """The active or paused workflows `ref` names: by id, else by name (names need not be
        unique, so there may be several)."""
        workflow = self.by_id.get(ref)
        if workflow is not None and workflow.project_id == project_id:
            return [workflow]
        return list(self._by_name.get((project_id, ref), ()))

    def exits(self, project_id: str, name: str) -> list[tuple[IndexedWorkflow, EventRule]]:
        return [(e.workflow, e.rule) for e in self._exits.lookup(project_id, name)]


EMPTY_INDEX = TriggerIndex([])
