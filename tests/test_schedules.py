"""Schedule triggers on a real store and a virtual clock: fires at the cron's instants, never
twice for one instant (a replayed unit, a restart on the same file), missed fires collapse
into one, paused and deactivated workflows do not fire, edits keep the count, many due at
once fire in one unit; and through the API, a run appears."""

from __future__ import annotations

from typing import Any

import pytest

from flowd.app import create_app
from flowd.clock import VirtualClock
from flowd.store.records import RunStatus
from flowd.workflows import WorkflowService
from tests.conftest import ADMIN_KEY, Api, eventually
from tests.core import START, Core, close_core, make_core

MINUTE = 60_000
STEPS = [{"id": "mark", "type": "set", "config": {"vars": {"at": "{{ event.properties.scheduled_at }}"}}}]
# START is 2027-01-15T08:00:00Z.


def schedule(cron: str = "*/10 * * * *", timezone: str = "UTC") -> dict[str, Any]:
    return {"name": "scheduled", "trigger": {"type": "schedule", "cron": cron, "timezone": timezone},
            "steps": STEPS, "status": "active"}


@pytest.fixture
async def core(tmp_path):
    core = await make_core(tmp_path)
    yield core
    await close_core(core)


def service(core: Core) -> WorkflowService:
    return WorkflowService(core.store, core.clock, core.registry.changed,
                           core.scheduler.notify_now)


async def runs_of(core: Core, workflow_id: str) -> list[Any]:
    page = await core.store.list_runs("default", workflow_id=workflow_id, status=None,
                                      contact_id=None, before=None, limit=1000)
    return sorted(page.items, key=lambda run: run.trigger["scheduled_at"])


async def fired_at(core: Core, workflow_id: str) -> list[str]:
    return [run.trigger["scheduled_at"] for run in await runs_of(core, workflow_id)]


async def test_fires_at_each_instant_of_the_cron(core: Core) -> None:
    workflow = await service(core).create("default", schedule())
    # Activated at 08:00:00 exactly: counting starts there, strictly after it.
    assert await core.schedules.tick(START) == START + 10 * MINUTE
    assert await core.schedules.tick(START + 10 * MINUTE - 1) == START + 10 * MINUTE
    assert await fired_at(core, workflow.id) == []
    assert await core.schedules.tick(START + 10 * MINUTE) == START + 20 * MINUTE
    await core.settle()
    [run] = await runs_of(core, workflow.id)
    assert run.contact_id is None and run.status is RunStatus.COMPLETED
    assert run.vars == {"at": "2027-01-15T08:10:00.000Z"}
    assert run.trigger["type"] == "schedule"
    assert run.trigger["scheduled_at"] == "2027-01-15T08:10:00.000Z"
    assert run.trigger["event"]["name"] == "schedule.fired"
    assert run.trigger["event"]["properties"] == {"scheduled_at": "2027-01-15T08:10:00.000Z"}
    await core.schedules.tick(START + 20 * MINUTE + 5)
    await core.settle()
    assert await fired_at(core, workflow.id) == ["2027-01-15T08:10:00.000Z",
                                                  "2027-01-15T08:20:00.000Z"]


async def test_the_time_zone_decides_the_instant(core: Core) -> None:
    workflow = await service(core).create("default", schedule("0 9 * * *", "Asia/Tokyo"))
    # 09:00 in Tokyo is 00:00Z: the next is 2027-01-16T00:00Z.
    assert await core.schedules.tick(START) == START + 16 * 60 * MINUTE
    await core.schedules.tick(START + 16 * 60 * MINUTE)
    assert await fired_at(core, workflow.id) == ["2027-01-16T00:00:00.000Z"]


async def test_a_fire_is_made_once_even_when_its_unit_runs_again(core: Core) -> None:
    workflow = await service(core).create("default", schedule())
    await core.schedules.tick(START)
    entry = core.schedules._entries[workflow.id]
    due = [(entry, START + 10 * MINUTE)]
    first = await core.store.write(core.schedules._fire, due, START + 10 * MINUTE)
    again = await core.store.write(core.schedules._fire, due, START + 10 * MINUTE + 3)
    assert len(first) == 1 and again == []
    # The id alone keeps it out too: the same run inserted again is a no-op.
    assert await core.store.write(lambda tx: tx.runs.insert_new(first)) == []
    await core.schedules.tick(START + 10 * MINUTE)
    assert await fired_at(core, workflow.id) == ["2027-01-15T08:10:00.000Z"]


