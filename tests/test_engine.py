"""The engine on a real store and a virtual clock: steps commit one by one, waits end by one
path whatever ends them, retries back off in virtual time, and randomness comes from the run's
context. Nothing here sleeps."""

from __future__ import annotations

import pytest

from flowd.runs import end_active_run
from flowd.store.records import RunStatus
from flowd.waits import WaitKind, WakeReason
from tests.core import START, Core, close_core, make_core


@pytest.fixture
async def core(tmp_path):
    core = await make_core(tmp_path)
    yield core
    await close_core(core)


async def test_steps_run_and_commit_in_order(core: Core):
    workflow = await core.workflow([
        {"id": "a", "type": "set", "config": {"vars": {"x": 1}}},
        {"id": "b", "type": "set", "config": {"vars": {"y": "{{ vars.x }}"}}}])
    run = await core.start(workflow)
    await core.execute(run)
    stored = await core.run(run.id)
    assert stored.status is RunStatus.COMPLETED and stored.vars == {"x": 1, "y": 1}
    assert [(e.seq, e.step_id, e.status) for e in await core.trace(run.id)] == [
        (1, "a", "ok"), (2, "b", "ok")]
    assert stored.completed_at == START


async def test_a_timer_wait_ends_in_the_claim_when_virtual_time_reaches_it(core: Core):
    workflow = await core.workflow([
        {"id": "w", "type": "wait", "config": {"duration": "PT1H"}},
        {"id": "after", "type": "set", "config": {"vars": {"done": True}}}])
    run = await core.start(workflow)
    await core.execute(run)
    waiting = await core.run(run.id)
    assert waiting.status is RunStatus.WAITING and waiting.due_at == START + 3_600_000
    assert waiting.wait is not None and waiting.wait.kind is WaitKind.TIMER
    assert await core.engine.claim([run.id]) == []          # not due yet: nothing taken
    core.clock.advance(3_600_000)
    [(claimed, _, _)] = await core.engine.claim([run.id])
    # The claim itself ended the wait: the run is at its next step, the wait's entry is ok.
    assert claimed.current_step_id == "after" and claimed.wait is None
    [entry] = await core.trace(run.id)
    assert (entry.status, entry.outcome, entry.finished_at) == ("ok", "waited", START + 3_600_000)
    await core.execute(claimed)
    assert (await core.run(run.id)).vars == {"done": True}


async def test_an_event_wait_ends_through_resume_with_the_event(core: Core):
    workflow = await core.workflow(
        [{"id": "w", "type": "wait_for_event", "config": {"event": "paid", "timeout": "P1D"},
          "next": {"event": "yes", "timeout": None}},
         {"id": "yes", "type": "set", "config": {"vars": {"amount": "{{ steps.w.properties.n }}"}}}])
    run = await core.start(workflow, "u1")
    await core.execute(run)
    result = await core.send("paid", "u1", properties={"n": 5})
    assert result.runs_resumed == [run.id]
    woken = await core.run(run.id)
    assert woken.wake is not None and woken.wake.reason is WakeReason.EVENT
    [(claimed, _, _)] = await core.engine.claim([run.id])
    await core.execute(claimed)
    done = await core.run(run.id)
    assert done.status is RunStatus.COMPLETED and done.vars == {"amount": 5}
    assert [e.branch for e in await core.trace(run.id)] == ["event", None]


async def test_an_event_before_the_wait_began_matches_with_lookback(core: Core):
    workflow = await core.workflow(
        [{"id": "w", "type": "wait_for_event",
          "config": {"event": "seen", "lookback": "PT10M",
                     "filter": {"field": "event.properties.ok", "op": "eq", "value": True}},
          "next": {"event": None, "timeout": None}}])
    await core.send("seen", "u1", properties={"ok": False})
    await core.send("seen", "u1", properties={"ok": True})
    core.clock.advance(60_000)
    run = await core.start(workflow, "u1")
    await core.execute(run)
    stored = await core.run(run.id)
    assert stored.status is RunStatus.COMPLETED   # the lookback matched in the same unit
    [entry] = await core.trace(run.id)
    assert entry.output["properties"] == {"ok": True}


