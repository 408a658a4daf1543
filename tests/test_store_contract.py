"""The store's contract: what every verb of flowd.store.base promises, run against each
implementation (a second one — PostgreSQL, the dry run's throwaway store — adds itself to
`IMPLEMENTATIONS` and must pass the same tests)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from flowd.store import DbSettings, LastAdminKey, RunPreempted, SqliteStore, Store
from flowd.store.base import Claim, Transaction
from flowd.store.records import (
    ACTIVE_STATUSES,
    AlertDelivery,
    AlertSubscription,
    Approval,
    BulkJob,
    BulkJobStatus,
    BulkSource,
    ContactChange,
    DeliveryStatus,
    Event,
    Role,
    Run,
    RunStatus,
    Session,
    TraceEntry,
    WorkflowStatus,
)
from flowd.waits import EventWaitSpec, Wait, WaitKind, Wake, WakeReason

NOW = 1_800_000_000_000


def sqlite_file(tmp_path: Any) -> Store:
    return SqliteStore(DbSettings(path=str(tmp_path / "contract.db")))


IMPLEMENTATIONS: list[Callable[[Any], Store]] = [sqlite_file]


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda make: make.__name__)
async def store(request, tmp_path):
    store = request.param(tmp_path)
    await store.open()
    yield store
    await store.close()


async def write(store: Store, unit: Callable[[Transaction], Any]) -> Any:
    return await store.write(unit)


def a_run(workflow_id: str, *, run_id: str = "run_1", contact_id: str | None = "u1",
          status: RunStatus = RunStatus.PENDING, due_at: int | None = NOW, **fields: Any) -> Run:
    return Run(id=run_id, project_id="default", workflow_id=workflow_id, workflow_version=1,
               contact_id=contact_id, status=status, current_step_id="s1",
               trigger={"type": "api"}, created_at=NOW, updated_at=NOW, due_at=due_at, **fields)


async def a_workflow(store: Store, name: str = "wf") -> str:
    workflow = await store.write(lambda tx: tx.workflows.create(
        project_id="default", name=name, description="", status=WorkflowStatus.ACTIVE,
        definition={"trigger": {"type": "manual"}, "settings": {}, "steps": []}, issues=[],
        now=NOW))
    return workflow.id


# ------------------------------------------------------------------ units of work

async def test_after_commit_work_runs_once_the_unit_is_durable_and_never_for_a_failed_one(
        store: Store):
    happened: list[str] = []

    def add_key(tx: Transaction, name: str) -> None:
        tx.keys.create(project_id="default", role=Role.VIEWER, name=name, key_hash=name * 64,
                       prefix=name, now=NOW)
        tx.after_commit.append(lambda: happened.append(name))

    def good(tx: Transaction) -> str:
        add_key(tx, "g")
        return "done"

    def bad(tx: Transaction) -> None:
        add_key(tx, "b")
        raise ValueError("no")

    assert await store.write(good) == "done" and happened == ["g"]
    with pytest.raises(ValueError):
        await store.write(bad)
    assert happened == ["g"]   # no after-commit work for a unit that did not commit…
    keys = await store.read(lambda tx: tx.keys.page(project_id="default", before=None, limit=10))
    assert [k.name for k in keys.items] == ["g"]   # …and none of its writes


# ------------------------------------------------------------------ keys

async def test_keys_are_found_by_hash_prefix_and_the_last_admin_key_stays(store: Store):
    key = await store.write(lambda tx: tx.keys.create(
        project_id="default", role=Role.ADMIN, name="first", key_hash="ab" * 32, prefix="flowd_ab",
        now=NOW))
    found = await store.read(lambda tx: tx.keys.find_active("ab" * 8))
    assert [(k.id, full) for k, full in found] == [(key.id, "ab" * 32)]
    with pytest.raises(LastAdminKey):
        await store.write(lambda tx: tx.keys.revoke(key_id=key.id, project_id="default", now=NOW))
    await store.write(lambda tx: tx.keys.ensure_admin(key_hash="cd" * 32, prefix="p",
                                                      name="env", now=NOW))
    assert await store.write(lambda tx: tx.keys.revoke(key_id=key.id, project_id="default",
                                                       now=NOW))
    assert await store.read(lambda tx: tx.keys.find_active("ab" * 8)) == []
    assert await store.write(lambda tx: tx.keys.revoke(key_id=key.id, project_id=None,
                                                       now=NOW)) is False


async def test_a_session_is_found_until_it_expires_or_its_key_is_revoked(store: Store):
    keep = await store.write(lambda tx: tx.keys.create(
        project_id="default", role=Role.ADMIN, name="keep", key_hash="01" * 32, prefix="p",
        now=NOW))
    key = await store.write(lambda tx: tx.keys.create(
        project_id="default", role=Role.VIEWER, name="v", key_hash="02" * 32, prefix="p",
        now=NOW))
    sessions = [Session("a" * 64, key.id, "default", Role.VIEWER, NOW, NOW + 10),
                Session("b" * 64, keep.id, "default", Role.ADMIN, NOW, NOW + 20),
                Session("c" * 64, keep.id, "default", Role.ADMIN, NOW, NOW + 30)]
    for session in sessions:
        await store.write(lambda tx, s=session: tx.sessions.create(s))
    assert await store.read(lambda tx: tx.sessions.find("a" * 64, NOW + 9)) == sessions[0]
    assert await store.read(lambda tx: tx.sessions.find("a" * 64, NOW + 10)) is None
    assert await store.read(lambda tx: tx.sessions.find("a" * 63, NOW)) is None
    await store.write(lambda tx: tx.keys.revoke(key_id=key.id, project_id="default", now=NOW))
    assert await store.read(lambda tx: tx.sessions.find("a" * 64, NOW)) is None
    assert await store.write(lambda tx: tx.sessions.delete_expired(NOW + 25, 1)) == 1
    assert await store.write(lambda tx: tx.sessions.delete_expired(NOW + 25, 5)) == 1
    assert await store.read(lambda tx: tx.sessions.find("b" * 64, NOW)) is None
    assert await store.write(lambda tx: tx.sessions.delete("c" * 64)) is True
    assert await store.write(lambda tx: tx.sessions.delete("c" * 64)) is False


async def test_runs_are_counted_per_workflow_as_active_or_failed(store: Store):
    workflows = []
    for name in ("a", "b", "c"):
        workflows.append(await store.write(lambda tx, n=name: tx.workflows.create(
            project_id="default", name=n, description="", status=WorkflowStatus.ACTIVE,
            definition={"trigger": {"type": "manual"}, "steps": []}, issues=[], now=NOW)))
    a, b, c = (w.id for w in workflows)
    statuses = [(a, RunStatus.PENDING), (a, RunStatus.WAITING), (a, RunStatus.PAUSED),
                (a, RunStatus.RUNNING), (a, RunStatus.COMPLETED), (a, RunStatus.FAILED),
                (b, RunStatus.FAILED), (b, RunStatus.FAILED), (b, RunStatus.CANCELLED)]
    for i, (workflow_id, status) in enumerate(statuses):
        run = a_run(workflow_id, run_id=f"run_{i}", status=status)
        await store.write(lambda tx, r=run: tx.runs.insert([r]))
    assert await store.read(lambda tx: tx.runs.workflow_counts([a, b, c])) == {
        a: {"active": 4, "failed": 1}, b: {"active": 0, "failed": 2},
        c: {"active": 0, "failed": 0}}
    assert await store.read(lambda tx: tx.runs.workflow_counts([])) == {}


# ------------------------------------------------------------------ contacts

async def test_contact_upserts_follow_the_contracts_merge_rules(store: Store):
    contact, created, _ = await store.write(lambda tx: tx.contacts.upsert(
        "default", "u1", {"email": "a@example.com", "traits": {"plan": "pro", "age": 3},
                          "tags": ["a"]}, NOW))
    assert created and contact.subscribed == {"email": True, "sms": True, "push": True}
    contact, created, _ = await store.write(lambda tx: tx.contacts.upsert(
        "default", "u1", {"traits": {"age": None, "city": "Oslo"}, "subscribed": {"sms": False},
                          "add_tags": ["b", "a"], "remove_tags": ["a"]}, NOW + 1))
    assert not created
    assert contact.traits == {"plan": "pro", "city": "Oslo"} and contact.tags == ["b"]
    assert contact.subscribed == {"email": True, "sms": False, "push": True}
    assert contact.email == "a@example.com" and contact.updated_at == NOW + 1
    assert (await store.get_contact("default", "u1")) == contact


async def test_an_upsert_reports_what_it_changed(store: Store):
    def upsert(patch: dict) -> Any:
        return store.write(lambda tx: tx.contacts.upsert("default", "u1", patch, NOW))

    first = (await upsert({"email": "a@example.com", "tags": ["a", "b"]})).change
    assert first == ContactChange("u1", True, ["email", "tags"], ["a", "b"], [])
    change = (await upsert({"email": "a@example.com", "traits": {"plan": "pro", "gone": None},
                            "subscribed": {"email": True, "sms": False},
                            "add_tags": ["c", "a"], "remove_tags": ["b"]})).change
    assert change == ContactChange("u1", False, ["traits.plan", "subscribed.sms", "tags"],
                                   ["c"], ["b"])
    # The same values again change nothing; 1 → true is a change (JSON types, not Python's ==).
    same = (await upsert({"email": "a@example.com", "traits": {"plan": "pro"}, "tags": ["a", "c"],
                          "subscribed": {"sms": False}})).change
    assert same.changed == [] and same.tags_added == same.tags_removed == []
    await upsert({"traits": {"n": 1}})
    assert (await upsert({"traits": {"n": True}})).change.changed == ["traits.n"]
    assert (await upsert({"traits": {"n": None}, "email": None})).change.changed == [
        "traits.n", "email"]


async def test_ensure_reports_the_contacts_it_created(store: Store):
    await store.write(lambda tx: tx.contacts.upsert("default", "c1", {}, NOW))
    created = await store.write(lambda tx: tx.contacts.ensure(
        "default", ["c0", "c1", "c2"], NOW, report=True))
    assert created == ["c0", "c2"]
    assert await store.write(lambda tx: tx.contacts.ensure("default", ["c3"], NOW)) == []
    assert await store.get_contact("default", "c3") is not None


@pytest.mark.parametrize("count", [3, 20])   # bound rows, then one statement for many
async def test_ensure_creates_unknown_contacts_only(store: Store, count: int):
    await store.write(lambda tx: tx.contacts.upsert("default", "c0", {"email": "x@y.zz"}, NOW))
    ids = [f"c{i}" for i in range(count)]
    await store.write(lambda tx: tx.contacts.ensure("default", ids, NOW + 5))
    found = await store.read(lambda tx: tx.contacts.get_many_json(
        [("default", i) for i in ids] + [("default", "nobody")]))
    assert set(found) == {("default", i) for i in ids}
    assert found[("default", "c0")]["email"] == "x@y.zz"   # not replaced


async def test_contacts_are_listed_by_email_and_tag_and_deleted(store: Store):
    for contact_id, email, tags in (("a", "a@x.io", ["vip"]), ("b", "b@x.io", []),
                                    ("c", "a@x.io", ["vip", "new"])):
        await store.write(lambda tx, c=contact_id, e=email, t=tags: tx.contacts.upsert(
            "default", c, {"email": e, "tags": t}, NOW))
    by_email = await store.list_contacts("default", email="a@x.io", tag=None, before=None, limit=10)
    assert [c.id for c in by_email.items] == ["c", "a"]   # newest first
    by_tag = await store.list_contacts("default", email=None, tag="new", before=None, limit=10)
    assert [c.id for c in by_tag.items] == ["c"]
    page = await store.list_contacts("default", email=None, tag=None, before=None, limit=2)
    rest = await store.list_contacts("default", email=None, tag=None, before=page.next_before,
                                     limit=2)
    assert [c.id for c in page.items + rest.items] == ["c", "b", "a"] and rest.next_before is None
    assert await store.write(lambda tx: tx.contacts.delete("default", "b"))
    assert not await store.write(lambda tx: tx.contacts.delete("default", "b"))


# ------------------------------------------------------------------ events

@pytest.mark.parametrize("count", [2, 12])
async def test_events_keep_what_ingesting_them_did(store: Store, count: int):
    events = [Event(f"evt_{i}", "default", "paid", "u1", {"i": i, "text": 'q"\\é'}, NOW + i,
                    NOW + i, f"m{i}", runs_started=["run_a"] if i == 0 else [],
                    runs_exited=["run_b"] if i == 1 else []) for i in range(count)]
    await store.write(lambda tx: tx.events.insert(events))
    first = await store.read(lambda tx: tx.events.find_by_message_id("default", "m0"))
    assert first is not None and first.runs_started == ["run_a"] and first.properties["i"] == 0
    second = await store.read(lambda tx: tx.events.find_by_message_id("default", "m1"))
    assert second is not None and second.runs_exited == ["run_b"]
    since = await store.read(lambda tx: tx.events.since("default", "u1", NOW + 1, 100))
    assert [e.id for e in since] == [f"evt_{i}" for i in range(1, count)]
    page = await store.list_events("default", name="paid", contact_id=None, before=None, limit=100)
    assert [e.id for e in page.items] == [f"evt_{i}" for i in reversed(range(count))]


# ------------------------------------------------------------------ runs

async def test_a_save_expects_the_stored_status(store: Store):
    workflow_id = await a_workflow(store)
    run = a_run(workflow_id)
    await store.write(lambda tx: tx.runs.insert([run]))
    run.status, run.vars = RunStatus.RUNNING, {"x": 1}
    await store.write(lambda tx: tx.runs.save(run, expect=RunStatus.PENDING))
    with pytest.raises(RunPreempted):
        await store.write(lambda tx: tx.runs.save(run, expect=RunStatus.PENDING))
    stored = await store.get_run("default", run.id)
    assert stored is not None and stored.status is RunStatus.RUNNING and stored.vars == {"x": 1}


async def test_end_is_the_one_way_a_run_ends_and_closes_its_wait(store: Store):
    workflow_id = await a_workflow(store)
    run = a_run(workflow_id, status=RunStatus.WAITING,
                wait=Wait(WaitKind.EVENT, until=NOW + 5, started_at=NOW, event="paid"))
    await store.write(lambda tx: tx.runs.insert([run]))
    await store.write(lambda tx: tx.runs.write_trace(run.id, TraceEntry(
        1, "s1", "wait_for_event", "waiting", 1, 1, NOW)))
    await store.write(lambda tx: tx.runs.add_event_wait(run, EventWaitSpec("paid", None, NOW)))
    run.status, run.completed_at, run.wait = RunStatus.CANCELLED, NOW + 9, None
    assert await store.write(lambda tx: tx.runs.end(run, expect=ACTIVE_STATUSES))
    assert not await store.write(lambda tx: tx.runs.end(run, expect=ACTIVE_STATUSES))
    assert await store.read(lambda tx: tx.runs.event_waits_for("default", "paid", "u1")) == []
    [entry] = await store.run_trace(run.id)
    assert (entry.status, entry.finished_at) == ("skipped", NOW + 9)


async def test_waits_and_wakes_round_trip_typed(store: Store):
    workflow_id = await a_workflow(store)
    run = a_run(workflow_id, status=RunStatus.WAITING,
                wait=Wait(WaitKind.RETRY, until=NOW + 10, started_at=NOW, input={"a": 1}))
    await store.write(lambda tx: tx.runs.insert([run]))
    stored = await store.get_run("default", run.id)
    assert stored is not None and stored.wait == run.wait and stored.wait.is_retry
    assert stored.to_json()["wait"] == {"kind": "timer", "until": "2027-01-15T08:00:00.010Z",
                                        "retry": True}
    wake = Wake(WakeReason.EVENT, event={"name": "paid"})
    assert await store.write(lambda tx: tx.runs.wake(run.id, wake, NOW + 1))
    assert not await store.write(lambda tx: tx.runs.wake(run.id, wake, NOW + 2))   # once
    woken = await store.get_run("default", run.id)
    assert woken is not None and woken.wake == wake and woken.status is RunStatus.PENDING


async def test_a_claim_takes_only_runs_nobody_touched_since_they_were_read(store: Store):
    workflow_id = await a_workflow(store)
    runs = [a_run(workflow_id, run_id=f"run_{i}", due_at=NOW + i) for i in range(3)]
    runs.append(a_run(workflow_id, run_id="run_later", due_at=NOW + 1000))
    await store.write(lambda tx: tx.runs.insert(runs))
    ids = [run.id for run in runs]
    read = await store.read(lambda tx: tx.runs.claimable(ids, NOW + 10))
    assert sorted(run.id for run in read) == ["run_0", "run_1", "run_2"]   # due ones only
    # Meanwhile one of them is cancelled.
    cancelled = next(run for run in read if run.id == "run_1")
    gone = a_run(workflow_id, run_id="run_1", status=RunStatus.CANCELLED, due_at=None,
                 completed_at=NOW + 5)
    await store.write(lambda tx: tx.runs.end(gone, expect=ACTIVE_STATUSES))
    claims = []
    for run in read:
        claims.append(Claim(run, run.status, run.updated_at))
        run.status, run.due_at, run.updated_at = RunStatus.RUNNING, None, NOW + 10
    taken = await store.write(lambda tx: tx.runs.claim(claims))
    assert sorted(run.id for run in taken) == ["run_0", "run_2"]
    assert all(run.stored_status is RunStatus.RUNNING for run in taken)
    assert (await store.get_run("default", cancelled.id)).status is RunStatus.CANCELLED


async def test_due_runs_come_earliest_first_and_recovery_makes_running_runs_due(store: Store):
    workflow_id = await a_workflow(store)
    await store.write(lambda tx: tx.runs.insert([
        a_run(workflow_id, run_id="late", due_at=NOW + 50),
        a_run(workflow_id, run_id="early", due_at=NOW + 10),
        a_run(workflow_id, run_id="never", due_at=None, status=RunStatus.RUNNING)]))
    assert await store.read(lambda tx: tx.runs.due(NOW + 100, 10)) == [
        (NOW + 10, "early"), (NOW + 50, "late")]
    assert await store.write(lambda tx: tx.runs.recover_running(NOW + 60)) == 1
    assert (NOW + 60, "never") in await store.read(lambda tx: tx.runs.due(NOW + 100, 10))


async def test_reentry_and_active_runs_are_found(store: Store):
    workflow_id = await a_workflow(store)
    done = a_run(workflow_id, run_id="run_done", status=RunStatus.COMPLETED, due_at=None)
    await store.write(lambda tx: tx.runs.insert([done]))

    def blocking(ever: bool) -> Callable[[Transaction], Any]:
        return lambda tx: tx.runs.blocking_entry("default", workflow_id, "u1", ever=ever)

    assert await store.read(blocking(False)) is None
    assert await store.read(blocking(True)) == "run_done"
    await store.write(lambda tx: tx.runs.insert([a_run(workflow_id, run_id="run_live")]))
    assert await store.read(blocking(False)) == "run_live"
    assert await store.read(lambda tx: tx.runs.active_ids(
        "default", contact_id="u1", workflow_ids=[workflow_id])) == ["run_live"]


async def test_paused_runs_are_released_oldest_first_and_resumed_once(store: Store):
    workflow_id = await a_workflow(store)
    await store.write(lambda tx: tx.runs.insert([
        a_run(workflow_id, run_id=f"run_{i}", status=RunStatus.PAUSED, due_at=None)
        for i in range(3)]))
    assert await store.write(lambda tx: tx.runs.resume("run_0", NOW)) is True
    assert await store.write(lambda tx: tx.runs.resume("run_0", NOW)) is False
    assert await store.write(lambda tx: tx.runs.release_paused(workflow_id, NOW)) == [
        "run_1", "run_2"]


async def test_the_trace_rebuilds_outputs_and_visits(store: Store):
    workflow_id = await a_workflow(store)
    run = a_run(workflow_id)
    await store.write(lambda tx: tx.runs.insert([run]))
    entries = [TraceEntry(1, "a", "set", "ok", 1, 1, NOW, NOW, output={"v": 1}),
               TraceEntry(2, "w", "wait", "waiting", 1, 1, NOW),
               TraceEntry(3, "a", "set", "ok", 1, 2, NOW, NOW, output={"v": 2})]
    for entry in entries:
        await store.write(lambda tx, e=entry: tx.runs.write_trace(run.id, e))
    ended = TraceEntry(2, "w", "wait", "ok", 1, 1, NOW, NOW + 5, outcome="waited",
                       output={"waited": True})
    await store.write(lambda tx: tx.runs.write_trace(run.id, ended, replace=True))
    outputs, visits = await store.read(lambda tx: tx.runs.step_state(run.id))
    assert outputs == {"a": {"v": 2}, "w": {"waited": True}} and visits == {"a": 2, "w": 1}
    assert [e.status for e in await store.run_trace(run.id)] == ["ok", "ok", "ok"]


async def test_an_export_counts_and_pages_a_workflows_runs_with_their_traces(store: Store):
    workflow_id = await a_workflow(store)
    other_id = await a_workflow(store, "other")
    statuses = [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.COMPLETED, RunStatus.WAITING,
                RunStatus.COMPLETED]
    runs = [a_run(workflow_id, run_id=f"run_{i}", status=status, trace_len=i)
            for i, status in enumerate(statuses)]
    await store.write(lambda tx: tx.runs.insert([*runs, a_run(other_id, run_id="run_x")]))

    def traced(tx: Transaction) -> None:
        for run in runs:
            for seq in range(1, run.trace_len + 1):
                tx.runs.write_trace(run.id, TraceEntry(seq, f"s{seq}", "set", "ok", 1, 1, NOW,
                                                       NOW + 1, output={"seq": seq}))

    await store.write(traced)

    async def export(statuses: list[str] | None = None, run_id: str | None = None,
                     limit: int = 2, max_steps: int = 1000, trace_limit: int = 20_000
                     ) -> tuple[int, list[tuple[str, list[int]]]]:
        scope = dict(statuses=statuses, run_id=run_id)
        count, before = await store.read(lambda tx: tx.runs.export_bounds(
            "default", workflow_id, **scope))
        listed: list[tuple[str, list[int]]] = []
        while before is not None:
            page = await store.read(lambda tx, b=before: tx.runs.export_page(
                "default", workflow_id, **scope, before=b, limit=limit, max_steps=max_steps,
                trace_limit=trace_limit))
            assert page.items   # a page never comes back empty while runs remain
            listed += [(run.id, [e.seq for e in trace]) for run, trace in page.items]
            before = page.next_before
        return count, listed

    everything = [(f"run_{i}", list(range(1, i + 1))) for i in (4, 3, 2, 1, 0)]
    assert await export() == (5, everything)   # newest first, traces oldest first
    assert await export(limit=100) == (5, everything)
    # A page ends after the run that brings its steps to max_steps (and holds one run at least).
    page = await store.read(lambda tx: tx.runs.export_page(
        "default", workflow_id, statuses=None, run_id=None, before=2**62, limit=100,
        max_steps=5))
    assert [run.id for run, _ in page.items] == ["run_4", "run_3"]
    assert await export(max_steps=1) == (5, everything)
    # Traces are cut as trace() cuts them.
    assert (await export(trace_limit=2))[1][0] == ("run_4", [1, 2])
    assert await store.read(lambda tx: tx.runs.trace("run_4", 2)) == [
        trace for run, trace in page.items if run.id == "run_4"][0][:2]
    assert await export(["completed"]) == (3, [everything[i] for i in (0, 2, 4)])
    assert await export(["failed", "waiting"]) == (2, [everything[1], everything[3]])
    assert await export(["cancelled"]) == (0, [])
    assert await export(run_id="run_2") == (1, [everything[2]])
    assert await export(["failed"], run_id="run_2") == (0, [])
    assert await export(run_id="run_x") == (0, [])   # another workflow's run
    # The bound is the newest run when counting: runs created later are never listed.
    count, before = await store.read(lambda tx: tx.runs.export_bounds(
        "default", workflow_id, statuses=None, run_id=None))
    await store.write(lambda tx: tx.runs.insert([a_run(workflow_id, run_id="run_late")]))
    page = await store.read(lambda tx: tx.runs.export_page(
        "default", workflow_id, statuses=None, run_id=None, before=before, limit=100,
        max_steps=1000))
    assert count == 5 and [run.id for run, _ in page.items] == [f"run_{i}" for i in (4, 3, 2, 1, 0)]
    assert await store.read(lambda tx: tx.runs.export_bounds(
        "other-project", workflow_id, statuses=None, run_id=None)) == (0, None)


# ------------------------------------------------------------------ workflows

async def test_a_changed_definition_is_a_new_version_and_names_are_searched_literally(
        store: Store):
    workflow_id = await a_workflow(store, name="100% off_sale")
    await a_workflow(store, name="1000 offXsale")
    current = await store.get_workflow("default", workflow_id)
    assert current is not None
    same = await store.write(lambda tx: tx.workflows.update(
        current, name="100% off_sale", description="d", definition=current.definition,
        issues=[], now=NOW + 1))
    assert same.version == 1
    changed = await store.write(lambda tx: tx.workflows.update(
        same, name=same.name, description="d", definition={**same.definition, "steps": [
            {"id": "a", "type": "exit"}]}, issues=[{"code": "x"}], now=NOW + 2))
    assert changed.version == 2
    assert [v.version for v in await store.workflow_versions(workflow_id)] == [2, 1]
    old = await store.workflow_version(workflow_id, 1)
    assert old is not None and old.definition["steps"] == []
    found = await store.list_workflows("default", status=None, name="% off_", before=None,
                                       limit=10)
    assert [w.id for w in found.items] == [workflow_id]
    await store.write(lambda tx: tx.workflows.set_status(workflow_id, WorkflowStatus.ARCHIVED,
                                                         NOW + 3))
    listed = await store.list_workflows("default", status=None, name=None, before=None, limit=10)
    assert workflow_id not in [w.id for w in listed.items]   # archived: only when asked


async def test_a_workflow_is_found_by_id_alone_and_its_hook_generation_only_goes_up(
        store: Store):
    workflow_id = await a_workflow(store)
    found = await store.read(lambda tx: tx.workflows.find(workflow_id))
    assert found is not None and found.project_id == "default" and found.hook_generation == 1
    await store.write(lambda tx: tx.workflows.rotate_hook(workflow_id, NOW + 5))
    rotated = await store.get_workflow("default", workflow_id)
    assert rotated is not None and rotated.hook_generation == 2 and rotated.updated_at == NOW + 5
    # A new version keeps the generation: the URL is not part of the definition.
    changed = await store.write(lambda tx: tx.workflows.update(
        rotated, name="n", description="", definition={**rotated.definition, "steps": [
            {"id": "a", "type": "exit"}]}, issues=[], now=NOW + 6))
    assert changed.version == 2 and changed.hook_generation == 2
    assert await store.read(lambda tx: tx.workflows.find("wf_none")) is None


async def test_deleting_a_workflow_takes_its_runs_with_it(store: Store):
    workflow_id = await a_workflow(store)
    await store.write(lambda tx: tx.runs.insert([a_run(workflow_id)]))
    await store.write(lambda tx: tx.workflows.delete(workflow_id))
    assert await store.get_run("default", "run_1") is None
    assert await store.status_counts("default") == {
        "workflows": {s.value: 0 for s in WorkflowStatus},
        "runs": {s.value: 0 for s in RunStatus}}


# ------------------------------------------------------------------ secrets

async def test_a_rotated_secret_stays_valid_for_its_grace_period(store: Store):
    secrets = iter(["whsec_one", "whsec_two"])
    first = await store.write(lambda tx: tx.secrets.current("default", NOW, lambda: next(secrets)))
    again = await store.write(lambda tx: tx.secrets.current("default", NOW, lambda: "unused"))
    assert first == again == "whsec_one"
    second = await store.write(lambda tx: tx.secrets.rotate("default", NOW + 1, 100,
                                                            lambda: next(secrets)))
    assert second == "whsec_two"
    assert await store.read(lambda tx: tx.secrets.valid("default", NOW + 50)) == [
        "whsec_two", "whsec_one"]
    assert await store.read(lambda tx: tx.secrets.valid("default", NOW + 101)) == ["whsec_two"]


async def test_every_project_gets_a_secret_and_a_current_one_is_kept(store: Store):
    await store.write(lambda tx: tx.keys.ensure_project("p2", NOW))
    await store.write(lambda tx: tx.secrets.current("p2", NOW, lambda: "whsec_kept"))
    made = iter(["whsec_new"])
    await store.write(lambda tx: tx.secrets.ensure_every_project(NOW, lambda: next(made)))
    assert await store.read(lambda tx: tx.secrets.valid("default", NOW)) == ["whsec_new"]
    assert await store.read(lambda tx: tx.secrets.valid("p2", NOW)) == ["whsec_kept"]


async def test_a_projects_ai_settings_are_replaced_whole_and_forgotten(store: Store):
    from flowd.store.records import AiProjectSettings

    await store.write(lambda tx: tx.keys.ensure_project("p2", NOW))
    assert await store.read(lambda tx: tx.secrets.ai_settings("default")) is None
    first = AiProjectSettings("default", "openai", "", "gpt-4o-mini", "sk-one-key", NOW)
    second = AiProjectSettings("default", "", "https://llm.example", "", "sk-two-key", NOW + 1)
    await store.write(lambda tx: tx.secrets.set_ai_settings(first))
    await store.write(lambda tx: tx.secrets.set_ai_settings(second))
    assert await store.read(lambda tx: tx.secrets.ai_settings("default")) == second
    assert await store.read(lambda tx: tx.secrets.ai_settings("p2")) is None
    assert "sk-two-key" not in repr(second)   # no log line can show it
    assert await store.write(lambda tx: tx.secrets.delete_ai_settings("default")) is True
    assert await store.write(lambda tx: tx.secrets.delete_ai_settings("default")) is False
    assert await store.read(lambda tx: tx.secrets.ai_settings("default")) is None


async def test_templates_by_id_or_name_unique_names_and_pages(store: Store):
    from flowd.store.records import NameTaken

    made = [await write(store, lambda tx, n=n: tx.templates.create(
        project_id="default", name=n, channel="sms" if n == "b" else "email",
        content={"subject": n, "text": "t"}, now=NOW + i)) for i, n in enumerate("abc")]
    a = made[0]
    assert (await store.read(lambda tx: tx.templates.get("default", a.id))) == a
    assert (await store.read(lambda tx: tx.templates.get("default", "a"))) == a
    assert await store.read(lambda tx: tx.templates.get("other", "a")) is None
    with pytest.raises(NameTaken):
        await write(store, lambda tx: tx.templates.create(
            project_id="default", name="a", channel="email", content={}, now=NOW))
    with pytest.raises(NameTaken):
        await write(store, lambda tx: tx.templates.update(a, name="b", content={}, now=NOW))
    renamed = await write(store, lambda tx: tx.templates.update(
        a, name="z", content={"subject": "new"}, now=NOW + 9))
    assert (renamed.name, renamed.content, renamed.updated_at) == ("z", {"subject": "new"}, NOW + 9)
    assert await store.read(lambda tx: tx.templates.names("default")) == {
        made[0].id: "z", made[1].id: "b", made[2].id: "c"}
    page = await store.read(lambda tx: tx.templates.page("default", channel=None, before=None,
                                                         limit=2))
    assert [t.name for t in page.items] == ["c", "b"] and page.next_before is not None
    rest = await store.read(lambda tx: tx.templates.page("default", channel=None,
                                                         before=page.next_before, limit=2))
    assert [t.name for t in rest.items] == ["z"] and rest.next_before is None
    sms = await store.read(lambda tx: tx.templates.page("default", channel="sms", before=None,
                                                        limit=10))
    assert [t.name for t in sms.items] == ["b"]
    await write(store, lambda tx: tx.templates.delete(a.id))
    assert await store.read(lambda tx: tx.templates.get("default", "z")) is None


def a_message(message_id: str, **fields: Any) -> Any:
    from flowd.store.records import Message, MessageStatus

    values: dict[str, Any] = {
        "id": message_id, "project_id": "default", "channel": "email",
        "status": MessageStatus.SENDING, "recipients": ["a@example.com"], "subject": "S",
        "body": "B", "content": {"html": "<p>B</p>", "links": ["https://x.example"]},
        "created_at": NOW, "contact_id": "u1"}
    values.update(fields)
    return Message(**values)


async def test_messages_are_recorded_finished_filtered_and_unsent_ones_found(store: Store):
    from flowd.store.records import MessageStatus

    await write(store, lambda tx: [tx.messages.insert(m) for m in (
        a_message("msg_1", run_id="run_1"), a_message("msg_2"), a_message("msg_3"),
        a_message("msg_4", contact_id="u2", channel="sms"))])
    first = await store.read(lambda tx: tx.messages.get("default", "msg_1"))
    assert first == a_message("msg_1", run_id="run_1")
    assert await store.read(lambda tx: tx.messages.get("other", "msg_1")) is None
    assert (await store.read(lambda tx: tx.messages.get(None, "msg_1"))) == first

    first.status, first.provider_message_id, first.sent_at = MessageStatus.SENT, "Q1", NOW + 5
    first.error = {"code": "partly_bounced", "message": "x"}
    await write(store, lambda tx: tx.messages.finish(first))
    assert await store.read(lambda tx: tx.messages.get("default", "msg_1")) == first

    async def ids(**filters: Any) -> list[str]:
        page = await store.read(lambda tx: tx.messages.page(
            "default", **{"contact_id": None, "channel": None, "status": None, "run_id": None,
                          **filters}, before=None, limit=10))
        return [m.id for m in page.items]
    assert await ids() == ["msg_4", "msg_3", "msg_2", "msg_1"]
    assert await ids(contact_id="u2") == ["msg_4"]
    assert await ids(channel="email", status="sent") == ["msg_1"]
    assert await ids(run_id="run_1") == ["msg_1"]

    # Unsent: transactional (no run) and still sending, oldest first, in pages.
    batch, after = await store.read(lambda tx: tx.messages.unsent(0, 2))
    assert [m.id for m in batch] == ["msg_2", "msg_3"]
    batch, after = await store.read(lambda tx: tx.messages.unsent(after, 2))
    assert [m.id for m in batch] == ["msg_4"]
    assert (await store.read(lambda tx: tx.messages.unsent(after, 2)))[0] == []


async def test_recent_sends_count_a_contacts_sent_and_sending_journey_messages(store: Store):
    from flowd.store.records import MessageStatus

    def sent(message_id: str, at: int, **fields: Any) -> Any:
        return a_message(message_id, **{"created_at": at, "run_id": "run_1",
                                        "status": MessageStatus.SENT, **fields})
    await write(store, lambda tx: [tx.messages.insert(m) for m in (
        sent("msg_a", NOW - 500), sent("msg_b", NOW - 400, status=MessageStatus.SENDING),
        sent("msg_c", NOW - 300, status=MessageStatus.SUPPRESSED),
        sent("msg_d", NOW - 200, status=MessageStatus.FAILED),
        sent("msg_e", NOW - 100, status=MessageStatus.BOUNCED),
        sent("msg_f", NOW - 50, run_id=None),                       # transactional
        sent("msg_g", NOW - 40, channel="sms"), sent("msg_h", NOW - 30, contact_id="u2"),
        # One push step to two devices: one send.
        sent("msg_p_1", NOW - 20), sent("msg_p_2", NOW - 20),
        sent("msg_old", NOW - 1000))])

    async def times(after: int = NOW - 900, limit: int = 10, **kw: Any) -> list[int]:
        return await store.read(lambda tx: tx.messages.recent_sends(
            "default", "u1", "email", after, limit, **kw))
    assert await times() == [NOW - 20, NOW - 400, NOW - 500]
    assert await times(limit=2) == [NOW - 20, NOW - 400]
    assert await times(after=NOW - 400) == [NOW - 20]             # after is exclusive
    assert await times(excluding="msg_p") == [NOW - 400, NOW - 500]   # its own, per device
    assert await times(excluding="msg_b") == [NOW - 20, NOW - 500]
    assert await store.read(lambda tx: tx.messages.recent_sends(
        "other", "u1", "email", 0, 10)) == []


async def test_bounces_and_unsubscribe_tokens(store: Store):
    assert await store.read(lambda tx: tx.messages.bounced("default", "a@example.com")) is None
    await write(store, lambda tx: tx.messages.bounce("default", "A@Example.com", "550 gone",
                                                     "msg_1", NOW))
    assert await store.read(lambda tx: tx.messages.bounced("default", "a@example.COM")) == "550 gone"
    assert await store.read(lambda tx: tx.messages.bounced("other", "a@example.com")) is None

    for _ in range(2):   # remembering the same token twice is fine
        await write(store, lambda tx: tx.messages.remember_unsubscribe_token(
            "hash1", "default", "u1", "email"))
    assert await store.read(lambda tx: tx.messages.unsubscribe_token("hash1")) == (
        "default", "u1", "email")
    assert await store.read(lambda tx: tx.messages.unsubscribe_token("hash2")) is None


async def test_a_server_key_is_made_once_and_kept(store: Store):
    made = await write(store, lambda tx: tx.secrets.server_key("links", NOW, lambda: b"k" * 32))
    again = await write(store, lambda tx: tx.secrets.server_key("links", NOW, lambda: b"x" * 32))
    assert made == again == b"k" * 32


async def test_running_workflows_and_refreshed_issues(store: Store):
    active = await a_workflow(store, "on")
    draft = await store.write(lambda tx: tx.workflows.create(
        project_id="default", name="off", description="", status=WorkflowStatus.DRAFT,
        definition={"trigger": {"type": "manual"}, "settings": {}, "steps": []}, issues=[],
        now=NOW))
    assert [w.id for w in await store.read(lambda tx: tx.workflows.running("default"))] == [active]
    issue = {"severity": "error", "code": "unknown_template", "step_id": "s1", "message": "m"}
    await write(store, lambda tx: tx.workflows.set_issues(draft.id, 1, [issue]))
    workflow = await store.read(lambda tx: tx.workflows.get("default", draft.id))
    assert workflow.issues == [issue]


def a_bulk_job(workflow_id: str, job_id: str, total: int,
               status: BulkJobStatus = BulkJobStatus.RUNNING) -> BulkJob:
    return BulkJob(id=job_id, project_id="default", workflow_id=workflow_id, status=status,
                   source=BulkSource.CONTACT_IDS, source_ref=None, payload={"x": 1},
                   require_approval=status is BulkJobStatus.APPROVAL, total=total,
                   created_at=NOW, updated_at=NOW)


async def test_a_bulk_job_keeps_its_list_in_order_and_moves_only_from_its_cursor(store: Store):
    workflow_id = await a_workflow(store)
    ids = [f"c{i}" for i in range(25_003)]   # more than one chunk of the list's writes
    await write(store, lambda tx: tx.bulk_jobs.create(a_bulk_job(workflow_id, "job_1", len(ids)),
                                                      iter(ids)))
    listed = await store.read(lambda tx: tx.bulk_jobs.listed_contacts("job_1", 9_998, 5))
    assert listed == [(9_999, "c9998"), (10_000, "c9999"), (10_001, "c10000"),
                      (10_002, "c10001"), (10_003, "c10002")]
    assert await store.read(lambda tx: tx.bulk_jobs.listed_contacts("job_1", 25_002, 5)) == [
        (25_003, "c25002")]
    assert await store.read(lambda tx: tx.bulk_jobs.running_ids(10)) == ["job_1"]

    def advance(cursor_from: int, cursor_to: int, finished: bool = False) -> Any:
        return lambda tx: tx.bulk_jobs.advance("job_1", cursor_from=cursor_from,
                                               cursor_to=cursor_to, started=3, skipped=2,
                                               now=NOW + 1, finished=finished)
    assert await write(store, advance(0, 5))
    assert not await write(store, advance(0, 5))   # a second mover finds the cursor moved
    assert await write(store, advance(5, 25_003, finished=True))
    job = await store.read(lambda tx: tx.bulk_jobs.get("default", "job_1"))
    assert (job.status, job.cursor, job.started, job.skipped) == (
        BulkJobStatus.FINISHED, 25_003, 6, 4)
    assert job.finished_at == NOW + 1 and job.payload == {"x": 1}
    assert await store.read(lambda tx: tx.bulk_jobs.get("other", "job_1")) is None
    assert not await write(store, advance(25_003, 25_003))   # only a running job moves


async def test_bulk_job_status_changes_are_conditional_and_go_with_the_workflow(store: Store):
    workflow_id = await a_workflow(store)
    for job_id in ("job_a", "job_b"):
        await write(store, lambda tx, job_id=job_id: tx.bulk_jobs.create(
            a_bulk_job(workflow_id, job_id, 1, BulkJobStatus.APPROVAL), ["u1"]))

    def to(status: BulkJobStatus, *expect: BulkJobStatus, **kw: Any) -> Any:
        return lambda tx: tx.bulk_jobs.set_status("job_a", status, NOW + 5, expect=expect, **kw)
    assert not await write(store, to(BulkJobStatus.CANCELLED, BulkJobStatus.RUNNING))
    assert await write(store, to(BulkJobStatus.RUNNING, BulkJobStatus.APPROVAL))
    assert not await write(store, to(BulkJobStatus.RUNNING, BulkJobStatus.APPROVAL))
    assert await write(store, to(BulkJobStatus.FAILED, BulkJobStatus.RUNNING,
                                 error={"code": "c", "message": "m"}))
    job = await store.read(lambda tx: tx.bulk_jobs.get(None, "job_a"))
    assert (job.status, job.error, job.finished_at) == (
        BulkJobStatus.FAILED, {"code": "c", "message": "m"}, NOW + 5)
    page = await store.read(lambda tx: tx.bulk_jobs.page("default", workflow_id=workflow_id,
                                                         before=None, limit=1))
    assert [j.id for j in page.items] == ["job_b"] and page.next_before is not None
    await write(store, lambda tx: tx.workflows.delete(workflow_id))
    assert await store.read(lambda tx: tx.bulk_jobs.get(None, "job_b")) is None
    assert await store.read(lambda tx: tx.bulk_jobs.listed_contacts("job_b", 0, 10)) == []


# -- orchestration: approvals, child runs ------------------------------------------------------

def an_approval(run_id: str, workflow_id: str, *, expires_at: int = NOW + 1000) -> Approval:
    return Approval("apv_1", "default", run_id, workflow_id, "ask", "u1", "ok?", ["a@x.test"],
                    NOW, expires_at)


async def test_an_approval_is_opened_once_found_by_token_hash_and_decided_once(store: Store):
    workflow_id = await a_workflow(store)
    run = a_run(workflow_id, status=RunStatus.WAITING, due_at=NOW + 1000,
                wait=Wait(WaitKind.APPROVAL, until=NOW + 1000, ref="apv_1"))
    await write(store, lambda tx: tx.runs.insert([run]))
    tokens = {"h-approver": "a@x.test", "h-link": None}
    await write(store, lambda tx: tx.approvals.open(an_approval(run.id, workflow_id), tokens))
    # Opened again (a step re-run after a crash): nothing changes, no duplicate token rows.
    await write(store, lambda tx: tx.approvals.open(an_approval(run.id, workflow_id), tokens))
    found = await store.read(lambda tx: tx.approvals.by_token("h-approver"))
    assert found is not None and found[0].id == "apv_1" and found[1] == "a@x.test"
    assert (await store.read(lambda tx: tx.approvals.by_token("h-link")))[1] is None
    assert await store.read(lambda tx: tx.approvals.by_token("nope")) is None
    assert await write(store, lambda tx: tx.approvals.decide("apv_1", "approved", "fine",
                                                             "a@x.test", NOW + 1))
    assert not await write(store, lambda tx: tx.approvals.decide("apv_1", "rejected", None,
                                                                 "b@x.test", NOW + 2))
    decided = await store.read(lambda tx: tx.approvals.get("apv_1"))
    assert (decided.decision, decided.comment, decided.decided_by, decided.decided_at) == (
        "approved", "fine", "a@x.test", NOW + 1)
    assert decided.status(NOW + 5000) == "approved"


async def test_an_expired_approval_cannot_be_decided(store: Store):
    workflow_id = await a_workflow(store)
    await write(store, lambda tx: tx.runs.insert([a_run(workflow_id)]))
    await write(store, lambda tx: tx.approvals.open(an_approval("run_1", workflow_id), {}))
    assert not await write(store, lambda tx: tx.approvals.decide("apv_1", "approved", None,
                                                                 "x", NOW + 1000))
    assert (await store.read(lambda tx: tx.approvals.get("apv_1"))).status(NOW + 1000) == "expired"


async def test_wake_for_wakes_only_a_run_waiting_for_that_very_thing(store: Store):
    workflow_id = await a_workflow(store)
    parent = a_run(workflow_id, run_id="run_p", status=RunStatus.WAITING, due_at=None,
                   wait=Wait(WaitKind.CHILD, until=None, ref="run_c"))
    child = a_run(workflow_id, run_id="run_c", parent_run_id="run_p")
    other = a_run(workflow_id, run_id="run_o", parent_run_id="run_p")
    await write(store, lambda tx: tx.runs.insert([parent, child, other]))
    wake = Wake(WakeReason.CHILD, data={"run_id": "run_o"})
    assert not await write(store, lambda tx: tx.runs.wake_for("run_p", WaitKind.CHILD, "run_o",
                                                              wake, NOW))
    assert not await write(store, lambda tx: tx.runs.wake_for("run_p", WaitKind.APPROVAL,
                                                              "run_c", wake, NOW))
    assert await write(store, lambda tx: tx.runs.wake_for("run_p", WaitKind.CHILD, "run_c",
                                                          wake, NOW + 1))
    woken = await store.get_run("default", "run_p")
    assert woken.status is RunStatus.PENDING and woken.due_at == NOW + 1 and woken.wake == wake
    # Woken once: a second wake (the same child reported twice) changes nothing.
    assert not await write(store, lambda tx: tx.runs.wake_for("run_p", WaitKind.CHILD, "run_c",
                                                              wake, NOW + 2))
    children = await store.read(lambda tx: tx.runs.children("run_p"))
    assert [c.id for c in children] == ["run_c", "run_o"]
    await write(store, lambda tx: tx.runs.end(
        _ended(children[0]), expect=ACTIVE_STATUSES))
    active = await store.read(lambda tx: tx.runs.children("run_p", active_only=True))
    assert [c.id for c in active] == ["run_o"]


def _ended(run: Run) -> Run:
    run.status, run.completed_at, run.due_at = RunStatus.COMPLETED, NOW, None
    return run


HOUR = 3_600_000


def an_alert(delivery_id: str, subscription_id: str, *, due: int = NOW) -> AlertDelivery:
    return AlertDelivery(id=delivery_id, subscription_id=subscription_id, project_id="default",
                         event_type="run.failed", body='{"type":"run.failed"}',
                         status=DeliveryStatus.PENDING, created_at=NOW, next_attempt_at=due)


async def test_alert_deliveries_go_out_once_and_go_with_their_subscription(store: Store):
    for sid, events in (("whk_a", ["run.failed"]), ("whk_b", ["message.bounced"])):
        await write(store, lambda tx, sid=sid, events=events: tx.alerts.create(
            AlertSubscription(sid, "default", "https://example.com/", events, "whsec_x", NOW)))
    interested = await store.read(lambda tx: tx.alerts.interested("default", "run.failed"))
    assert [s.id for s in interested] == ["whk_a"]
    await write(store, lambda tx: tx.alerts.enqueue([an_alert("dlv_1", "whk_a"),
                                                     an_alert("dlv_2", "whk_b", due=NOW + 5)]))
    due = await store.read(lambda tx: tx.alerts.due(NOW, 10))
    assert [(d.delivery.id, d.url, d.secret) for d in due] == [
        ("dlv_1", "https://example.com/", "whsec_x")]
    assert await store.read(lambda tx: tx.alerts.next_due()) == NOW

    delivered = due[0].delivery
    delivered.status, delivered.attempts, delivered.delivered_at = (
        DeliveryStatus.DELIVERED, 1, NOW)
    delivered.next_attempt_at = None
    assert await write(store, lambda tx: tx.alerts.record_attempt(delivered))
    # A delivered one is never taken again, and no later outcome overwrites it.
    later = await store.read(lambda tx: tx.alerts.due(NOW + HOUR, 10))
    assert [d.delivery.id for d in later] == ["dlv_2"]
    delivered.status = DeliveryStatus.FAILED
    assert not await write(store, lambda tx: tx.alerts.record_attempt(delivered))

    assert await write(store, lambda tx: tx.alerts.delete("default", "whk_b"))
    assert await store.read(lambda tx: tx.alerts.due(NOW + HOUR, 10)) == []
    assert await store.read(lambda tx: tx.alerts.next_due()) is None
    page = await store.read(lambda tx: tx.alerts.deliveries("whk_a", before=None, limit=10))
    assert [(d.id, d.status) for d in page.items] == [("dlv_1", DeliveryStatus.DELIVERED)]


async def test_a_workflow_is_marked_failing_at_most_once_an_hour(store: Store):
    workflow_id = await a_workflow(store)
    mark = lambda now: write(store, lambda tx: tx.alerts.mark_failing(  # noqa: E731
        workflow_id, now, quiet_since=now - HOUR))
    assert await mark(NOW)
    assert not await mark(NOW + HOUR - 1)
    assert await mark(NOW + HOUR + 1)


async def test_recent_ends_counts_the_workflows_ended_runs_in_the_window(store: Store):
    workflow_id = await a_workflow(store)
    ended = [(RunStatus.FAILED, NOW - 2 * HOUR), (RunStatus.FAILED, NOW - 10),
             (RunStatus.COMPLETED, NOW - 5), (RunStatus.CANCELLED, NOW)]
    runs = [a_run(workflow_id, run_id=f"run_{i}", status=status, due_at=None,
                  completed_at=at) for i, (status, at) in enumerate(ended)]
    runs.append(a_run(workflow_id, run_id="run_active"))
    await write(store, lambda tx: tx.runs.insert(runs))
    assert await store.read(lambda tx: tx.alerts.recent_ends(workflow_id, NOW - HOUR, 100)) \
        == (3, 1)
    # Only the latest `limit` ends are read.
    assert await store.read(lambda tx: tx.alerts.recent_ends(workflow_id, NOW - HOUR, 2)) \
        == (2, 0)
async def test_a_versions_funnel_counts_runs_entries_and_branches(store: Store):
    workflow_id = await a_workflow(store)
    other = a_run(workflow_id, run_id="run_c", status=RunStatus.FAILED, due_at=None)
    other.workflow_version = 2      # another version's run counts only in the workflow's totals
    runs = [a_run(workflow_id, run_id="run_a", status=RunStatus.COMPLETED, due_at=None),
            a_run(workflow_id, run_id="run_b", status=RunStatus.WAITING, due_at=None), other]
    runs[1].current_step_id = "w"
    await store.write(lambda tx: tx.runs.insert(runs))
    traces = {"run_a": [TraceEntry(1, "c", "condition", "ok", 1, 1, NOW, NOW, branch="yes"),
                        TraceEntry(2, "h", "http_request", "failed", 1, 1, NOW, NOW),
                        TraceEntry(3, "h", "http_request", "failed", 2, 1, NOW, NOW,
                                   branch="error"),
                        TraceEntry(4, "c", "condition", "ok", 1, 2, NOW, NOW, branch="no")],
              "run_b": [TraceEntry(1, "c", "condition", "ok", 1, 1, NOW, NOW, branch="no"),
                        TraceEntry(2, "w", "wait", "waiting", 1, 1, NOW)],
              "run_c": [TraceEntry(1, "c", "condition", "ok", 1, 1, NOW, NOW)]}
    for run_id, entries in traces.items():
        for entry in entries:
            await store.write(lambda tx, r=run_id, e=entry: tx.runs.write_trace(r, e))
    counts = await store.read(lambda tx: tx.runs.step_counts(workflow_id, 1))
    assert counts.entered == {"c": 2, "h": 1, "w": 1}
    assert counts.waiting == {"w": 1}
    assert counts.branches == {"c": {"yes": 1, "no": 2}, "h": {"error": 1}}
    assert counts.version_runs["completed"] == 1 and counts.version_runs["failed"] == 0
    assert counts.workflow_runs["failed"] == 1 and counts.workflow_runs["waiting"] == 1
    assert set(counts.workflow_runs) == {s.value for s in RunStatus}


async def test_moving_waiting_runs_takes_chunks_of_mapped_steps_only(store: Store):
    workflow_id = await a_workflow(store)
    runs = []
    for n, step in enumerate(("w", "w", "w", "x")):
        run = a_run(workflow_id, run_id=f"run_{n}", status=RunStatus.WAITING, due_at=NOW + 99)
        run.current_step_id = step
        runs.append(run)
    paused = a_run(workflow_id, run_id="run_p", status=RunStatus.PAUSED)
    paused.current_step_id = "w"
    await store.write(lambda tx: tx.runs.insert([*runs, paused]))
    await store.write(lambda tx: tx.runs.write_trace(
        "run_0", TraceEntry(1, "w", "wait", "waiting", 1, 1, NOW)))
    assert await store.read(lambda tx: tx.runs.waiting_at(workflow_id, 1)) == {"w": 3, "x": 1}

    def move(tx: Transaction) -> int:
        return tx.runs.move_waiting(workflow_id, 1, 2, {"w": "w2"}, 2, NOW + 1)
    assert [await store.write(move) for _ in range(3)] == [2, 1, 0]
    assert await store.read(lambda tx: tx.runs.waiting_at(workflow_id, 1)) == {"x": 1}
    assert await store.read(lambda tx: tx.runs.waiting_at(workflow_id, 2)) == {"w2": 3}
    moved = await store.get_run("default", "run_0")
    assert (moved.workflow_version, moved.current_step_id, moved.due_at) == (2, "w2", NOW + 99)
    assert moved.updated_at == NOW + 1
    assert [e.step_id for e in await store.run_trace("run_0")] == ["w2"]
    held = await store.get_run("default", "run_p")
    assert (held.workflow_version, held.current_step_id) == (1, "w")
async def test_every_workflow_and_template_of_a_project_oldest_first(store: Store):
    """A bundle's export and import read a whole project: archived workflows included, other
    projects' never."""
    first, second = await a_workflow(store, "b"), await a_workflow(store, "a")
    await write(store, lambda tx: tx.workflows.set_status(second, WorkflowStatus.ARCHIVED, NOW))
    every = await store.read(lambda tx: tx.workflows.every("default", 100))
    assert [(w.id, w.name) for w in every] == [(first, "b"), (second, "a")]
    assert every[1].status is WorkflowStatus.ARCHIVED and every[0].definition["steps"] == []
    assert await store.read(lambda tx: tx.workflows.every("other", 100)) == []
    made = [await write(store, lambda tx, n=n: tx.templates.create(
        project_id="default", name=n, channel="email", content={"subject": n}, now=NOW))
        for n in ("y", "x")]
    assert await store.read(lambda tx: tx.templates.every("default", 100)) == made
    assert await store.read(lambda tx: tx.templates.every("other", 100)) == []


