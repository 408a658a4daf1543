"""AI over HTTP: a project's own model and key (PUT/GET/DELETE /v1/settings/ai) winning over
the server's [ai] and never shown again — not in any answer, run, export, error, log line or
trace —, composing a draft from a prompt with one repair round, and the dry run's ai effects.
The models are local fakes of OpenAI-compatible servers."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from flowd.app import create_app
from flowd.config import AiConfig
from tests.ai_fakes import OpenAiFake, failure, reply, serve
from tests.conftest import ADMIN_KEY, Api, make_config

SERVER_KEY = "sk-server-OperatorsOwnKey000000000000001"
PROJECT_KEY = "sk-proj-ProjectBringsItsOwnKey9876543210zz"
WRONG_KEY = "sk-proj-RevokedLongAgoQwertyuiop55554444xy"
GENERATE = {"trigger": {"type": "manual"}, "steps": [
    {"id": "g", "type": "ai", "config": {"flavor": "generate", "prompt": "Greet {{ contact.id }}",
                                         "save_to": "vars.greeting"}}]}


@pytest.fixture
async def server_model(aiohttp_server):
    fake = await serve(aiohttp_server, OpenAiFake(key=SERVER_KEY))
    yield fake
    fake.release()


@pytest.fixture
async def project_model(aiohttp_server):
    fake = await serve(aiohttp_server, OpenAiFake(key=PROJECT_KEY))
    yield fake
    fake.release()


@pytest.fixture
def config(tmp_path, server_model):
    return dataclasses.replace(make_config(tmp_path), ai=AiConfig(
        provider="openai", base_url=server_model.url, api_key=SERVER_KEY, model="gpt-4o-mini",
        timeout_seconds=5))


async def _fire(api: Api, workflow_id: str, contact_id: str = "u1") -> dict:
    status, run = await api.post(f"/v1/workflows/{workflow_id}/runs",
                                 json={"contact_id": contact_id})
    assert status == 201, run
    return await api.run_until(run["id"], "completed", "failed")


async def test_settings_show_the_server_then_the_project_masked(api: Api, server_model,
                                                               project_model):
    assert await api.get("/v1/settings/ai") == (200, {
        "provider": "openai", "base_url": server_model.url, "model": "gpt-4o-mini",
        "api_key": "****", "source": "server"})
    status, body = await api.put("/v1/settings/ai", json={
        "base_url": project_model.url, "model": "gpt-4.1-mini", "api_key": PROJECT_KEY})
    assert status == 200, body
    shown = {"provider": "openai", "base_url": project_model.url, "model": "gpt-4.1-mini",
             "api_key": f"sk-…{PROJECT_KEY[-4:]}", "source": "project"}
    assert body == shown and await api.get("/v1/settings/ai") == (200, shown)
    editor = await api.new_key("editor")
    assert (await api.get("/v1/settings/ai", key=editor))[0] == 403
    assert (await api.put("/v1/settings/ai", key=editor, json={"api_key": "x" * 20}))[0] == 403
    status, _ = await api.delete("/v1/settings/ai")
    assert status == 204
    assert (await api.get("/v1/settings/ai"))[1]["source"] == "server"


@pytest.mark.parametrize("body, path", [
    ({}, "api_key"),
    ({"api_key": "has space"}, "api_key"),
    ({"api_key": "sk-x", "base_url": "ftp://example.com"}, "base_url"),
    ({"api_key": "sk-x", "base_url": "https://user:pw@example.com"}, "base_url"),
    ({"api_key": "sk-x", "provider": "anthropic"}, "provider"),
])
async def test_settings_refuse_bad_bodies(api: Api, body, path):
    status, error = await api.put("/v1/settings/ai", json=body)
    assert status == 422 and error["error"]["details"][0]["path"] == path


async def test_the_project_key_wins_and_is_never_shown_again(api: Api, server_model,
                                                             project_model, caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    async def call(method: str, path: str, **kw) -> tuple[int, object]:
        status, body = await api.request(method, path, **kw)
        seen.append(json.dumps(body, ensure_ascii=False))
        return status, body

    workflow = await api.workflow(GENERATE)
    await call("PUT", "/v1/settings/ai", json={"base_url": project_model.url,
                                               "api_key": PROJECT_KEY})
    run = await _fire(api, workflow["id"])
    assert run["status"] == "completed" and run["vars"] == {"greeting": "ok"}
    assert server_model.requests == []                 # the project's key won
    [request] = project_model.requests
    assert request["headers"]["Authorization"] == f"Bearer {PROJECT_KEY}"
    assert request["body"]["model"] == "gpt-4o-mini"   # the server's model: same provider
    await call("GET", f"/v1/runs/{run['id']}")

    # A key the provider refuses: the run fails, and its error hides the key it names.
    await call("PUT", "/v1/settings/ai", json={"base_url": project_model.url,
                                               "api_key": WRONG_KEY})
    failed = await _fire(api, workflow["id"], "u2")
    assert failed["status"] == "failed" and failed["error"]["code"] == "ai_unauthorized"
    # OpenAI names the head and tail of the key it refused: both are taken out.
    assert "Incorrect API key provided: [redacted]" in failed["error"]["message"]
    assert WRONG_KEY[-4:] not in failed["error"]["message"]
    await call("GET", f"/v1/runs/{failed['id']}")
    await call("GET", f"/v1/workflows/{workflow['id']}/runs/export")
    await call("GET", "/v1/export")
    await call("GET", "/v1/settings/ai")
    await call("PUT", "/v1/settings/ai", json={"api_key": PROJECT_KEY + " "})   # a 422
    await call("POST", f"/v1/workflows/{workflow['id']}/test-run", json={})

    # Without the project's settings the server's [ai] applies again.
    await call("DELETE", "/v1/settings/ai")
    again = await _fire(api, workflow["id"], "u3")
    assert again["status"] == "completed" and len(server_model.requests) == 1
    assert server_model.requests[0]["headers"]["Authorization"] == f"Bearer {SERVER_KEY}"
    await call("GET", f"/v1/runs/{again['id']}")

    # Nowhere more than the masked form's first 3 and last 4 characters.
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    for text in (*seen, logged):
        for key in (PROJECT_KEY, WRONG_KEY, SERVER_KEY):
            for part in (key, key[:8], key[3:12], key[-12:-4]):
                assert part not in text


# --- composing from a prompt --------------------------------------------------------------------

PROMPT = "When a user signs up, wait a day, then send them a welcome email."
BROKEN = {"description": "Welcome new users",
          "trigger": {"type": "event", "event": "user.signed_up"},
          "steps": [{"id": "wait", "type": "wait", "config": {"duration": "P1D"}, "next": "mail"},
                    {"id": "email", "type": "send_email",
                     "config": {"subject": "Welcome", "text": "Hi!"}}]}
FIXED = {**BROKEN, "steps": [{**BROKEN["steps"][0], "next": "email"}, BROKEN["steps"][1]]}


async def test_compose_repairs_once_and_saves_a_draft(api: Api, server_model):
    server_model.script = [reply(BROKEN), reply({**FIXED, "status": "active"})]
    status, workflow = await api.post("/v1/workflows", json={"name": "Welcome",
                                                             "prompt": PROMPT})
    assert status == 201, workflow
    assert workflow["status"] == "draft" and workflow["description"] == "Welcome new users"
    assert workflow["trigger"] == {"type": "event", "event": "user.signed_up"}
    assert [s["id"] for s in workflow["steps"]] == ["wait", "email"]
    assert not [i for i in workflow["issues"] if i["severity"] == "error"]
    first, second = server_model.bodies
    assert first["response_format"] == {"type": "json_object"}
    system, user = first["messages"]
    assert user == {"role": "user", "content": PROMPT}
    for name in ("send_email", "wait_for_event", "ai", "schedule"):   # the catalogue
        assert f'"name":"{name}"' in system["content"]
    assert second["messages"][:2] == first["messages"]
    assert second["messages"][2] == {"role": "assistant", "content": json.dumps(BROKEN)}
    assert "steps[0].next: unknown_next_step" in second["messages"][3]["content"]


async def test_compose_keeps_what_the_model_could_not_fix_as_issues(api: Api, server_model):
    odd = {**BROKEN, "steps": [*BROKEN["steps"], {"id": "x", "type": "teleport"}]}
    server_model.script = [reply(BROKEN), reply(odd)]
    status, workflow = await api.post("/v1/workflows", json={"name": "Welcome",
                                                             "prompt": PROMPT})
    assert status == 201 and workflow["status"] == "draft"
    codes = {(i["severity"], i["code"]) for i in workflow["issues"]}
    assert ("error", "unknown_next_step") in codes
    assert ("warning", "composed_part_dropped") in codes     # the teleport step
    assert [s["id"] for s in workflow["steps"]] == ["wait", "email"]
    status, _ = await api.post(f"/v1/workflows/{workflow['id']}/activate")
    assert status == 422


async def test_compose_refuses_an_answer_that_is_never_json(api: Api, server_model):
    server_model.script = [reply("Sure! First, wait a day."), reply("Here it is: steps...")]
    status, error = await api.post("/v1/workflows", json={"name": "W", "prompt": PROMPT})
    assert status == 422 and error["error"]["code"] == "ai_bad_answer"
    assert error["error"]["details"][0]["answer"] == "Here it is: steps..."
    assert (await api.get("/v1/workflows"))[1]["data"] == []


@pytest.mark.parametrize("body, path", [
    ({"name": "W", "prompt": "x" * 4001}, "prompt"),
    ({"name": "W", "prompt": "hi", "steps": []}, ""),
    ({"name": "W", "prompt": "hi", "status": "active"}, "status"),
])
async def test_compose_bodies_refused(api: Api, server_model, body, path):
    status, error = await api.post("/v1/workflows", json=body)
    assert status == 422 and error["error"]["code"] == "validation_error"
    assert error["error"]["details"][0]["path"] == path
    assert server_model.requests == []


async def test_compose_provider_failures(api: Api, server_model):
    server_model.script = [failure(429, headers={"Retry-After": "30"}), failure(500)]
    status, error = await api.post("/v1/workflows", json={"name": "W", "prompt": PROMPT})
    assert status == 429 and error["error"]["code"] == "rate_limited"
    status, error = await api.post("/v1/workflows", json={"name": "W", "prompt": PROMPT})
    assert status == 503 and "ai_provider_error" in error["error"]["message"]


async def test_compose_without_a_provider_is_ai_unavailable(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_config(tmp_path), admin_key=ADMIN_KEY))
    api = Api(client)
    status, error = await api.post("/v1/workflows", json={"name": "W", "prompt": PROMPT})
    assert status == 422 and error["error"]["code"] == "ai_unavailable"
    assert error["error"]["details"][0]["code"] == "ai_unavailable"
    assert await api.get("/v1/settings/ai") == (200, {
        "provider": None, "base_url": None, "model": None, "api_key": None, "source": "none"})


# --- the dry run --------------------------------------------------------------------------------

DECIDE = {"trigger": {"type": "manual"}, "steps": [
    {"id": "d", "type": "ai", "config": {"flavor": "decide", "options": ["vip", "regular"],
                                         "prompt": "Is {{ contact.traits.name }} a VIP?"},
     "next": {"vip": "v", "unavailable": "u"}},
    {"id": "v", "type": "set", "config": {"vars": {"went": "vip"}}, "next": None},
    {"id": "u", "type": "set", "config": {"vars": {"went": "unavailable"}}, "next": None}]}


async def test_a_dry_run_lists_the_prompt_and_answers_from_responses(api: Api, server_model):
    status, result = await api.post("/v1/workflows/test-run", json={
        "definition": DECIDE, "contact": {"traits": {"name": "Ada"}},
        "responses": {"d": {"choice": "vip"}}})
    assert status == 200, result
    assert result["run"]["vars"] == {"went": "vip"}
    [effect] = result["effects"]
    assert effect["kind"] == "ai" and effect["step_id"] == "d" and effect["json"] is True
    assert effect["messages"][-1] == {"role": "user", "content": "Is Ada a VIP?"}
    status, result = await api.post("/v1/workflows/test-run", json={"definition": DECIDE})
    assert result["run"]["vars"] == {"went": "unavailable"}
    assert result["trace"][0]["outcome"] == "ai_unavailable"
    assert server_model.requests == []                 # a test run asks no model
