"""The scheduler on a real store and a virtual clock: dispatch(now) takes exactly the runs due
at `now`, says when to look again, loads only the near horizon, and its loop wakes when the
clock reaches a due time or when something earlier arrives. Nothing here sleeps for real."""

from __future__ import annotations

import asyncio

import pytest

from flowd.store.records import RunStatus
from tests.core import START, Core, close_core, make_core

WAIT_AN_HOUR = [{"id": "w", "type": "wait", "config": {"duration": "PT1H"}},
                {"id": "after", "type": "set", "config": {"vars": {"done": True}}}]


@pytest.fixture
async def core(tmp_path):
    core = await make_core(tmp_path, horizon_ms=60_000)
    yield core
    await close_core(core)


async def waiting_runs(core: Core, count: int, duration: str) -> list[str]:
    workflow = await core.workflow([{"id": "w", "type": "wait", "config": {"duration": duration}},
                                    {"id": "after", "type": "set",
                                     "config": {"vars": {"done": True}}}])
    ids = []
    for _ in range(count):
        run = await core.start(workflow)
        await core.execute(run)
        ids.append(run.id)
    return ids


async def statuses(core: Core, ids: list[str]) -> list[RunStatus]:
    return [(await core.run(run_id)).status for run_id in ids]


async def test_dispatch_takes_exactly_what_is_due_and_says_when_to_look_again(core: Core):
    soon = await waiting_runs(core, 3, "PT10S")
    later = await waiting_runs(core, 2, "PT20S")
    next_look = await core.scheduler.dispatch(START)
    assert next_look == START + 10_000            # the earliest due time
    core.clock.set(START + 10_000)
    assert await core.scheduler.dispatch() == START + 20_000
    await core.settle()
    assert await statuses(core, soon) == [RunStatus.COMPLETED] * 3
    assert await statuses(core, later) == [RunStatus.WAITING] * 2
    core.clock.set(START + 20_000)
    await core.scheduler.dispatch()
    await core.settle()
    assert await statuses(core, later) == [RunStatus.COMPLETED] * 2


async def test_only_the_near_horizon_is_in_memory(core: Core):
    far = await waiting_runs(core, 2, "PT2M")   # beyond the 60 s horizon
    next_look = await core.scheduler.dispatch(START)
    assert len(core.due) == 0                    # on disk only
    assert next_look == START + 30_000           # refill once half the horizon has passed
    core.clock.set(START + 90_000)
    assert await core.scheduler.dispatch() == START + 120_000
    assert len(core.due) == 2                    # the refill brought them in
    core.clock.set(START + 120_000)
    await core.scheduler.dispatch()
    await core.settle()
    assert await statuses(core, far) == [RunStatus.COMPLETED] * 2


async def test_something_due_earlier_wakes_the_sleeping_loop(core: Core):
    await core.scheduler.start()
    await asyncio.sleep(0.01)        # the loop dispatched and sleeps on the virtual clock
    # The loop sleeps until its next refill (30 s of virtual time away). The wait's due time
    # (5 s) wakes it at once, so moving the clock 5 s is enough for the run to go on.
    [run_id] = await waiting_runs(core, 1, "PT5S")
    await asyncio.sleep(0.01)
    core.clock.advance(5_000)
    for _ in range(500):
        if (await core.run(run_id)).status is RunStatus.COMPLETED:
            break
        await asyncio.sleep(0.01)
    assert (await core.run(run_id)).status is RunStatus.COMPLETED


async def test_runs_a_crash_left_running_are_dispatched_at_start(core: Core):
    workflow = await core.workflow([{"id": "a", "type": "set", "config": {"vars": {"x": 1}}}])
    run = await core.start(workflow)
    run.status = RunStatus.RUNNING   # as if the process died while executing it
    await core.store.write(lambda tx: tx.runs.save(run, expect=RunStatus.PENDING))
    await core.scheduler.start()
    for _ in range(500):
        if (await core.run(run.id)).status is RunStatus.COMPLETED:
            break
        await asyncio.sleep(0.01)
    assert (await core.run(run.id)).vars == {"x": 1}


async def test_a_run_already_held_by_the_slots_is_not_claimed_twice(core: Core):
    [run_id] = await waiting_runs(core, 1, "PT10S")
    core.clock.set(START + 10_000)
    await core.scheduler.dispatch()
    core.due.notify(run_id, START + 10_000)      # told again while it executes
    await core.scheduler.dispatch()
    await core.settle()
    assert [e.seq for e in await core.trace(run_id)] == [1, 2]


async def test_a_run_due_again_while_its_task_finishes_is_dispatched_once_released():
    """An event can wake a run in the very transaction that committed its wait, before its
    task has let go of its slot: the scheduler must not drop that due time."""
    from flowd.clock import VirtualClock
    from flowd.dueruns import DueRuns
    from flowd.scheduler import Scheduler
    from flowd.slots import RunSlots
    from flowd.store.records import Run

    clock = VirtualClock(START)
    due = DueRuns(clock)
    due.loaded_until = START + 60_000
    gate = asyncio.Event()

    async def execute(run: Run, contact: object, loaded: bool) -> None:
        await gate.wait()

    slots = RunSlots(10, execute, due.notify_now)
    claimed: list[list[str]] = []

    async def claim(run_ids: list[str]) -> list:
        claimed.append(run_ids)
        return []

    scheduler = Scheduler(None, clock, due, slots, claim)  # type: ignore[arg-type]
    run = Run("run_1", "default", "wf", 1, None, RunStatus.PENDING, "a", {}, START, START)
    slots.offer(run)
    due.notify("run_1", START)
    await scheduler.dispatch(START)
    assert claimed == [] and len(due) == 0        # held: not claimed, not forgotten either
    gate.set()
    await slots.drained()
    await asyncio.sleep(0)                        # the task's done-callback
    await scheduler.dispatch(START)
    assert claimed == [["run_1"]]
