"""What an event does, decided in the unit that stores it, on a real store: triggers (with
reentry), exit_on, and the one wait matcher (`wait_matches`) for events arriving while a run
waits and, through the engine's lookback, before it began to wait. No HTTP, no sleeping."""

from __future__ import annotations

import pytest

from flowd.matching import EventView, wait_matches
from flowd.store.records import Event, RunStatus
from flowd.waits import EventWaitSpec
from tests.core import START, Core, close_core, make_core


@pytest.fixture
async def core(tmp_path):
    core = await make_core(tmp_path)
    yield core
    await close_core(core)


def event(name: str, received_at: int = START, **properties: object) -> EventView:
    return EventView(Event("evt_1", "default", name, "u1", dict(properties), received_at,
                           received_at, None), lambda: {"traits": {"plan": "pro"}}, START)


@pytest.mark.parametrize("spec,view,matches", [
    (EventWaitSpec("paid"), event("paid"), True),
    (EventWaitSpec("paid"), event("paid.late"), False),
    (EventWaitSpec("order.*"), event("order.shipped"), True),
    (EventWaitSpec("paid", since=START + 1), event("paid"), False),     # before the wait
    (EventWaitSpec("paid", {"field": "event.properties.n", "op": "gt", "value": 3}),
     event("paid", n=4), True),
    (EventWaitSpec("paid", {"field": "event.properties.n", "op": "gt", "value": 3}),
     event("paid", n=2), False),
    (EventWaitSpec("paid", {"field": "contact.traits.plan", "op": "eq", "value": "pro"}),
     event("paid"), True),
])
def test_the_one_wait_matcher(spec, view, matches):
    assert wait_matches(spec, view) is matches


async def test_a_trigger_starts_a_run_once_per_contact_under_after_completion(core: Core):
    workflow = await core.workflow([{"id": "w", "type": "wait", "config": {"duration": "P1D"}}],
                                   trigger={"type": "event", "event": "signup"})
    first = await core.send("signup", "u1")
    assert len(first.runs_started) == 1
    assert (await core.send("signup", "u1")).runs_started == []   # still active
    assert len((await core.send("signup", "u2")).runs_started) == 1
    run = await core.run(first.runs_started[0])
    assert run.workflow_id == workflow.id and run.contact_id == "u1"


async def test_a_trigger_filter_sees_the_event_and_the_contact(core: Core):
    await core.workflow([{"id": "a", "type": "exit"}],
                        trigger={"type": "event", "event": "visit",
                                 "filter": {"all": [
                                     {"field": "event.properties.page", "op": "eq",
                                      "value": "/pricing"},
                                     {"field": "contact.traits.plan", "op": "eq",
                                      "value": "free"}]}})
    await core.store.write(lambda tx: tx.contacts.upsert("default", "u1",
                                                         {"traits": {"plan": "free"}}, START))
    assert (await core.send("visit", "u1", properties={"page": "/"})).runs_started == []
    assert len((await core.send("visit", "u1", properties={"page": "/pricing"})).runs_started) == 1
    assert (await core.send("visit", "u2", properties={"page": "/pricing"})).runs_started == []


async def test_an_exit_rule_ends_only_that_contacts_active_runs(core: Core):
    await core.workflow([{"id": "w", "type": "wait", "config": {"duration": "P1D"}}],
                        trigger={"type": "event", "event": "trial"},
                        settings={"exit_on": [{"event": "bought"}]})
    a = (await core.send("trial", "a")).runs_started[0]
    b = (await core.send("trial", "b")).runs_started[0]
    await core.settle()
    result = await core.send("bought", "a")
    assert result.runs_exited == [a]
    ended = await core.run(a)
    assert ended.status is RunStatus.COMPLETED and ended.exit_reason == "exit_on:bought"
    assert [e.status for e in await core.trace(a)] == ["skipped"]   # its wait will never end
    assert (await core.run(b)).status is RunStatus.WAITING


async def test_an_event_wakes_only_matching_waits_of_its_contact(core: Core):
    await core.workflow(
        [{"id": "w", "type": "wait_for_event",
          "config": {"event": "clicked",
                     "filter": {"field": "event.properties.link", "op": "eq", "value": "buy"}},
          "next": {"event": None, "timeout": None}}],
        trigger={"type": "event", "event": "mailed"})
    mine = (await core.send("mailed", "u1")).runs_started[0]
    theirs = (await core.send("mailed", "u2")).runs_started[0]
    await core.settle()
    assert (await core.send("clicked", "u1", properties={"link": "unsubscribe"})).runs_resumed == []
    assert (await core.send("clicked", "u1", properties={"link": "buy"})).runs_resumed == [mine]
    assert (await core.run(theirs)).wake is None
    # A second matching event finds the wait already ended.
    assert (await core.send("clicked", "u1", properties={"link": "buy"})).runs_resumed == []


async def test_a_contact_less_run_waits_by_filter_alone(core: Core):
    workflow = await core.workflow(
        [{"id": "w", "type": "wait_for_event",
          "config": {"event": "batch.done",
                     "filter": {"field": "event.properties.job", "op": "eq", "value": 7}},
          "next": {"event": None, "timeout": None}}])
    run = await core.start(workflow)            # no contact
    await core.execute(run)
    assert (await core.send("batch.done", "anyone", properties={"job": 6})).runs_resumed == []
    assert (await core.send("batch.done", None, properties={"job": 7})).runs_resumed == [run.id]