async def test_audiences_by_id_or_name_unique_names_pages_and_every(store: Store):
    from flowd.store.records import NameTaken

    made = [await write(store, lambda tx, n=n: tx.audiences.create(
        project_id="default", name=n, description=f"about {n}",
        filter={"field": "contact.traits.plan", "op": "eq", "value": n}, now=NOW + i))
        for i, n in enumerate("abc")]
    a = made[0]
    assert a.id.startswith("aud_")
    assert await store.read(lambda tx: tx.audiences.get("default", a.id)) == a
    assert await store.read(lambda tx: tx.audiences.get("default", "a")) == a
    assert await store.read(lambda tx: tx.audiences.get("other", "a")) is None
    with pytest.raises(NameTaken):
        await write(store, lambda tx: tx.audiences.create(
            project_id="default", name="a", description="", filter={}, now=NOW))
    with pytest.raises(NameTaken):
        await write(store, lambda tx: tx.audiences.update(a, name="b", description="",
                                                          filter={}, now=NOW))
    renamed = await write(store, lambda tx: tx.audiences.update(
        a, name="z", description="", filter={"all": []}, now=NOW + 9))
    assert (renamed.name, renamed.filter, renamed.updated_at) == ("z", {"all": []}, NOW + 9)
    assert await store.read(lambda tx: tx.audiences.get("default", a.id)) == renamed
    assert await store.read(lambda tx: tx.audiences.names("default")) == {
        made[0].id: "z", made[1].id: "b", made[2].id: "c"}
    page = await store.read(lambda tx: tx.audiences.page("default", before=None, limit=2))
    assert [x.name for x in page.items] == ["c", "b"] and page.next_before is not None
    rest = await store.read(lambda tx: tx.audiences.page("default", before=page.next_before,
                                                         limit=2))
    assert [x.name for x in rest.items] == ["z"] and rest.next_before is None
    assert [x.name for x in await store.read(lambda tx: tx.audiences.every("default", 10))] \
        == ["z", "b", "c"]
    await write(store, lambda tx: tx.audiences.delete(a.id))
    assert await store.read(lambda tx: tx.audiences.get("default", "z")) is None


