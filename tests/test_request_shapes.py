"""What a request may look like, checked before anything happens: the identifier rule, bodies
sent to endpoints that take none, PATCH's either/or, the shape of step configs, triggers and
conditions (a 422), against what a draft may still lack (an issue), and path parameters."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.test_api_input import assert_error, paths

INVISIBLE = ["nul\u0000", "tab\there", "line\nbreak", "zero\u200bwidth", "bidi\u202eoverride",
             "nbsp\u00a0space", "soft\u00adhyphen", "bom\ufeff", "tag\U000e0041"]


@pytest.mark.parametrize("bad", INVISIBLE)
async def test_one_identifier_rule_for_event_names_contact_ids_and_names(api: Api, bad: str):
    for body, where in [({"name": bad}, "name"),
                        ({"name": "ok", "contact_id": bad}, "contact_id"),
                        ({"name": "ok", "message_id": bad}, "message_id")]:
        status, error = await api.post("/v1/events", json=body)
        assert_error(status, error, 422, "validation_error")
        assert paths(error) == {where}
    status, error = await api.put("/v1/contacts/u1", json={"tags": [bad]})
    assert_error(status, error, 422, "validation_error")
    assert paths(error) == {"tags[0]"}
    status, error = await api.post("/v1/workflows", json={"name": bad})
    assert paths(error) == {"name"}
    status, error = await api.post("/v1/keys", json={"role": "viewer", "name": bad})
    assert paths(error) == {"name"}
    status, page = await api.get("/v1/events")
    assert page["data"] == []


async def test_readable_text_of_any_script_is_a_fine_identifier(api: Api):
    name = 'Bestellung «abgeschlossen» 注文 🙂 "quoted" \\ back'
    result = await api.send(name, "Zoë 🙂 user#1")
    assert result["duplicate"] is False
    status, contact = await api.get("/v1/contacts/Zo%C3%AB%20%F0%9F%99%82%20user%231")
    assert status == 200 and contact["id"] == "Zoë 🙂 user#1"


async def test_a_contact_id_in_the_path_follows_the_rule_too(api: Api):
    status, error = await api.get("/v1/contacts/%01")
    assert_error(status, error, 422, "validation_error")
    assert paths(error) == {"id"}


async def test_a_version_that_is_not_a_number_is_422(api: Api):
    workflow = await api.workflow({"steps": [{"id": "a", "type": "exit"}]}, activate=False)
    status, error = await api.get(f"/v1/workflows/{workflow['id']}/versions/abc")
    assert_error(status, error, 422, "validation_error")
    status, error = await api.get(f"/v1/workflows/{workflow['id']}/versions/7")
    assert_error(status, error, 404, "not_found")


@pytest.mark.parametrize("raw,status,code", [
    ('{"zz": 1}', 422, "validation_error"),
    ("not json", 400, "bad_request"),
    ("[1]", 400, "bad_request"),
    ('"archive"', 400, "bad_request"),
])
async def test_an_action_refuses_a_body_it_does_not_take_and_does_nothing(api: Api, raw, status,
                                                                         code):
    workflow = await api.workflow({"steps": [{"id": "a", "type": "exit"}]})
    got, error = await api.request("POST", f"/v1/workflows/{workflow['id']}/archive", data=raw,
                                   headers={"Content-Type": "application/json"})
    assert_error(got, error, status, code)
    assert (await api.get(f"/v1/workflows/{workflow['id']}"))[1]["status"] == "active"


@pytest.mark.parametrize("raw", ["", "{}", "  "])
async def test_an_action_takes_no_body_or_an_empty_object(api: Api, raw):
    workflow = await api.workflow({"steps": [{"id": "a", "type": "exit"}]})
    status, archived = await api.request("POST", f"/v1/workflows/{workflow['id']}/archive",
                                         data=raw, headers={"Content-Type": "application/json"})
    assert status == 200 and archived["status"] == "archived"


async def test_run_actions_and_rotation_refuse_stray_bodies(api: Api):
    workflow = await api.workflow({"trigger": {"type": "event", "event": "go"},
                                   "steps": [{"id": "w", "type": "wait",
                                              "config": {"duration": "P1D"}}]})
    run_id = (await api.send("go", "u1"))["runs_started"][0]
    await api.run_until(run_id, "waiting")
    for path, body in [(f"/v1/runs/{run_id}/cancel", {"reason": "typo"}),
                       (f"/v1/runs/{run_id}/resume", {"decision": "maybe"}),
                       (f"/v1/workflows/{workflow['id']}/runs/cancel-all", {"all": True})]:
        status, error = await api.post(path, json=body)
        assert_error(status, error, 422, "validation_error")
    # An approval decision is never read as a plain resume: this run waits at a timer.
    status, error = await api.post(f"/v1/runs/{run_id}/resume", json={"decision": "rejected"})
    assert_error(status, error, 409, "conflict")
    assert (await api.run(run_id))["status"] == "waiting"
    _, before = await api.get("/v1/settings/webhook-secret")
    status, error = await api.post("/v1/settings/webhook-secret/rotate", json={"now": True})
    assert_error(status, error, 422, "validation_error")
    assert (await api.get("/v1/settings/webhook-secret"))[1] == before


async def test_patch_takes_plain_fields_or_operations_not_both(api: Api):
    workflow = await api.workflow({"steps": [{"id": "a", "type": "exit"}]}, activate=False)
    status, error = await api.patch(f"/v1/workflows/{workflow['id']}", json={
        "name": "renamed", "operations": [{"op": "remove_step", "id": "a"}]})
    assert_error(status, error, 422, "validation_error")
    assert "not both" in error["error"]["message"]
    _, unchanged = await api.get(f"/v1/workflows/{workflow['id']}")
    assert unchanged["name"] == workflow["name"] and unchanged["version"] == 1


@pytest.mark.parametrize("step,path", [
    ({"id": "a", "type": "wait", "config": {"duration": 5}}, "steps[0].config.duration"),
    ({"id": "a", "type": "wait", "config": {"durration": "PT1H"}}, "steps[0].config.durration"),
    ({"id": "a", "type": "teleport"}, "steps[0].type"),
    ({"id": "a", "type": "webhook", "config": {"url": "https://x.test", "method": "TRACE"}},
     "steps[0].config.method"),
    ({"id": "a", "type": "condition", "config": {"if": {"field": "contact.email", "op": "bigger",
                                                        "value": 1}}}, "steps[0].config.if.op"),
    ({"id": "a", "type": "condition", "config": {"if": {"all": [{"field": "x", "op": "eq",
                                                                 "vaule": 1}]}}},
     "steps[0].config.if.all[0].vaule"),
])
async def test_a_step_config_of_the_wrong_shape_is_422(api: Api, step, path):
    status, error = await api.post("/v1/workflows", json={"name": "w", "steps": [step]})
    assert_error(status, error, 422, "validation_error")
    assert path in paths(error)


async def test_a_draft_may_lack_required_config_and_says_so_in_issues(api: Api):
    status, workflow = await api.post("/v1/workflows", json={
        "name": "draft", "steps": [{"id": "a", "type": "webhook", "config": {}},
                                   {"id": "b", "type": "delay"}]})
    assert status == 201
    assert {(i["code"], i["path"]) for i in workflow["issues"]} >= {
        ("missing_config", "steps[0].config.url"), ("missing_config", "steps[1].config")}
    assert workflow["steps"][1]["type"] == "wait"   # the alias, normalized


async def test_only_known_trigger_types_are_accepted(api: Api):
    status, error = await api.post("/v1/workflows", json={"name": "w",
                                                          "trigger": {"type": "cron"}})
    assert_error(status, error, 422, "validation_error")
    assert paths(error) == {"trigger.type"}
    status, error = await api.post("/v1/workflows", json={
        "name": "w", "trigger": {"type": "manual", "event": "x"}})
    assert paths(error) == {"trigger.event"}   # a manual trigger has no event


async def test_operations_that_would_make_a_malformed_step_are_422_with_a_code(api: Api):
    workflow = await api.workflow({"steps": [{"id": "a", "type": "wait",
                                              "config": {"duration": "PT1H"}}]}, activate=False)
    status, error = await api.patch(f"/v1/workflows/{workflow['id']}", json={"operations": [
        {"op": "update_step", "id": "a", "set": {"config": {"duration": 3600}}}]})
    assert_error(status, error, 422, "validation_error")
    assert error["error"]["details"] == [{"path": "steps[0].config.duration",
                                          "message": "must be a string, not number",
                                          "code": "invalid_result"}]
    status, error = await api.patch(f"/v1/workflows/{workflow['id']}", json={"operations": [
        {"op": "remove_step", "id": "ghost"}]})
    assert error["error"]["details"][0]["code"] == "unknown_step"
    assert (await api.get(f"/v1/workflows/{workflow['id']}"))[1]["version"] == 1


async def test_an_event_contact_needs_its_contact_id(api: Api):
    status, error = await api.post("/v1/events", json={"name": "x", "contact": {"email": None}})
    assert_error(status, error, 422, "validation_error")
    assert error["error"]["details"] == [{"path": "contact_id",
                                          "message": "is required when contact is given",
                                          "code": "dependent_required"}]