async def restart(core: Core, tmp_path: Any, now: int) -> Core:
    """Stop the core and start another on the same database file at `now`."""
    await close_core(core)
    core = await make_core(tmp_path)
    core.clock.set(now)
    await core.registry.load()
    return core


async def test_restarts_never_fire_twice_and_missed_fires_collapse_into_one(
        core: Core, tmp_path: Any) -> None:
    workflow = await service(core).create("default", schedule())
    await core.schedules.tick(START)
    await core.schedules.tick(START + 10 * MINUTE)
    # Restarted in the same minute: the 08:10 fire is not made again.
    core = await restart(core, tmp_path, START + 10 * MINUTE + 30_000)
    assert await core.schedules.tick() == START + 20 * MINUTE
    assert await fired_at(core, workflow.id) == ["2027-01-15T08:10:00.000Z"]
    # Down from 08:10:30 to 09:05: 08:20 … 09:00 were missed, and make one fire, for 09:00.
    core = await restart(core, tmp_path, START + 65 * MINUTE)
    assert await core.schedules.tick() == START + 70 * MINUTE
    assert await fired_at(core, workflow.id) == ["2027-01-15T08:10:00.000Z",
                                                  "2027-01-15T09:00:00.000Z"]
    await core.schedules.tick(START + 70 * MINUTE)
    assert len(await fired_at(core, workflow.id)) == 3
    # Down for a year: still one fire.
    core = await restart(core, tmp_path, START + 365 * 24 * 60 * MINUTE + 7 * MINUTE)
    await core.schedules.tick()
    assert (await fired_at(core, workflow.id))[3:] == ["2028-01-15T08:00:00.000Z"]
    await close_core(core)


async def test_first_activation_counts_from_then_without_back_fill(core: Core) -> None:
    workflows = service(core)
    workflow = await workflows.create("default", {**schedule(), "status": "draft"})
    core.clock.set(START + 35 * MINUTE)
    await core.schedules.tick()
    await workflows.transition("default", workflow.id, "activate")
    assert await core.schedules.tick() == START + 40 * MINUTE
    assert await fired_at(core, workflow.id) == []


async def test_paused_workflows_do_not_fire_and_catch_up_once_on_resume(core: Core) -> None:
    workflows = service(core)
    workflow = await workflows.create("default", schedule())
    await core.schedules.tick(START)
    await workflows.transition("default", workflow.id, "pause")
    assert await core.schedules.tick(START + 30 * MINUTE) is None
    assert await fired_at(core, workflow.id) == []
    core.clock.set(START + 45 * MINUTE)
    await workflows.transition("default", workflow.id, "resume")
    assert await core.schedules.tick() == START + 50 * MINUTE
    # As a timer that comes due while paused fires on resume: once, for the latest instant.
    assert await fired_at(core, workflow.id) == ["2027-01-15T08:40:00.000Z"]


async def test_deactivated_workflows_forget_the_count(core: Core) -> None:
    workflows = service(core)
    workflow = await workflows.create("default", schedule())
    await core.schedules.tick(START)
    await workflows.transition("default", workflow.id, "deactivate")
    core.clock.set(START + 45 * MINUTE)
    assert await core.schedules.tick() is None
    await workflows.transition("default", workflow.id, "activate")
    assert await core.schedules.tick() == START + 50 * MINUTE
    assert await fired_at(core, workflow.id) == []   # nothing for 08:10 … 08:40


