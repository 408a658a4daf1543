"""The core without HTTP, for deterministic unit tests: a real store on a SQLite file in
tmp_path, the registry, due runs, engine and slots wired as the server wires them, on a
VirtualClock — so a test moves time itself and never sleeps."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from flowd.approvals import ApprovalDesk
from flowd.clock import VirtualClock
from flowd.definitions import analyze, normalize
from flowd.dueruns import DueRuns
from flowd.effects.http import HttpClient
from flowd.effects.signing import WebhookSigner
from flowd.engine import Engine
from flowd.ingest import IncomingEvent, Ingest
from flowd.matching import WaitedNames
from flowd.registry import Registry
from flowd.runs import new_run
from flowd.scheduler import Scheduler
from flowd.schedules import Schedules
from flowd.slots import RunSlots
from flowd.steps.base import Effects
from flowd.store import DbSettings, SqliteStore
from flowd.store.records import Run, Workflow, WorkflowStatus

START = 1_800_000_000_000   # 2027-01-15T08:00:00Z: virtual time starts here


@dataclass
class Core:
    store: SqliteStore
    clock: VirtualClock
    registry: Registry
    due: DueRuns
    engine: Engine
    slots: RunSlots
    scheduler: Scheduler
    ingest: Ingest
    http: HttpClient
    approvals: ApprovalDesk
    schedules: Schedules   # made, not started: a test ticks it or starts it
    effects: dict[str, Any] = field(default_factory=dict)   # what `with_effects` made

    async def workflow(self, steps: list[dict[str, Any]], *, trigger: dict[str, Any] | None = None,
                       settings: dict[str, Any] | None = None,
                       status: WorkflowStatus = WorkflowStatus.ACTIVE) -> Workflow:
        definition = normalize({"trigger": trigger or {"type": "manual"},
                                "settings": settings or {}, "steps": steps})
        compiled, issues = analyze(definition)
        assert compiled is not None, issues
        now = self.clock.now_ms()
        workflow = await self.store.write(lambda tx: tx.workflows.create(
            project_id="default", name="test", description="", status=status,
            definition=definition, issues=[i.to_json() for i in issues], now=now))
        self.registry.changed(workflow, workflow.id)
        return workflow

    async def start(self, workflow: Workflow, contact_id: str | None = None) -> Run:
        """A new run of the workflow, stored, not yet executing."""
        indexed = self.registry.current(workflow.id)
        assert indexed is not None
        run = new_run(indexed, contact_id, {"type": "api", "event": {"properties": {}}},
                      self.clock.now_ms())
        await self.store.write(lambda tx: tx.runs.insert([run]))
        return run

    async def run(self, run_id: str) -> Run:
        run = await self.store.get_run("default", run_id)
        assert run is not None
        return run

    async def trace(self, run_id: str) -> list[Any]:
        return await self.store.run_trace(run_id)

    async def send(self, name: str, contact_id: str | None = None, **fields: Any) -> Any:
        [result] = await self.ingest.ingest("default", [IncomingEvent(name, contact_id, **fields)])
        return result

    async def execute(self, run: Run, contact: dict[str, Any] | None = None, *,
                      contact_loaded: bool = False) -> None:
        """Hand the run to the slots, as the scheduler does, and let it go as far as it can."""
        self.slots.offer(run, contact, contact_loaded=contact_loaded)
        await self.settle()

    async def settle(self) -> None:
        """Let every executing run go as far as it can without time passing."""
        await asyncio.wait_for(self.slots.drained(), timeout=30)


async def make_core(tmp_path: Any, *, capacity: int = 100, seed: int = 7,
                    horizon_ms: int = 60_000,
                    with_effects: Callable[[SqliteStore, VirtualClock, Ingest], dict[str, Any]]
                    | None = None) -> Core:
    """`with_effects(store, clock, ingest)`: more `Effects` fields (email, sms, …), made on the
    core's own store and clock; the test starts and closes them."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(DbSettings(path=str(tmp_path / "core.db")))
    await store.open()
    clock = VirtualClock(START)
    registry = Registry(store)
    due = DueRuns(clock)
    waited = WaitedNames()
    http = HttpClient(allow_private_networks=True)
    await http.start()
    ingest = Ingest(store, clock, index=lambda: registry.index, waited=waited,
                    on_started=lambda runs: scheduler.start_new(runs),
                    on_runs_due=lambda run_ids: scheduler.notify_now(run_ids))
    approvals = ApprovalDesk(store, clock, public_url=lambda: "http://flowd.test",
                             on_runs_due=lambda run_ids: scheduler.notify_now(run_ids))
    await approvals.start()
    extra = with_effects(store, clock, ingest) if with_effects else {}
    effects = Effects(http=http, signer=WebhookSigner(_no_secrets), approvals=approvals, **extra)
    engine = Engine(store, registry, clock, effects, due=due, waited=waited,
                    rng=random.Random(seed), on_started=lambda runs: scheduler.start_new(runs),
                    store_events=ingest.store_events,
                    contact_changed=ingest.contact_changed)
    slots = RunSlots(capacity, engine.execute, due.notify_now)
    scheduler = Scheduler(store, clock, due, slots, engine.claim, horizon_ms=horizon_ms)
    schedules = Schedules(store, clock, lambda: registry.index, on_started=scheduler.start_new)
    registry.listeners.append(schedules.notify)
    return Core(store, clock, registry, due, engine, slots, scheduler, ingest, http, approvals,
                schedules, extra)


async def close_core(core: Core) -> None:
    await core.schedules.stop()
    await core.scheduler.stop()
    await core.slots.stop()
    await core.http.close()
    await core.store.close()


async def _no_secrets(project_id: str) -> list[str]:
    raise AssertionError("these tests sign nothing")
