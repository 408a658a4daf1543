"""Contact events: contact changes made through the API, by an event's `contact` patch and by
`update_contact` steps are ingested as `contact.created` / `contact.updated` /
`contact.tag_added` / `contact.tag_removed` — but only while something listens for them."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, eventually

ALWAYS = {"reentry": "always"}
NOOP = [{"id": "mark", "type": "set", "config": {"vars": {"seen": True}}}]


async def listen(api: Api, name: str, *, filter: Any = None, **extra: Any) -> dict[str, Any]:
    """A workflow that starts on `name` and does nothing much: its runs show what arrived."""
    trigger: dict[str, Any] = {"type": "event", "event": name}
    if filter is not None:
        trigger["filter"] = filter
    return await api.workflow({"name": f"on {name}", "trigger": trigger, "settings": ALWAYS,
                               "steps": NOOP, **extra})


async def triggers(api: Api, workflow: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The trigger events of the workflow's runs, oldest first, once there are `count`."""
    async def runs() -> list[dict[str, Any]] | None:
        status, page = await api.get(f"/v1/runs?workflow_id={workflow['id']}&limit=100")
        assert status == 200, page
        return page["data"] if len(page["data"]) >= count else None

    found = await eventually(runs)
    assert len(found) == count, found
    return [run["trigger"]["event"] for run in reversed(found)]


async def events(api: Api, name: str) -> list[dict[str, Any]]:
    status, page = await api.get(f"/v1/events?name={name}")
    assert status == 200, page
    return list(reversed(page["data"]))


async def test_a_put_emits_created_then_updated_with_the_changed_fields(api: Api):
    created = await listen(api, "contact.created")
    updated = await listen(api, "contact.updated")
    status, _ = await api.put("/v1/contacts/u1", json={"email": "a@example.com"})
    assert status == 201
    status, _ = await api.put("/v1/contacts/u1", json={
        "email": "b@example.com", "traits": {"plan": "pro"}, "subscribed": {"sms": False}})
    assert status == 200
    # The same values again change nothing, so no event.
    await api.put("/v1/contacts/u1", json={"email": "b@example.com", "traits": {"plan": "pro"}})
    [first] = await triggers(api, created, 1)
    assert first["name"] == "contact.created" and first["contact_id"] == "u1"
    [change] = await triggers(api, updated, 1)
    assert change["properties"] == {"changed": ["email", "traits.plan", "subscribed.sms"]}
    assert [e["properties"] for e in await events(api, "contact.updated")] == [
        change["properties"]]


async def test_tags_added_and_removed_are_one_event_per_tag(api: Api):
    added = await listen(api, "contact.tag_added")
    removed = await listen(api, "contact.tag_removed")
    updated = await listen(api, "contact.updated")
    await api.put("/v1/contacts/u1", json={"tags": ["a", "b"]})       # created: a, b added
    await api.put("/v1/contacts/u1", json={"tags": ["b", "c", "d"]})  # c, d added; a removed
    assert [e["properties"]["tag"] for e in await triggers(api, added, 4)] == ["a", "b", "c", "d"]
    assert [e["properties"]["tag"] for e in await triggers(api, removed, 1)] == ["a"]
    [change] = await triggers(api, updated, 1)
    assert change["properties"]["changed"] == ["tags"]


async def test_a_tag_added_trigger_with_a_filter_on_the_tag_runs(api: Api):
    vip = await listen(api, "contact.tag_added", filter={
        "field": "event.properties.tag", "op": "eq", "value": "vip"})
    await api.put("/v1/contacts/u1", json={"tags": ["newsletter"]})
    await api.put("/v1/contacts/u2", json={"tags": ["newsletter", "vip"]})
    [event] = await triggers(api, vip, 1)
    assert event["contact_id"] == "u2" and event["properties"] == {"tag": "vip"}
    status, page = await api.get(f"/v1/runs?workflow_id={vip['id']}")
    await api.run_until(page["data"][0]["id"], "completed")


async def test_an_events_contact_patch_and_an_unknown_contact_emit_too(api: Api):
    created = await listen(api, "contact.created")
    updated = await listen(api, "contact.updated")
    await api.send("signup", "u1", contact={"email": "a@example.com"})  # created by the patch
    await api.send("visit", "u2")                                       # auto-created
    await api.send("visit", "u2")                                       # known: nothing
    await api.send("signup", "u1", contact={"email": "b@example.com", "phone": "+4915112345678"})
    assert sorted(e["contact_id"] for e in await triggers(api, created, 2)) == ["u1", "u2"]
    [change] = await triggers(api, updated, 1)
    assert change["contact_id"] == "u1"
    assert change["properties"] == {"changed": ["email", "phone"]}


