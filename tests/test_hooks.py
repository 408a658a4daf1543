"""Webhook and form triggers: the workflow's URL and its rotation, signed deliveries (checked
with the independent `standardwebhooks` package's signer), bodies of every kind, the contact,
idempotent retries, and pages for browsers."""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from aiohttp import FormData
from standardwebhooks.webhooks import Webhook

from flowd.api.middleware import MAX_BODY_BYTES, SERVICES
from flowd.api.pages import wants_html
from flowd.app import create_app
from flowd.hooks import hook_token, read_hook_token
from tests.conftest import ADMIN_KEY, Api

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 24).decode()
STEPS = [{"id": "keep", "type": "set", "config": {"vars": {"name": "{{ event.properties.name }}"}}}]


def hook(**trigger: Any) -> dict[str, Any]:
    return {"trigger": {"type": "webhook", **trigger}, "steps": STEPS}


def signed(secret: str, body: bytes, *, msg_id: str = "msg_1", at: float | None = None
           ) -> dict[str, str]:
    when = datetime.fromtimestamp(time.time() if at is None else at, tz=timezone.utc)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signature, "Content-Type": "application/json"}


def path_of(url: str) -> str:
    return url[url.index("/v1/hooks/"):]


async def post(api: Api, url: str, body: bytes | Any = None, **kw: Any) -> tuple[int, Any]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = kw.pop("headers", None) or {"Content-Type": "application/json"}
    return await api.post(path_of(url), key=None, data=data, headers=headers, **kw)


async def events(api: Api) -> list[dict[str, Any]]:
    _, page = await api.get("/v1/events?name=webhook.received")
    return page["data"]


# -- the URL --------------------------------------------------------------------------------

async def test_the_workflow_shows_an_absolute_url_that_a_put_may_carry_back(api: Api):
    workflow = await api.workflow(hook())
    url = workflow["trigger"]["url"]
    assert url.startswith("http://") and "/v1/hooks/" + workflow["id"] + ".1." in url
    _, got = await api.get(f"/v1/workflows/{workflow['id']}")
    _, listed = await api.get("/v1/workflows")
    assert got["trigger"]["url"] == listed["data"][0]["trigger"]["url"] == url
    # GET → edit → PUT: the read-only url is accepted and ignored; the URL stays.
    got["name"] = "renamed"
    status, replaced = await api.put(f"/v1/workflows/{workflow['id']}", json=got)
    assert status == 200 and replaced["trigger"]["url"] == url
    assert replaced["version"] == workflow["version"]   # the url is not part of the definition
    status, version = await api.get(f"/v1/workflows/{workflow['id']}/versions/1")
    assert "url" not in version["trigger"]


async def test_the_url_is_built_on_the_public_url(api: Api):
    api.app[SERVICES].base_url = "https://flows.example.com/"   # as the server sets it
    workflow = await api.workflow(hook())
    assert workflow["trigger"]["url"].startswith("https://flows.example.com/v1/hooks/wf_")


async def test_rotation_makes_a_new_url_and_the_old_one_is_a_404(api: Api):
    workflow = await api.workflow(hook())
    old = workflow["trigger"]["url"]
    status, rotated = await api.post(f"/v1/workflows/{workflow['id']}/trigger/rotate")
    assert status == 200 and rotated["trigger"]["url"] != old and ".2." in rotated["trigger"]["url"]
    assert rotated["version"] == workflow["version"]
    status, body = await post(api, old, {"name": "x"})
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await post(api, rotated["trigger"]["url"], {"name": "x"})
    assert status == 202 and body["run_id"]
    _, again = await api.get(f"/v1/workflows/{workflow['id']}")
    assert again["trigger"]["url"] == rotated["trigger"]["url"]


async def test_urls_and_their_rotation_survive_a_restart(api: Api, aiohttp_client, config):
    workflow = await api.workflow(hook())
    _, rotated = await api.post(f"/v1/workflows/{workflow['id']}/trigger/rotate")
    restarted = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
    _, again = await restarted.get(f"/v1/workflows/{workflow['id']}")
    assert again["trigger"]["url"].rsplit("/", 1)[1] == rotated["trigger"]["url"].rsplit("/", 1)[1]
    assert (await post(restarted, workflow["trigger"]["url"], {}))[0] == 404
    assert (await post(restarted, rotated["trigger"]["url"], {}))[0] == 202


