"""GET /v1/workflows/{id}/stats: the funnel of a version from runs that took different
branches, run totals by status, and the version asked about."""

from __future__ import annotations

from tests.conftest import Api, eventually

FUNNEL = {
    "trigger": {"type": "manual"},
    "steps": [
        {"id": "check", "type": "condition",
         "config": {"if": {"field": "event.properties.vip", "op": "eq", "value": True}},
         "next": {"yes": "tag_vip", "no": "hold"}},
        {"id": "tag_vip", "type": "update_contact", "config": {"add_tags": ["vip"]},
         "next": None},
        {"id": "hold", "type": "wait_for_event", "config": {"event": "go", "timeout": "P1D"},
         "next": {"event": "done", "timeout": None}},
        {"id": "done", "type": "set", "config": {"vars": {"done": True}}, "next": None},
    ],
}


async def _fire(api: Api, workflow_id: str, contact_id: str, vip: bool) -> str:
    status, run = await api.post(f"/v1/workflows/{workflow_id}/runs",
                                 json={"contact_id": contact_id, "payload": {"vip": vip}})
    assert status == 201, run
    return run["id"]


async def test_the_funnel_counts_entries_waits_and_branches(api: Api):
    workflow = await api.workflow(FUNNEL)
    vip = await _fire(api, workflow["id"], "u1", True)
    waiting = [await _fire(api, workflow["id"], c, False) for c in ("u2", "u3")]
    await api.run_until(vip, "completed")
    for run_id in waiting:
        await api.run_until(run_id, "waiting")
    await api.send("go", "u2")
    await api.run_until(waiting[0], "completed")

    viewer = await api.new_key("viewer")
    status, stats = await api.get(f"/v1/workflows/{workflow['id']}/stats", key=viewer)
    assert status == 200, stats
    assert stats["version"] == 1
    by_step = {s["step_id"]: s for s in stats["steps"]}
    assert [s["step_id"] for s in stats["steps"]] == ["check", "tag_vip", "hold", "done"]
    assert by_step["check"] == {"step_id": "check", "type": "condition", "name": None,
                                "entered": 3, "waiting": 0, "branches": {"yes": 1, "no": 2}}
    assert (by_step["tag_vip"]["entered"], by_step["tag_vip"]["branches"]) == (1, {"default": 1})
    assert by_step["hold"]["entered"] == 2 and by_step["hold"]["waiting"] == 1
    assert by_step["hold"]["branches"] == {"event": 1}     # the waiting entry has not left
    assert (by_step["done"]["entered"], by_step["done"]["branches"]) == (1, {"default": 1})
    assert stats["runs"]["completed"] == 2 and stats["runs"]["waiting"] == 1
    assert stats["runs"]["failed"] == 0 and stats["version_runs"] == stats["runs"]

    # A new version: the default is now the current one, with no runs of its own yet.
    check = {**FUNNEL["steps"][0], "next": {"yes": "tag_vip", "no": None}}
    edited = {**FUNNEL, "name": "test", "steps": [check, FUNNEL["steps"][1]]}
    status, _ = await api.put(f"/v1/workflows/{workflow['id']}", json=edited)
    assert status == 200
    _, current = await api.get(f"/v1/workflows/{workflow['id']}/stats")
    assert current["version"] == 2 and [s["step_id"] for s in current["steps"]] == [
        "check", "tag_vip"]
    assert all(s["entered"] == 0 for s in current["steps"])
    assert sum(current["version_runs"].values()) == 0 and current["runs"]["completed"] == 2
    _, old = await api.get(f"/v1/workflows/{workflow['id']}/stats?version=1")
    assert old["steps"] == stats["steps"]

    status, error = await api.get(f"/v1/workflows/{workflow['id']}/stats?version=9")
    assert status == 404 and error["error"]["code"] == "not_found"
    status, _ = await api.get("/v1/workflows/wf_nope/stats")
    assert status == 404
    status, _ = await api.get(f"/v1/workflows/{workflow['id']}/stats?version=zero")
    assert status == 422


async def test_a_retried_failure_is_not_a_way_out(api: Api, sink):
    sink.status = 500
    workflow = await api.workflow({"trigger": {"type": "manual"}, "steps": [
        {"id": "call", "type": "webhook", "config": {"url": sink.url},
         "retry": {"max_attempts": 2, "backoff": "PT0.01S"}, "next": {"error": "after"}},
        {"id": "after", "type": "set", "config": {"vars": {"x": 1}}, "next": None}]})
    run_id = await _fire(api, workflow["id"], "u1", False)
    await api.run_until(run_id, "completed")

    async def stats():
        _, body = await api.get(f"/v1/workflows/{workflow['id']}/stats")
        return body if body["runs"]["completed"] == 1 else None
    body = await eventually(stats)
    call = body["steps"][0]
    assert call["entered"] == 1 and call["branches"] == {"error": 1}
