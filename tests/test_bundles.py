"""Bundles: export → import into a second, fresh server → export is byte-identical; imports are
idempotent by name and all or nothing; the served JSON Schema describes what is exported."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from flowd.app import create_app
from tests.conftest import ADMIN_KEY, Api, eventually, make_config

TEMPLATES = [
    {"name": "welcome", "channel": "email", "subject": "Hi {{ contact.traits.first_name }}",
     "html": "<p>Welcome, café ☕</p>", "text": "Welcome"},
    {"name": "reminder", "channel": "sms", "body": "Don't forget"},
    {"name": "unused", "channel": "email", "subject": "Nobody sends me", "text": "…"},
]
AUDIENCES = [
    {"name": "example.com", "description": "Our own addresses",
     "filter": {"field": "contact.email", "op": "ends_with", "value": "@example.com"}},
    {"name": "pros", "filter": {"all": [{"field": "contact.traits.plan", "op": "eq",
                                         "value": "pro"},
                                        {"field": "contact.created_at", "op": "after",
                                         "value": "-P30D"}]}},
]


async def _seed(api: Api) -> dict[str, str]:
    """A project with templates, audiences and workflows that reference each other by id."""
    ids = {}
    for template in TEMPLATES:
        status, body = await api.post("/v1/templates", json=template)
        assert status == 201, body
        ids[template["name"]] = body["id"]
    for audience in AUDIENCES:
        status, body = await api.post("/v1/audiences", json=audience)
        assert status == 201, body
        ids[audience["name"]] = body["id"]
    child = await api.workflow({"name": "Child", "steps": [
        {"id": "tag", "type": "update_contact", "config": {"add_tags": ["child"]}}]})
    ids["child"] = child["id"]
    parent = await api.workflow({
        "name": "Parent", "description": "Welcomes, then starts the child",
        "trigger": {"type": "event", "event": "user.*",
                    "filter": {"field": "event.properties.plan", "op": "eq", "value": "pro"}},
        "settings": {"reentry": "always", "exit_on": [{"event": "order.completed"}]},
        "steps": [
            {"id": "mail", "type": "email", "config": {"template": ids["welcome"],
                                                       "audience": ids["example.com"]},
             "position": {"x": 10, "y": 20}},
            {"id": "pause", "type": "delay", "config": {"duration": "PT1H"}, "name": "breathe",
             "retry": {"max_attempts": 2, "backoff": "PT1S"}},
            {"id": "kid", "type": "run_workflow", "config": {"workflow": ids["child"]},
             "next": {"completed": "bye", "failed": None}},
            {"id": "bye", "type": "exit", "config": {"reason": "done"}}]})
    ids["parent"] = parent["id"]
    draft = await api.workflow({"name": "Draft with issues", "trigger": {"type": "schedule",
                                "cron": "0 9 * * 1", "audience": ids["pros"]},
                                "steps": [{"id": "w", "type": "wait"}]}, activate=False)
    ids["draft"] = draft["id"]
    paused = await api.workflow({"name": "Paused", "steps": [
        {"id": "w", "type": "wait", "config": {"duration": "P1D"}}]})
    status, body = await api.post(f"/v1/workflows/{paused['id']}/pause")
    assert status == 200, body
    return ids


async def _second(aiohttp_client: Any, tmp_path: Any) -> Api:
    (tmp_path / "second").mkdir()
    client = await aiohttp_client(create_app(make_config(tmp_path / "second"),
                                             admin_key=ADMIN_KEY))
    return Api(client)


async def _export(api: Api, path: str = "/v1/export") -> str:
    async with api.client.get(path, headers={"Authorization": f"Bearer {api.key}"}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.text()


def _without_schema_url(text: str) -> str:
    bundle = json.loads(text)
    assert bundle["$schema"].endswith("/v1/schemas/bundle.json")
    return text.replace(bundle["$schema"], "<schema>")


async def test_export_import_export_is_byte_identical_on_a_fresh_server(api, aiohttp_client,
                                                                       tmp_path):
    ids = await _seed(api)
    first = await _export(api)
    bundle = json.loads(first)
    # Canonical text, references by name, no ids of this server.
    assert first == json.dumps(bundle, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert "café ☕" in first
    for value in ids.values():
        assert value not in first
    assert [w["name"] for w in bundle["workflows"]] == ["Child", "Draft with issues", "Parent",
                                                        "Paused"]
    assert [t["name"] for t in bundle["templates"]] == ["reminder", "unused", "welcome"]
    assert bundle["audiences"] == [{"description": "", **a} if "description" not in a else a
                                   for a in AUDIENCES]
    parent = bundle["workflows"][2]
    assert parent["steps"][0]["config"] == {"template": "welcome", "audience": "example.com"}
    assert bundle["workflows"][1]["trigger"]["audience"] == "pros"
    assert parent["steps"][2]["config"] == {"workflow": "Child"}
    assert [w["status"] for w in bundle["workflows"]] == ["active", "draft", "active", "paused"]

    second = await _second(aiohttp_client, tmp_path)
    status, result = await second.post("/v1/import", json=bundle)
    assert status == 200, result
    assert sorted(e["name"] for e in result["created"]) == sorted(
        ["Child", "Draft with issues", "Parent", "Paused", "reminder", "unused", "welcome",
         "example.com", "pros"])
    assert result["updated"] == result["unchanged"] == []
    again = await _export(second)
    assert _without_schema_url(again) == _without_schema_url(first)

    # The imported workflows work there: the parent sends by template name to its audience by
    # name, starts the child by name.
    status, body = await second.put("/v1/contacts/u1", json={"email": "u1@example.com"})
    assert status == 201, body
    created = {e["name"]: e["id"] for e in result["created"]}
    status, run = await second.post(f"/v1/workflows/{created['Parent']}/runs",
                                    json={"contact_id": "u1"})
    assert status == 201, run

    async def sent() -> list[str]:
        _, messages = await second.get(f"/v1/messages?run_id={run['id']}")
        return [m["subject"] for m in messages["data"]]
    assert await eventually(sent) == ["Hi "]


async def test_a_second_import_changes_nothing(api):
    await _seed(api)
    bundle = json.loads(await _export(api))
    status, result = await api.post("/v1/import", json=bundle)
    assert status == 200, result
    assert result["created"] == result["updated"] == []
    assert len(result["unchanged"]) == 9
    status, versions = await api.get(f"/v1/workflows/{_id(result, 'Parent')}/versions")
    assert len(versions["data"]) == 1

    # A changed step, description and status: updated in place (a new version), by name.
    parent = next(w for w in bundle["workflows"] if w["name"] == "Parent")
    parent["steps"][1]["config"]["duration"] = "PT2H"
    paused = next(w for w in bundle["workflows"] if w["name"] == "Paused")
    paused["status"] = "active"
    status, result = await api.post("/v1/import", json=bundle)
    assert status == 200, result
    assert sorted(e["name"] for e in result["updated"]) == ["Parent", "Paused"]
    status, workflow = await api.get(f"/v1/workflows/{_id(result, 'Parent')}")
    assert workflow["version"] == 2 and workflow["steps"][1]["config"]["duration"] == "PT2H"
    status, workflow = await api.get(f"/v1/workflows/{_id(result, 'Paused')}")
    assert workflow["status"] == "active"


def _id(result: dict[str, Any], name: str) -> str:
    return next(e["id"] for key in ("created", "updated", "unchanged") for e in result[key]
                if e["name"] == name and e["type"] == "workflow")


async def test_one_workflow_export_has_what_it_uses(api):
    ids = await _seed(api)
    bundle = json.loads(await _export(api, f"/v1/workflows/{ids['parent']}/export"))
    assert [w["name"] for w in bundle["workflows"]] == ["Child", "Parent"]
    assert [t["name"] for t in bundle["templates"]] == ["welcome"]
    assert [a["name"] for a in bundle["audiences"]] == ["example.com"]
    assert (await api.get("/v1/workflows/wf_nope/export"))[0] == 404


async def test_a_bad_workflow_imports_nothing(api):
    good = {"name": "Good", "steps": [{"id": "w", "type": "wait",
                                       "config": {"duration": "PT1H"}}]}
    # The shape is wrong: 422 with the path, before anything is looked at.
    bundle = {"format": "flowd.bundle/1", "templates": TEMPLATES[:1], "workflows": [
        good, {"name": "Bad", "steps": [{"id": "s", "type": "teleport"}]}]}
    status, body = await api.post("/v1/import", json=bundle)
    assert status == 422, body
    assert [d["path"] for d in body["error"]["details"]] == ["workflows[1].steps[0].type"]

    # Well-formed, but meant to be active with an error issue; and a name given twice.
    bundle["workflows"][1] = {"name": "Bad", "status": "active",
                              "steps": [{"id": "s", "type": "wait"}]}
    bundle["workflows"].append({"name": "Good", "steps": []})
    status, body = await api.post("/v1/import", json=bundle)
    assert status == 422, body
    paths = {d["path"] for d in body["error"]["details"]}
    assert paths == {"workflows[1].steps[0].config", "workflows[2].name"}, body
    assert "nothing was imported" in body["error"]["message"]
    assert (await api.get("/v1/workflows"))[1]["data"] == []
    assert (await api.get("/v1/templates"))[1]["data"] == []

    # The same workflow as a draft may be imported with its issues.
    bundle["workflows"][1]["status"] = "draft"
    bundle["workflows"].pop()
    status, body = await api.post("/v1/import", json=bundle)
    assert status == 200, body
    assert len(body["created"]) == 3


async def test_the_json_schema_describes_the_export(api):
    await _seed(api)
    status, schema = await api.get("/v1/schemas/bundle.json", key=None)
    assert status == 200
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "$ref" not in json.dumps(schema).replace('"$ref": "#/$defs/', "")
    validator = Draft202012Validator(schema)
    bundle = json.loads(await _export(api))
    assert list(validator.iter_errors(bundle)) == []
    assert bundle["$schema"] == schema["$id"]

    broken = json.loads(json.dumps(bundle))
    broken["workflows"][0]["steps"][0]["type"] = "teleport"
    assert list(validator.iter_errors(broken))
    for mutate in (lambda b: b.pop("format"), lambda b: b.update(workflows={}),
                   lambda b: b["workflows"][0].update(surprise=1),
                   lambda b: b["templates"][0].update(channel="fax"),
                   lambda b: b.update(audiences=[{"name": "x"}])):
        broken = json.loads(json.dumps(bundle))
        mutate(broken)
        assert list(validator.iter_errors(broken)), broken


@pytest.mark.parametrize("role,expected", [("viewer", 403), ("editor", 200)])
async def test_viewers_export_editors_import(api, role, expected):
    key = await api.new_key(role)
    assert (await api.get("/v1/export", key=key))[0] == 200
    status, _ = await api.post("/v1/import", key=key,
                               json={"format": "flowd.bundle/1", "workflows": []})
    assert status == expected
