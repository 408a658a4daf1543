"""The workflow registry: which workflows exist and in which state, their compiled versions
(a bounded cache; any version can be compiled again from the store), and the trigger index
built from them. It changes only once a workflow change is committed, so ingest (which reads
the index inside its units) never sees a workflow that is not on disk."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from flowd.definitions import CompiledStep, CompiledWorkflow, analyze
from flowd.store import Store
from flowd.store.records import Run, Workflow, WorkflowStatus
from flowd.triggers import EMPTY_INDEX, IndexedWorkflow, TriggerIndex

_VERSION_CACHE_SIZE = 1024
_RUNNING_STATUSES = (WorkflowStatus.ACTIVE, WorkflowStatus.PAUSED)


class Registry:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.index: TriggerIndex = EMPTY_INDEX   # replaced whole, never changed in place
        self._status: dict[str, WorkflowStatus] = {}
        self._current: dict[str, tuple[str, int]] = {}   # workflow id -> (project, version)
        self._names: dict[str, str] = {}
        self._versions: OrderedDict[tuple[str, int], CompiledWorkflow] = OrderedDict()
        # Told after each committed change, once the new index is in place (schedules).
        self.listeners: list[Callable[[], None]] = []

    async def load(self) -> None:
        for workflow in await self._store.read(lambda tx: tx.workflows.all_current()):
            self._remember(workflow)
        self._rebuild_index()

    def changed(self, workflow: Workflow | None, workflow_id: str) -> None:
        """After a committed change to a workflow (None: it was deleted)."""
        if workflow is None:
            self._status.pop(workflow_id, None)
            self._current.pop(workflow_id, None)
            self._names.pop(workflow_id, None)
        else:
            self._remember(workflow)
        self._rebuild_index()
        for listener in self.listeners:
            listener()

    def is_paused(self, workflow_id: str) -> bool:
        return self._status.get(workflow_id) is WorkflowStatus.PAUSED

    def current(self, workflow_id: str) -> IndexedWorkflow | None:
        """The workflow as new runs start it, if it is active or paused."""
        return self.index.by_id.get(workflow_id)

    async def compiled(self, workflow_id: str, version: int) -> CompiledWorkflow | None:
        compiled = self._versions.get((workflow_id, version))
        if compiled is None:
            stored = await self._store.workflow_version(workflow_id, version)
            if stored is None:
                return None
            compiled, _ = analyze(stored.definition)
            if compiled is not None:
                self._cache(workflow_id, version, compiled)
        return compiled

    def cached_step(self, run: Run) -> CompiledStep | None:
        """The run's current step, if its version is compiled in memory (no read)."""
        workflow = self._versions.get((run.workflow_id, run.workflow_version))
        return workflow.steps.get(run.current_step_id or "") if workflow else None

    def _remember(self, workflow: Workflow) -> None:
        self._status[workflow.id] = workflow.status
        if workflow.status in _RUNNING_STATUSES:
            compiled, _ = analyze(workflow.definition)
            if compiled is not None:
                self._cache(workflow.id, workflow.version, compiled)
        self._current[workflow.id] = (workflow.project_id, workflow.version)
        self._names[workflow.id] = workflow.name

    def _rebuild_index(self) -> None:
        entries = []
        for workflow_id, status in self._status.items():
            project_id, version = self._current[workflow_id]
            compiled = self._versions.get((workflow_id, version))
            if compiled is not None and status in _RUNNING_STATUSES:
                entries.append(IndexedWorkflow(workflow_id, project_id, version,
                                               status is WorkflowStatus.PAUSED, compiled,
                                               self._names.get(workflow_id, "")))
        self.index = TriggerIndex(entries)

    def _cache(self, workflow_id: str, version: int, compiled: CompiledWorkflow) -> None:
        self._versions[(workflow_id, version)] = compiled
        self._versions.move_to_end((workflow_id, version))
        while len(self._versions) > _VERSION_CACHE_SIZE:
            self._versions.popitem(last=False)