async def test_an_edit_keeps_the_count_and_a_new_cron_counts_from_the_edit(core: Core) -> None:
    workflows = service(core)
    workflow = await workflows.create("default", schedule())
    await core.schedules.tick(START)
    await core.schedules.tick(START + 10 * MINUTE)
    core.clock.set(START + 12 * MINUTE)
    edited = await workflows.replace("default", workflow.id, {
        **schedule(), "steps": [*STEPS, {"id": "end", "type": "exit"}]})
    assert edited.version == 2
    assert await core.schedules.tick() == START + 20 * MINUTE
    await core.schedules.tick(START + 20 * MINUTE)
    runs = await runs_of(core, workflow.id)
    assert [(r.trigger["scheduled_at"], r.workflow_version) for r in runs] == [
        ("2027-01-15T08:10:00.000Z", 1), ("2027-01-15T08:20:00.000Z", 2)]
    # Every minute from 08:25 on: no catch-up for the minutes since 08:20.
    core.clock.set(START + 25 * MINUTE + 30_000)
    await workflows.replace("default", workflow.id, schedule("* * * * *"))
    assert await core.schedules.tick() == START + 26 * MINUTE
    assert len(await fired_at(core, workflow.id)) == 2


async def test_a_thousand_due_at_once_fire_in_one_unit(core: Core) -> None:
    from flowd.definitions import analyze, normalize
    from flowd.store.records import WorkflowStatus

    definition = normalize(schedule("30 8 * * *"))
    _, issues = analyze(definition)

    def create_all(tx: Any) -> None:
        for i in range(1000):
            tx.workflows.create(project_id="default", name=f"s{i}", description="",
                                status=WorkflowStatus.ACTIVE, definition=definition,
                                issues=[i.to_json() for i in issues], now=START)
    await core.store.write(create_all)
    await core.registry.load()
    assert await core.schedules.tick(START) == START + 30 * MINUTE
    writes = []
    write = core.store.write

    def counting(unit: Any, *args: Any) -> Any:
        writes.append(unit)
        return write(unit, *args)
    core.store.write = counting   # type: ignore[method-assign]
    await core.schedules.tick(START + 30 * MINUTE)
    # One unit made every run (the others are the engine's, executing them).
    assert [w for w in writes if w == core.schedules._fire] == [writes[0]]
    assert len(await core.store.read(lambda tx: tx.runs.page(
        "default", workflow_id=None, status=None, contact_id=None, before=None,
        limit=1000).items)) == 1000
    await core.settle()
    counts = await core.store.read(lambda tx: tx.runs.status_counts("default"))
    assert counts["completed"] == 1000


async def test_the_loop_wakes_at_the_fire_and_on_a_change(core: Core) -> None:
    await core.scheduler.start()
    await core.schedules.start()
    workflow = await service(core).create("default", schedule("*/5 * * * *"))

    async def fired() -> list[str]:
        return await fired_at(core, workflow.id)
    # The registry's change woke the loop, which now sleeps until 08:05.
    await eventually(lambda: _has(core.schedules.next_due, START + 5 * MINUTE))
    core.clock.set(START + 5 * MINUTE)
    assert await eventually(fired) == ["2027-01-15T08:05:00.000Z"]


async def _has(value: Any, expected: Any) -> bool:
    return value == expected


async def test_a_schedule_workflow_made_through_the_api_starts_runs(aiohttp_client, config) -> None:
    clock = VirtualClock(START)
    api = Api(await aiohttp_client(create_app(config, clock=clock, admin_key=ADMIN_KEY)))
    workflow = await api.workflow({"trigger": {"type": "schedule", "cron": "0 9 * * FRI",
                                               "timezone": "Europe/Berlin"}, "steps": STEPS})
    assert workflow["trigger"]["timezone"] == "Europe/Berlin"
    clock.set(START)   # the server's loop is asleep until 09:00 Berlin (08:00Z next Friday)
    clock.set(START + 7 * 24 * 60 * MINUTE)

    async def runs() -> list[Any]:
        _, page = await api.get(f"/v1/runs?workflow_id={workflow['id']}")
        return page["data"]
    [run] = await eventually(runs)
    run = await api.run_until(run["id"], "completed")
    assert run["contact_id"] is None and run["trigger"]["type"] == "schedule"
    assert run["trigger"]["scheduled_at"] == "2027-01-22T08:00:00.000Z"
    assert run["vars"] == {"at": "2027-01-22T08:00:00.000Z"}