async def test_rotation_needs_an_editor_and_a_webhook_trigger(api: Api):
    workflow = await api.workflow(hook())
    viewer = Api(api.client, key=await api.new_key("viewer"))
    status, _ = await viewer.post(f"/v1/workflows/{workflow['id']}/trigger/rotate")
    assert status == 403
    manual = await api.workflow({"steps": STEPS})
    status, body = await api.post(f"/v1/workflows/{manual['id']}/trigger/rotate")
    assert status == 409 and "not a webhook" in body["error"]["message"]
    assert (await api.post("/v1/workflows/wf_nope/trigger/rotate"))[0] == 404


async def test_forged_and_malformed_tokens_are_404s(api: Api):
    workflow = await api.workflow(hook())
    url = workflow["trigger"]["url"]
    token = url.rsplit("/", 1)[1]
    wf, generation, mac = token.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for forged in (f"{wf}.{generation}.{flipped}", f"{wf}.2.{mac}", f"{wf}.01.{mac}",
                   f"wf_other.1.{mac}", f"{wf}.{generation}", "x", f"{token}.1",
                   f"{wf}.{generation}.{secrets.token_urlsafe(32)}", f"{wf}.1.é"):
        status, body = await api.post(f"/v1/hooks/{forged}", key=None, json={})
        assert status == 404, (forged, body)
    assert not await events(api)


def test_tokens_are_full_length_macs_that_name_their_workflow():
    key = secrets.token_bytes(32)
    token = hook_token(key, "wf_1", 3)
    assert read_hook_token(key, token) == ("wf_1", 3)
    assert len(base64.urlsafe_b64decode(token.split(".")[2] + "=")) == 32
    assert read_hook_token(secrets.token_bytes(32), token) is None
    assert read_hook_token(key, hook_token(key, "wf_2", 3).replace("wf_2", "wf_1")) is None


async def test_definition_shapes_are_checked(api: Api):
    for trigger, path in [({"type": "webhook", "secret": "nope"}, "trigger.secret"),
                          ({"type": "webhook", "secret": "whsec_" + "A" * 31 + "="},
                           "trigger.secret"),
                          ({"type": "webhook", "secret": "whsec_" + base64.b64encode(
                              b"s" * 16).decode()}, "trigger.secret"),
                          ({"type": "webhook", "contact_id_path": "user..id"},
                           "trigger.contact_id_path"),
                          ({"type": "webhook", "contact_id_path": "user id"},
                           "trigger.contact_id_path"),
                          ({"type": "webhook", "extra": 1}, "trigger.extra")]:
        status, body = await api.post("/v1/workflows", json={"name": "x", "trigger": trigger,
                                                             "steps": STEPS})
        assert status == 422, (trigger, body)
        assert body["error"]["details"][0]["path"] == path


# -- signatures -----------------------------------------------------------------------------

async def test_a_signed_trigger_takes_only_valid_recent_signatures_and_stores_nothing_else(
        api: Api):
    workflow = await api.workflow(hook(secret=SECRET))
    url = workflow["trigger"]["url"]
    body = json.dumps({"name": "ada"}).encode()
    now = time.time()
    bad = signed(SECRET, body)
    bad["webhook-signature"] = signed(OTHER_SECRET, body)["webhook-signature"]
    tampered = signed(SECRET, body)
    rejected = [
        ("bad signature", body, bad),
        ("another body", json.dumps({"name": "eve"}).encode(), signed(SECRET, body)),
        ("too old", body, signed(SECRET, body, at=now - 301)),
        ("too new", body, signed(SECRET, body, at=now + 301)),
        ("no headers", body, {"Content-Type": "application/json"}),
        ("no id", body, {k: v for k, v in tampered.items() if k != "webhook-id"}),
        ("no timestamp", body, {k: v for k, v in tampered.items() if k != "webhook-timestamp"}),
        ("no signature", body, {k: v for k, v in tampered.items() if k != "webhook-signature"}),
        ("not a time", body, {**tampered, "webhook-timestamp": "soon"}),
        ("another id", body, {**tampered, "webhook-id": "msg_2"}),
        ("a v2 signature", body, {**tampered, "webhook-signature": tampered[
            "webhook-signature"].replace("v1,", "v2,")}),
    ]
    for why, data, headers in rejected:
        status, answer = await post(api, url, data, headers=headers)
        assert status == 401, (why, answer)
        assert answer["error"]["code"] == "unauthorized"
    assert not await events(api)
    _, runs = await api.get(f"/v1/runs?workflow_id={workflow['id']}")
    assert runs["data"] == []
    # Within the window either way, and one valid signature among several, is accepted.
    for i, at in enumerate((now - 290, now + 290, now)):
        headers = signed(SECRET, body, msg_id=f"ok_{i}", at=at)
        if i == 2:
            other = signed(OTHER_SECRET, body, msg_id="ok_2", at=at)["webhook-signature"]
            headers["webhook-signature"] = f"{other} v1,AAAA {headers['webhook-signature']}"
        status, answer = await post(api, url, body, headers=headers)
        assert status == 202 and answer["run_id"], answer
    run = await api.run_until(answer["run_id"], "completed")
    assert run["vars"] == {"name": "ada"}


