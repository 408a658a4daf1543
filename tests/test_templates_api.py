"""The templates API: create, read by id or name, list, replace, delete (not while a running
workflow uses it), preview; and what workflows see of templates (unknown_template issues)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

WELCOME = {"name": "welcome", "channel": "email",
           "subject": "Hi {{ contact.traits.first_name | default: \"there\" }}",
           "html": "<p>Hello {{ contact.traits.first_name }}, {{ event.properties.plan }}</p>",
           "text": "Hello {{ contact.traits.first_name }}"}


def _mailing(template: str) -> dict[str, Any]:
    return {"name": "mailing", "trigger": {"type": "event", "event": "go"},
            "steps": [{"id": "mail", "type": "send_email", "config": {"template": template}}]}


async def test_create_read_list_replace(api: Api):
    status, created = await api.post("/v1/templates", json=WELCOME)
    assert status == 201, created
    assert created["id"].startswith("tpl_") and created["subject"] == WELCOME["subject"]
    for ref in (created["id"], "welcome"):
        status, got = await api.get(f"/v1/templates/{ref}")
        assert status == 200 and got == created
    await api.post("/v1/templates", json={"name": "code", "channel": "sms",
                                          "body": "Your code is {{ event.properties.code }}"})
    await api.post("/v1/templates", json={"name": "ping", "channel": "push", "title": "Hi",
                                          "body": "New", "data": {"url": "{{ event.url }}"}})

    _, first = await api.get("/v1/templates?limit=2")
    assert [t["name"] for t in first["data"]] == ["ping", "code"]      # newest first
    _, rest = await api.get(f"/v1/templates?limit=2&cursor={first['next_cursor']}")
    assert [t["name"] for t in rest["data"]] == ["welcome"] and rest["next_cursor"] is None
    _, sms = await api.get("/v1/templates?channel=sms")
    assert [t["name"] for t in sms["data"]] == ["code"]

    changed = {**created, "subject": "Welcome!", "html": None}    # GET → edit → PUT
    del changed["html"]
    status, replaced = await api.put(f"/v1/templates/{created['id']}", json=changed)
    assert status == 200, replaced
    assert replaced["subject"] == "Welcome!" and "html" not in replaced
    assert replaced["created_at"] == created["created_at"]


async def test_bad_templates_are_refused_with_the_fields_path(api: Api):
    status, error = await api.post("/v1/templates", json={**WELCOME, "html": "<p>{{ oops </p>"})
    assert status == 422, error
    assert [d["path"] for d in error["error"]["details"]] == ["html"]
    status, error = await api.post("/v1/templates", json={
        "name": "x", "channel": "push", "title": "t", "body": "b",
        "data": {"deep": ["{{ event.fine }}", "{{ broken"]}})
    assert status == 422 and error["error"]["details"][0]["path"] == "data.deep[1]"
    status, error = await api.post("/v1/templates", json={"name": "x", "channel": "email",
                                                          "subject": "no body"})
    assert status == 422 and error["error"]["details"][0]["code"] == "missing_body"
    status, error = await api.post("/v1/templates", json={"name": "x", "channel": "sms",
                                                          "subject": "sms has none", "body": "b"})
    assert status == 422 and error["error"]["details"][0]["path"] == "subject"
    _, page = await api.get("/v1/templates")
    assert page["data"] == []


async def test_names_are_unique_and_channels_fixed(api: Api):
    _, created = await api.post("/v1/templates", json=WELCOME)
    status, error = await api.post("/v1/templates", json=WELCOME)
    assert status == 409 and error["error"]["code"] == "conflict"
    status, error = await api.put(f"/v1/templates/{created['id']}", json={
        "name": "welcome", "channel": "sms", "body": "x"})
    assert status == 409
    viewer = await api.new_key("viewer")
    status, _ = await api.post("/v1/templates", json={**WELCOME, "name": "v"}, key=viewer)
    assert status == 403
    status, _ = await api.get("/v1/templates/nope", key=viewer)
    assert status == 404


async def test_a_workflow_naming_a_missing_template_has_an_issue_until_it_exists(api: Api):
    status, workflow = await api.post("/v1/workflows", json=_mailing("welcome"))
    assert status == 201
    [issue] = [i for i in workflow["issues"] if i["code"] == "unknown_template"]
    assert issue["severity"] == "error" and issue["step_id"] == "mail"
    status, error = await api.post(f"/v1/workflows/{workflow['id']}/activate")
    assert status == 422, error
    status, error = await api.post("/v1/workflows", json={**_mailing("welcome"),
                                                          "name": "x", "status": "active"})
    assert status == 422

    await api.post("/v1/templates", json=WELCOME)
    status, active = await api.post(f"/v1/workflows/{workflow['id']}/activate")
    assert status == 200, active
    assert not [i for i in active["issues"] if i["code"] == "unknown_template"]


async def test_deleting_a_template_a_running_workflow_uses_is_a_409_naming_it(api: Api):
    _, template = await api.post("/v1/templates", json=WELCOME)
    workflow = await api.workflow(_mailing(template["id"]))
    status, error = await api.delete("/v1/templates/welcome")
    assert status == 409, error
    assert workflow["id"] in error["error"]["message"]
    assert error["error"]["details"] == [{"workflow_id": workflow["id"], "name": "mailing"}]

    await api.post(f"/v1/workflows/{workflow['id']}/deactivate")
    status, _ = await api.delete("/v1/templates/welcome")
    assert status == 204
    status, _ = await api.get(f"/v1/templates/{template['id']}")
    assert status == 404


async def test_preview_renders_for_a_contact_and_an_event_escaping_only_html(api: Api):
    _, template = await api.post("/v1/templates", json=WELCOME)
    await api.put("/v1/contacts/u1", json={"traits": {"first_name": "<b>Ann</b>"}})
    status, rendered = await api.post(f"/v1/templates/{template['id']}/preview", json={
        "contact_id": "u1", "event": {"properties": {"plan": "Pro & more"}}})
    assert status == 200, rendered
    assert rendered == {"channel": "email", "subject": "Hi <b>Ann</b>",
                        "html": "<p>Hello &lt;b&gt;Ann&lt;/b&gt;, Pro &amp; more</p>",
                        "text": "Hello <b>Ann</b>"}
    status, rendered = await api.post(f"/v1/templates/{template['id']}/preview")
    assert status == 200 and rendered["subject"] == "Hi there"
    status, error = await api.post(f"/v1/templates/{template['id']}/preview",
                                   json={"contact_id": "nobody"})
    assert status == 422 and error["error"]["details"][0]["code"] == "unknown_contact"
