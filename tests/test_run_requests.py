"""Run requests users of other tools expect: firing by email, what an event ended
(`runs_exited`), and a clear refusal to resume a run its paused workflow would hold again."""

from __future__ import annotations

from tests.conftest import Api
from tests.test_api_input import assert_error

WAITS = {"steps": [{"id": "w", "type": "wait", "config": {"duration": "P1D"}}]}


async def test_fire_by_email(api: Api):
    workflow = await api.workflow(WAITS)
    await api.put("/v1/contacts/ada", json={"email": "ada@example.com"})
    status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs",
                                 json={"email": "ada@example.com", "payload": {"x": 1}})
    assert status == 201 and run["contact_id"] == "ada"
    assert run["trigger"]["event"]["properties"] == {"x": 1}
    status, again = await api.post(f"/v1/workflows/{workflow['id']}/runs",
                                   json={"email": "ada@example.com"})
    assert status == 200 and again["id"] == run["id"]   # reentry, as with contact_id


async def test_fire_by_an_unknown_or_shared_email_or_by_both_names_starts_nothing(api: Api):
    workflow = await api.workflow(WAITS)
    fire = f"/v1/workflows/{workflow['id']}/runs"
    status, error = await api.post(fire, json={"email": "nobody@example.com"})
    assert_error(status, error, 404, "not_found")
    status, error = await api.post(fire, json={"contact_id": "u1", "email": "u1@example.com"})
    assert_error(status, error, 422, "validation_error")
    for contact_id in ("twin1", "twin2"):
        await api.put(f"/v1/contacts/{contact_id}", json={"email": "twins@example.com"})
    status, error = await api.post(fire, json={"email": "twins@example.com"})
    assert_error(status, error, 409, "conflict")
    assert "contact_id" in error["error"]["message"]
    assert (await api.get(f"/v1/runs?workflow_id={workflow['id']}"))[1]["data"] == []


async def test_events_report_the_runs_their_exit_rules_ended(api: Api):
    await api.workflow({"trigger": {"type": "event", "event": "trial.started"},
                        "settings": {"exit_on": [{"event": "order.completed"}]}, **WAITS})
    run_id = (await api.send("trial.started", "u1"))["runs_started"][0]
    await api.run_until(run_id, "waiting")
    result = await api.send("order.completed", "u1", message_id="order-1")
    assert result["runs_exited"] == [run_id] and result["runs_started"] == []
    assert (await api.run(run_id))["status"] == "completed"
    # A repeat of the message answers with the first result, what it ended included.
    again = await api.send("order.completed", "u1", message_id="order-1")
    assert again == {**result, "duplicate": True}
    assert (await api.send("order.completed", "u1"))["runs_exited"] == []


async def test_resuming_a_run_of_a_paused_workflow_is_409_and_changes_nothing(api: Api):
    workflow = await api.workflow({"trigger": {"type": "event", "event": "go"}, **WAITS})
    await api.post(f"/v1/workflows/{workflow['id']}/pause")
    run_id = (await api.send("go", "u1"))["runs_started"][0]
    assert (await api.run(run_id))["status"] == "paused"
    status, error = await api.post(f"/v1/runs/{run_id}/resume")
    assert_error(status, error, 409, "conflict")
    assert "workflow is paused" in error["error"]["message"]
    assert (await api.run(run_id))["status"] == "paused"
    await api.post(f"/v1/workflows/{workflow['id']}/resume")
    await api.run_until(run_id, "waiting")