async def test_replacing_the_secret_with_a_put_switches_which_signatures_pass(api: Api):
    workflow = await api.workflow(hook(secret=SECRET))
    body = b'{"name": "ada"}'
    workflow["trigger"]["secret"] = OTHER_SECRET
    status, replaced = await api.put(f"/v1/workflows/{workflow['id']}", json=workflow)
    assert status == 200 and replaced["trigger"]["url"] == workflow["trigger"]["url"]
    url = replaced["trigger"]["url"]
    assert (await post(api, url, body, headers=signed(SECRET, body)))[0] == 401
    status, answer = await post(api, url, body, headers=signed(OTHER_SECRET, body))
    assert status == 202 and answer["run_id"]


async def test_an_unsigned_trigger_ignores_signature_headers(api: Api):
    workflow = await api.workflow(hook())
    status, answer = await post(api, workflow["trigger"]["url"], b'{"name": "x"}',
                                headers={**signed(OTHER_SECRET, b"other"), "webhook-id": "m"})
    assert status == 202 and answer["run_id"]


# -- bodies ---------------------------------------------------------------------------------

async def test_json_bodies_become_the_event_properties(api: Api):
    workflow = await api.workflow(hook())
    url = workflow["trigger"]["url"]
    payload = {"name": "ada", "order": {"id": 7, "items": [1, 2]}}
    status, answer = await post(api, url, payload)
    assert status == 202 and answer["duplicate"] is False
    run = await api.run_until(answer["run_id"], "completed")
    assert run["trigger"]["type"] == "webhook"
    event = run["trigger"]["event"]
    assert event["name"] == "webhook.received" and event["properties"] == payload
    assert event["id"] == answer["event_id"] and run["contact_id"] is None
    [stored] = await events(api)
    assert stored["id"] == answer["event_id"] and stored["properties"] == payload
    # No body at all is an empty object; a JSON body that is not an object is refused.
    status, answer = await post(api, url, b"", headers={"Content-Type": "application/json"})
    assert status == 202
    for data, code in [(b"[1, 2]", 400), (b'"x"', 400), (b"{nope", 400),
                       (b"[" * 40 + b"]" * 40, 400),
                       (json.dumps(_nested(40)).encode(), 422)]:
        status, answer = await post(api, url, data)
        assert status == code and answer["error"]["code"] in ("bad_request", "validation_error")


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_url_encoded_and_multipart_forms_give_their_text_fields(api: Api):
    workflow = await api.workflow(hook())
    url = workflow["trigger"]["url"]
    status, answer = await post(api, url, b"name=ada&tag=a&tag=b&empty=&note=caf%C3%A9",
                                headers={"Content-Type": "application/x-www-form-urlencoded",
                                         "Accept": "application/json"})
    assert status == 202
    run = await api.run_until(answer["run_id"], "completed")
    assert run["trigger"]["event"]["properties"] == {"name": "ada", "tag": ["a", "b"],
                                                     "empty": "", "note": "café"}
    form = FormData()
    form.add_field("name", "grace")
    form.add_field("tag", "x")
    form.add_field("tag", "y")
    form.add_field("cv", b"%PDF-1.4 binary", filename="cv.pdf", content_type="application/pdf")
    status, answer = await api.post(path_of(url), key=None, data=form,
                                    headers={"Accept": "application/json"})
    assert status == 202, answer
    run = await api.run_until(answer["run_id"], "completed")
    assert run["trigger"]["event"]["properties"] == {"name": "grace", "tag": ["x", "y"]}
    assert run["vars"] == {"name": "grace"}
    status, answer = await post(api, url, b"no parts here", headers={
        "Content-Type": "multipart/form-data; boundary=xyz", "Accept": "application/json"})
    assert status == 400
    status, answer = await post(api, url, b"name=%FF", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    assert status == 400


async def test_a_body_over_the_limit_is_a_413_and_stores_nothing(api: Api):
    workflow = await api.workflow(hook())
    big = json.dumps({"name": "x" * MAX_BODY_BYTES}).encode()
    status, answer = await post(api, workflow["trigger"]["url"], big)
    assert status == 413 and answer["error"]["code"] == "payload_too_large"

    async def chunked():   # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536
    status, answer = await post(api, workflow["trigger"]["url"], chunked())
    assert status == 413
    assert not await events(api)


# -- the contact ----------------------------------------------------------------------------

async def test_contact_id_path_picks_the_contact(api: Api):
    workflow = await api.workflow(hook(contact_id_path="user.id"))
    url = workflow["trigger"]["url"]
    status, answer = await post(api, url, {"user": {"id": "u_1"}, "name": "ada"})
    assert status == 202
    run = await api.run_until(answer["run_id"], "completed")
    assert run["contact_id"] == "u_1"
    assert (await api.get("/v1/contacts/u_1"))[0] == 200   # made with only its id
    # An integer id is its decimal text; reentry (after_completion) then applies per contact.
    status, answer = await post(api, url, {"user": {"id": 42}})
    assert status == 202 and (await api.run(answer["run_id"]))["contact_id"] == "42"
    for body, code in [({"user": {}}, "missing_contact_id"), ({"name": "x"}, "missing_contact_id"),
                       ({"user": {"id": None}}, "invalid_contact_id"),
                       ({"user": {"id": {"x": 1}}}, "invalid_contact_id"),
                       ({"user": {"id": ""}}, "invalid_contact_id")]:
        status, answer = await post(api, url, body)
        assert status == 422, body
        assert answer["error"]["details"] == [{"path": "user.id", "code": code,
                                               "message": answer["error"]["details"][0]["message"]}]
    assert len(await events(api)) == 2


async def test_list_items_and_form_fields_can_hold_the_contact(api: Api):
    workflow = await api.workflow(hook(contact_id_path="users.1"))
    status, answer = await post(api, workflow["trigger"]["url"], {"users": ["a", "b"]})
    assert status == 202 and (await api.run(answer["run_id"]))["contact_id"] == "b"
    form = await api.workflow(hook(contact_id_path="email"))
    status, answer = await post(api, form["trigger"]["url"], b"email=ada%40example.com", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    assert status == 202 and (await api.run(answer["run_id"]))["contact_id"] == "ada@example.com"


async def test_reentry_applies_and_a_blocked_delivery_has_no_run(api: Api):
    workflow = await api.workflow({**hook(contact_id_path="id"), "settings": {"reentry": "once"}})
    url = workflow["trigger"]["url"]
    first = (await post(api, url, {"id": "u_1"}))[1]
    status, second = await post(api, url, {"id": "u_1"})
    assert status == 202 and first["run_id"] and second["run_id"] is None
    assert second["duplicate"] is False and len(await events(api)) == 2


# -- idempotency ----------------------------------------------------------------------------

async def test_a_retried_delivery_starts_one_run(api: Api):
    workflow = await api.workflow(hook(secret=SECRET))
    other = await api.workflow(hook())
    body = b'{"name": "ada"}'
    headers = signed(SECRET, body, msg_id="msg_retry")
    status, first = await post(api, workflow["trigger"]["url"], body, headers=headers)
    status2, again = await post(api, workflow["trigger"]["url"], body, headers=headers)
    assert status == status2 == 202
    assert again == {**first, "duplicate": True}
    # The same delivery id sent to another workflow's hook is that workflow's own delivery.
    status, elsewhere = await post(api, other["trigger"]["url"], body,
                                   headers={"webhook-id": "msg_retry",
                                            "Content-Type": "application/json"})
    assert status == 202 and not elsewhere["duplicate"] and elsewhere["run_id"] != first["run_id"]
    _, runs = await api.get("/v1/runs")
    assert len(runs["data"]) == 2
    status, answer = await post(api, other["trigger"]["url"], body,
                                headers={"webhook-id": "x" * 151,
                                         "Content-Type": "application/json"})
    assert status == 422 and answer["error"]["details"][0]["code"] == "invalid_webhook_id"


# -- the workflow's state -------------------------------------------------------------------

async def test_only_an_active_or_paused_workflow_takes_deliveries(api: Api):
    workflow = await api.workflow(hook(), activate=False)
    url = workflow["trigger"]["url"]
    status, answer = await post(api, url, {"name": "x"})
    assert status == 409 and "draft" in answer["error"]["message"]
    await api.post(f"/v1/workflows/{workflow['id']}/activate")
    await api.post(f"/v1/workflows/{workflow['id']}/pause")
    status, answer = await post(api, url, {"name": "x"})
    assert status == 202 and (await api.run(answer["run_id"]))["status"] == "paused"
    await api.post(f"/v1/workflows/{workflow['id']}/resume")
    await api.run_until(answer["run_id"], "completed")
    await api.post(f"/v1/workflows/{workflow['id']}/archive")
    assert (await post(api, url, {"name": "x"}))[0] == 409
    # A workflow whose trigger is no longer a webhook has no hook at all.
    await api.post(f"/v1/workflows/{workflow['id']}/deactivate")
    workflow["trigger"] = {"type": "manual"}
    status, replaced = await api.put(f"/v1/workflows/{workflow['id']}", json=workflow)
    assert status == 200 and "url" not in replaced["trigger"]
    assert (await post(api, url, {"name": "x"}))[0] == 404


async def test_a_webhook_delivery_does_not_trigger_event_workflows(api: Api):
    everything = await api.workflow({"trigger": {"type": "event", "event": "*"}, "steps": STEPS})
    workflow = await api.workflow(hook())
    await post(api, workflow["trigger"]["url"], {"name": "x"})
    _, runs = await api.get(f"/v1/runs?workflow_id={everything['id']}")
    assert runs["data"] == []


# -- browsers -------------------------------------------------------------------------------

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def test_a_browser_form_gets_a_received_page(api: Api):
    workflow = await api.workflow(hook())
    url = workflow["trigger"]["url"]
    async with api.client.post(path_of(url), data=b"name=%3Cb%3Eada%3C%2Fb%3E", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": BROWSER}) as resp:
        page = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert '<html lang="en">' in page and "<h1>Received</h1>" in page
    [event] = await events(api)
    assert event["properties"] == {"name": "<b>ada</b>"}
    # Without an Accept header, a form post is a browser's too; a JSON one is not.
    status, page = await post(api, url, b"a=1",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and "Received" in page
    status, answer = await post(api, url, {"a": 1})
    assert status == 202 and answer["run_id"]


async def test_a_browser_gets_its_errors_as_escaped_pages(api: Api):
    workflow = await api.workflow(hook(contact_id_path="<script>x</script>"))
    url = workflow["trigger"]["url"]
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": BROWSER}
    async with api.client.post(path_of(url), data=b"name=x", headers=form) as resp:
        page = await resp.text()
        assert resp.status == 422 and resp.content_type == "text/html"
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert 'role="alert"' in page and "Please check the form" in page
    status, page = await post(api, url.replace(".1.", ".2."), b"name=x", headers=form)
    assert status == 404 and "not available" in page


@pytest.mark.parametrize("accept,content_type,html", [
    (BROWSER, "application/x-www-form-urlencoded", True),
    (BROWSER, "application/json", True),
    ("", "multipart/form-data", True),
    ("*/*", "application/x-www-form-urlencoded", True),
    ("application/json", "application/x-www-form-urlencoded", False),
    ("text/html;q=0.5, application/json", "multipart/form-data", False),
    ("*/*", "application/json", False),
    ("", "application/json", False),
    ("text/*", "application/json", True),
])
def test_who_gets_a_page(accept: str, content_type: str, html: bool):
    assert wants_html(accept, content_type) is html


async def test_the_hook_routes_are_documented(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    deliver = doc["paths"]["/v1/hooks/{token}"]["post"]
    assert deliver["security"] == []
    assert set(deliver["requestBody"]["content"]) == {
        "application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
    assert {"200", "202", "401", "404", "409", "413", "422"} <= set(deliver["responses"])
    assert "text/html" in deliver["responses"]["200"]["content"]
    assert set(deliver["responses"]["404"]["content"]) == {"application/json", "text/html"}
    rotate = doc["paths"]["/v1/workflows/{id}/trigger/rotate"]["post"]
    assert rotate["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Workflow"}
    trigger = doc["components"]["schemas"]["WebhookTrigger"]
    assert trigger["properties"]["url"]["readOnly"] is True
