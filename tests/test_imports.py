"""Imports of other tools' definitions (reference documents 000, 001, 004): each example is
imported, then a real run goes through the imported workflow."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.conftest import Api, eventually

FIXTURES = Path(__file__).parent / "fixtures" / "imports"


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


async def _import(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    status, result = await api.post("/v1/import", json=body)
    assert status == 200, result
    [entry] = result["created"] + result["updated"]
    assert entry["type"] == "workflow" and entry["warnings"] == result["warnings"]
    return result


async def _template(api: Api, name: str) -> None:
    status, body = await api.post("/v1/templates", json={
        "name": name, "channel": "email", "subject": "Hello {{ user.first_name }}",
        "text": "Welcome aboard"})
    assert status == 201, body


async def _messages(api: Api, run_id: str, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        _, page = await api.get(f"/v1/messages?run_id={run_id}")
        return page["data"] if len(page["data"]) >= count else None
    return await eventually(check)


async def test_reference_000_steps_list(api: Api):
    source = _fixture("ref000_welcome_series.json")
    await _template(api, "<TEMPLATE_UUID>")      # the template the example names
    result = await _import(api, source)
    assert result["source"] == "reference 000 (steps)"
    assert result["warnings"] == []                # send_push exists here: mapped as it is
    workflow_id = result["created"][0]["id"]
    status, workflow = await api.get(f"/v1/workflows/{workflow_id}")
    assert workflow["status"] == "active"          # isActive, and no error issues
    assert workflow["trigger"] == {"type": "event", "event": "user.signed_up"}
    assert [(s["type"], s["config"]) for s in workflow["steps"]] == [
        ("send_email", {"template": "<TEMPLATE_UUID>", "to": "{{event.userEmail}}"}),
        ("wait", {"duration": "P1D"}),
        ("send_push", {"title": "Tips for day 1",
                       "body": "{{user.firstName}}, here are 3 tips..."})]
    assert workflow["steps"][1]["name"] == "let user finish onboarding"

    # A real run: the email goes to the event's userEmail, then the run waits a day.
    ingest = await api.send("user.signed_up", "u1", properties={"userEmail": "u1@example.com"})
    [run_id] = ingest["runs_started"]
    run = await api.run_until(run_id, "waiting")
    assert run["current_step_id"] == "s2" and run["wait"]["kind"] == "timer"
    [message] = await _messages(api, run_id, 1)
    assert message["to"] == "u1@example.com"

    # The same document with a short wait updates the workflow by name; a run goes through.
    short = copy.deepcopy(source)
    short["steps"][1]["delayMinutes"] = 0.005
    result = await _import(api, short)
    assert result["updated"][0]["id"] == workflow_id
    ingest = await api.send("user.signed_up", "u2", properties={"userEmail": "u2@example.com"})
    run = await api.run_until(ingest["runs_started"][0], "completed")
    assert [s["step_id"] for s in run["steps"]] == ["s1", "s2", "s3"]


async def test_reference_001_graph(api: Api):
    result = await _import(api, _fixture("ref001_welcome_flow.json"))
    assert result["source"] == "reference 001 (nodes)"
    assert {w["path"] for w in result["warnings"]} == {"trigger.key", "list_uid"}
    workflow_id = result["created"][0]["id"]
    status, workflow = await api.get(f"/v1/workflows/{workflow_id}")
    assert workflow["status"] == "draft"
    assert [(s["id"], s["type"], s.get("next")) for s in workflow["steps"]] == [
        ("n_wait0001", "wait", "n_send0001"),
        ("n_send0001", "send_email", "n_cond0001"),
        ("n_cond0001", "wait_for_event", {"event": "n_yes00001", "timeout": None}),
        ("n_yes00001", "send_email", None)]
    assert workflow["steps"][2]["config"] == {"event": "email.opened", "timeout": "P3D"}
    # The example's send nodes have no email yet: the issues say so, as in the source tool.
    assert {i["step_id"] for i in workflow["issues"] if i["severity"] == "error"} == {
        "n_send0001", "n_yes00001"}

    # Fill in the emails (and a short wait), activate, fire for a contact, open the email.
    await _template(api, "welcome")
    status, body = await api.patch(f"/v1/workflows/{workflow_id}", json={"operations": [
        {"op": "update_step", "id": "n_wait0001", "set": {"config": {"duration": "PT0.1S"}}},
        {"op": "update_step", "id": "n_send0001", "set": {"config": {"template": "welcome"}}},
        {"op": "update_step", "id": "n_yes00001", "set": {"config": {"template": "welcome"}}}]})
    assert status == 200, body
    status, body = await api.post(f"/v1/workflows/{workflow_id}/activate")
    assert status == 200, body
    await api.put("/v1/contacts/alice", json={"email": "alice@example.com"})
    status, run = await api.post(f"/v1/workflows/{workflow_id}/runs",
                                 json={"email": "alice@example.com"})
    assert status == 201, run
    run = await api.run_until(run["id"], "waiting")
    await eventually(lambda: _at(api, run["id"], "n_cond0001"))
    await api.send("email.opened", "alice")
    run = await api.run_until(run["id"], "completed")
    assert [s["step_id"] for s in run["steps"]] == ["n_wait0001", "n_send0001", "n_cond0001",
                                                    "n_yes00001"]
    assert run["steps"][2]["branch"] == "event"
    assert len(await _messages(api, run["id"], 2)) == 2


async def _at(api: Api, run_id: str, step_id: str) -> bool:
    run = await api.run(run_id)
    return run["status"] == "waiting" and run["current_step_id"] == step_id


async def test_reference_004_steps_and_transitions(api: Api, sink):
    source = _fixture("ref004_onboarding.json")
    await _template(api, "uuid")                 # the template the example names
    result = await _import(api, source)
    assert result["source"] == "reference 004 (steps and transitions)"
    assert result["warnings"] == [{"path": "_comment", "message": (
        "has no equivalent in flowd and was not imported")}]
    workflow_id = result["created"][0]["id"]
    status, workflow = await api.get(f"/v1/workflows/{workflow_id}")
    assert workflow["status"] == "active" and workflow["issues"] == []
    assert workflow["settings"]["reentry"] == "once"      # allowReentry: false
    steps = {s["id"]: s for s in workflow["steps"]}
    assert workflow["steps"][0]["id"] == "delay"
    assert steps["delay"]["config"] == {"duration": "P1D"}
    assert steps["delay"]["position"] == {"x": 100, "y": 200}
    assert steps["clicked"]["config"] == {"event": "email.clicked", "timeout": "P1D"}
    assert steps["clicked"]["next"] == {"event": "plan", "timeout": "done"}
    assert steps["plan"]["config"]["if"] == {"field": "contact.traits.plan", "op": "eq",
                                             "value": "pro"}
    assert steps["plan"]["next"] == {"yes": "mark", "no": "done"}
    assert steps["mark"]["config"] == {"traits": {"key": "value"}}

    # The same document with a short delay and its webhook on this test's sink (no traffic
    # leaves the machine): it updates the workflow by name, and a run goes all the way.
    local = copy.deepcopy(source)
    local["steps"][1]["config"] = {"amount": 0.1, "unit": "seconds"}
    local["steps"][6]["config"]["url"] = sink.url
    result = await _import(api, local)
    assert result["updated"][0]["id"] == workflow_id
    await api.put("/v1/contacts/bob", json={"email": "bob@example.com",
                                            "traits": {"plan": "pro"}})
    [run_id] = (await api.send("signed_up", "bob"))["runs_started"]
    await eventually(lambda: _at(api, run_id, "clicked"))
    await api.send("email.clicked", "bob", properties={"url": "https://example.com/x"})
    run = await api.run_until(run_id, "completed")
    assert run["exit_reason"] == "optional reason"
    assert [s["step_id"] for s in run["steps"]] == ["delay", "welcome", "clicked", "plan", "mark",
                                                    "notify", "done"]
    assert len(sink.requests) == 1
    _, contact = await api.get("/v1/contacts/bob")
    assert contact["traits"] == {"plan": "pro", "key": "value"}


async def test_an_unknown_shape_is_refused(api: Api):
    status, body = await api.post("/v1/import", json={"name": "what is this"})
    assert status == 422, body
    assert body["error"]["details"][0]["code"] == "unknown_format"
    assert (await api.get("/v1/workflows"))[1]["data"] == []


async def test_active_in_the_source_with_errors_is_saved_as_a_draft(api: Api):
    source = _fixture("ref000_welcome_series.json")     # its template does not exist here
    result = await _import(api, source)
    assert result["warnings"][-1]["path"] == "status"
    assert "saved as a draft" in result["warnings"][-1]["message"]
    status, workflow = await api.get(f"/v1/workflows/{result['created'][0]['id']}")
    assert workflow["status"] == "draft"
    assert [i["code"] for i in workflow["issues"]] == ["unknown_template"]


async def test_reference_000_ai_action_becomes_an_ai_step(api: Api):
    result = await _import(api, {"name": "AI", "trigger": {"eventType": "ticket.opened"},
                                 "steps": [{"type": "ai_action", "config": {
                                     "flavor": "generate", "prompt": "Summarize {{event.text}}",
                                     "saveTo": "summary"}}]})
    status, workflow = await api.get(f"/v1/workflows/{result['created'][0]['id']}")
    assert workflow["steps"][0]["type"] == "ai" and workflow["steps"][0]["config"] == {
        "flavor": "generate", "prompt": "Summarize {{event.text}}",
        "save_to": "contact.traits.summary"}
    assert not [i for i in workflow["issues"] if i["severity"] == "error"]