async def test_retries_back_off_in_virtual_time_then_fail(core: Core):
    workflow = await core.workflow([{
        "id": "call", "type": "http_request", "retry": {"max_attempts": 3, "backoff": "PT10S"},
        "config": {"url": "http://127.0.0.1:9/unreachable", "timeout": "PT1S"}}])
    run = await core.start(workflow)
    await core.execute(run)
    for backoff in (10_000, 20_000):
        waiting = await core.run(run.id)
        assert waiting.wait is not None and waiting.wait.kind is WaitKind.RETRY
        assert waiting.due_at == core.clock.now_ms() + backoff
        core.clock.advance(backoff)
        [(claimed, _, _)] = await core.engine.claim([run.id])
        await core.execute(claimed)
    failed = await core.run(run.id)
    assert failed.status is RunStatus.FAILED
    assert [e.attempt for e in await core.trace(run.id)] == [1, 2, 3]


async def test_a_random_split_takes_the_branches_its_seeded_random_picks(tmp_path):
    branches = []
    for _ in range(2):   # the same seed twice: the same branches
        core = await make_core(tmp_path / str(len(branches)), seed=42)
        try:
            workflow = await core.workflow([
                {"id": "s", "type": "split",
                 "config": {"random": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]},
                 "next": {"a": None, "b": None}}])
            picked = []
            for _ in range(20):
                run = await core.start(workflow)
                await core.execute(run)
                picked.append((await core.trace(run.id))[0].branch)
            branches.append(picked)
        finally:
            await close_core(core)
    assert branches[0] == branches[1] and set(branches[0]) == {"a", "b"}


async def test_a_run_cancelled_while_its_step_ran_is_not_recorded(core: Core):
    workflow = await core.workflow([{"id": "a", "type": "set", "config": {"vars": {"x": 1}}}])
    run = await core.start(workflow)
    await core.store.write(lambda tx: end_active_run(tx, "default", run.id, RunStatus.CANCELLED,
                                                     core.clock.now_ms(), []))
    await core.execute(run)   # its commit finds the run ended: dropped
    assert (await core.run(run.id)).status is RunStatus.CANCELLED
    assert await core.trace(run.id) == []


async def test_a_parked_run_is_claimed_without_a_read_but_never_before_its_time(core: Core):
    """The engine keeps runs it parked on a near timer; a claim takes them as committed, and
    an older due time of the same run (a stale heap entry) must not end its wait early."""
    core.due.loaded_until = START + 60_000   # as the scheduler's first dispatch would
    workflow = await core.workflow(
        [{"id": "w", "type": "wait", "config": {"duration": "PT10S"}},
         {"id": "after", "type": "set", "config": {"vars": {"done": True}}}])
    run = await core.start(workflow)
    await core.execute(run)
    assert await core.engine.claim([run.id]) == []       # due in 10 s: not yet
    assert (await core.run(run.id)).status is RunStatus.WAITING
    core.clock.advance(10_000)
    [(claimed, _, _)] = await core.engine.claim([run.id])
    assert claimed is run                                 # the parked object, no read
    assert claimed.current_step_id == "after"


async def test_a_parked_run_changed_meanwhile_is_left_to_whoever_changed_it(core: Core):
    core.due.loaded_until = START + 60_000
    workflow = await core.workflow(
        [{"id": "w", "type": "wait_for_event", "config": {"event": "paid", "timeout": "PT10S"},
          "next": {"event": "yes", "timeout": None}},
         {"id": "yes", "type": "set", "config": {"vars": {"paid": True}}}])
    run = await core.start(workflow, "u1")
    await core.execute(run)
    await core.send("paid", "u1")            # wakes it: the stored row is no longer as parked
    core.clock.advance(10_000)
    # The parked copy (still waiting) is refused: nothing is taken by the timer's claim…
    assert await core.engine.claim([run.id]) == []
    # …and the wake's own claim (the scheduler has it due since the event) reads the run anew.
    assert run.id in core.due.pop_due(core.clock.now_ms(), 10)
    [(claimed, _, _)] = await core.engine.claim([run.id])
    assert claimed is not run and claimed.wake is not None
    await core.execute(claimed)
    done = await core.run(run.id)
    assert done.vars == {"paid": True} and done.status is RunStatus.COMPLETED