async def test_an_update_contact_step_emits_one_run_deeper(api: Api):
    await api.workflow({"name": "upgrade", "trigger": {"type": "event", "event": "paid"},
                        "steps": [{"id": "up", "type": "update_contact", "config": {
                            "traits": {"plan": "{{ event.properties.plan }}"},
                            "add_tags": ["customer"], "remove_tags": ["trial"]}}]})
    updated = await listen(api, "contact.updated")
    added = await listen(api, "contact.tag_added")
    removed = await listen(api, "contact.tag_removed")
    await api.put("/v1/contacts/u1", json={"tags": ["trial"]})
    await api.send("paid", "u1", properties={"plan": "pro"})
    [change] = await triggers(api, updated, 1)
    assert change["properties"] == {"changed": ["traits.plan", "tags"]}
    assert [e["properties"] for e in await triggers(api, added, 2)] == [
        {"tag": "trial"}, {"tag": "customer"}]   # the PUT's, then the step's
    assert [e["properties"] for e in await triggers(api, removed, 1)] == [{"tag": "trial"}]
    status, page = await api.get(f"/v1/runs?workflow_id={updated['id']}")
    assert page["data"][0]["trigger"]["depth"] == 1   # started by a run's step


async def test_a_wait_for_contact_updated_resumes(api: Api):
    wf = await api.workflow({"name": "await plan", "trigger": {"type": "event", "event": "start"},
                             "steps": [{"id": "w", "type": "wait_for_event", "config": {
                                 "event": "contact.updated", "timeout": "P1D",
                                 "filter": {"field": "event.properties.changed", "op": "contains",
                                            "value": "traits.plan"}}}]})
    started = await api.send("start", "u1")
    [run_id] = started["runs_started"]
    await api.run_until(run_id, "waiting")
    await api.put("/v1/contacts/u1", json={"email": "a@example.com"})   # no plan: still waits
    assert (await api.run(run_id))["status"] == "waiting"
    await api.put("/v1/contacts/u1", json={"traits": {"plan": "pro"}})
    done = await api.run_until(run_id, "completed")
    assert done["steps"][0]["branch"] == "event"
    assert done["steps"][0]["output"]["properties"] == {"changed": ["traits.plan"]}
    assert wf["id"] == done["workflow_id"]


async def test_an_exit_rule_on_a_contact_event_ends_the_run_that_made_the_change(api: Api):
    await api.workflow({"name": "until tagged", "trigger": {"type": "event", "event": "go"},
                        "settings": {"exit_on": [{"event": "contact.tag_added"}]},
                        "steps": [{"id": "tag", "type": "update_contact",
                                   "config": {"add_tags": ["done"]}},
                                  {"id": "w", "type": "wait", "config": {"duration": "P1D"}}]})
    [run_id] = (await api.send("go", "u1"))["runs_started"]
    run = await api.run_until(run_id, "completed")
    assert run["exit_reason"] == "exit_on:contact.tag_added"
    assert [step["step_id"] for step in run["steps"]] == ["tag"]
    status, contact = await api.get("/v1/contacts/u1")
    assert contact["tags"] == ["done"]


async def test_nothing_is_emitted_while_nothing_listens(api: Api):
    await api.workflow({"name": "other", "trigger": {"type": "event", "event": "paid"},
                        "steps": [{"id": "up", "type": "update_contact",
                                   "config": {"traits": {"plan": "pro"}, "add_tags": ["x"]}}]})
    await api.put("/v1/contacts/u1", json={"email": "a@example.com", "tags": ["a"]})
    await api.put("/v1/contacts/u1", json={"tags": ["b"]})
    await api.send("visit", "u2", contact={"email": "b@example.com"})
    [run_id] = (await api.send("paid", "u3"))["runs_started"]
    await api.run_until(run_id, "completed")
    status, page = await api.get("/v1/events?limit=100")
    assert sorted(e["name"] for e in page["data"]) == ["paid", "visit"]


async def test_workflows_updating_contacts_on_contact_updated_stop_at_depth_ten(api: Api):
    # Each run changes its contact again, which is a contact.updated, which starts a run…
    await api.put("/v1/contacts/u1", json={})
    await api.workflow({"name": "ping-pong", "trigger": {"type": "event",
                                                         "event": "contact.updated"},
                        "settings": ALWAYS,
                        "steps": [{"id": "touch", "type": "update_contact",
                                   "config": {"traits": {"last_run": "{{ run.id }}"}}}]})
    await api.put("/v1/contacts/u1", json={"traits": {"plan": "pro"}})

    async def ended() -> list[dict[str, Any]] | None:
        status, page = await api.get("/v1/runs?limit=100")
        runs = page["data"]
        last = [r for r in runs if r["trigger"].get("depth") == 10]
        done = all(r["status"] == "completed" for r in runs)
        return runs if last and done else None

    runs = await eventually(ended)
    assert len(runs) == 11   # depths 0 … 10; the last one's change emits nothing
    deepest = await api.run(next(r["id"] for r in runs if r["trigger"].get("depth") == 10))
    assert deepest["steps"][0]["output"]["contact_events"] == "depth_exceeded"
    status, page = await api.get("/v1/events?name=contact.updated&limit=100")
    assert len(page["data"]) == 11