async def test_an_audience_is_evaluated_over_the_contacts_as_they_are(store: Store):
    """count, members (newest first, paged), member_ids (oldest first, one more than asked)
    and contains agree; Python decides only the rows SQL leaves undecided, and at most
    max_python of them."""
    from flowd.audiences import compile_filter
    from flowd.store.records import AudienceTooCostly

    def seed(tx: Transaction) -> None:
        for i in range(7):
            tx.contacts.upsert("default", f"u{i}", {"traits": {
                "plan": "pro" if i % 2 else "free", "name": "Élise" if i == 3 else "ann"}},
                NOW + i)
        tx.keys.ensure_project("other", NOW)
        tx.contacts.upsert("other", "u1", {"traits": {"plan": "pro"}}, NOW)
    await write(store, seed)
    pros = compile_filter({"field": "contact.traits.plan", "op": "eq", "value": "pro"}).query(NOW)
    assert await store.read(lambda tx: tx.audiences.count("default", pros, max_python=0)) == 3
    first = await store.read(lambda tx: tx.audiences.members("default", pros, before=None,
                                                             limit=2, max_python=0))
    assert [c.id for c in first.items] == ["u5", "u3"] and first.next_before is not None
    rest = await store.read(lambda tx: tx.audiences.members(
        "default", pros, before=first.next_before, limit=2, max_python=0))
    assert [c.id for c in rest.items] == ["u1"] and rest.next_before is None
    assert rest.items[0].traits == {"plan": "pro", "name": "ann"}
    assert await store.read(lambda tx: tx.audiences.member_ids(
        "default", pros, limit=2, max_python=0)) == ["u1", "u3", "u5"]
    assert [await store.read(lambda tx, c=c: tx.audiences.contains("default", pros, c))
            for c in ("u1", "u2", "nobody")] == [True, False, False]

    # Non-ASCII text is folded in Python: only u3 (a pro) reaches it.
    elise = compile_filter({"all": [
        {"field": "contact.traits.plan", "op": "eq", "value": "pro"},
        {"field": "contact.traits.name", "op": "eq_ignore_case", "value": "ÉLISE"}]}).query(NOW)
    assert await store.read(lambda tx: tx.audiences.count("default", elise, max_python=1)) == 1
    assert await store.read(lambda tx: tx.audiences.member_ids(
        "default", elise, limit=10, max_python=1)) == ["u3"]
    assert await store.read(lambda tx: tx.audiences.contains("default", elise, "u3"))
    with pytest.raises(AudienceTooCostly) as error:
        await store.read(lambda tx: tx.audiences.count("default", elise, max_python=0))
    assert (error.value.needed, error.value.parts) == (1, ("filter.all[1]",))
