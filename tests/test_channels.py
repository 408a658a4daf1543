"""SMS, push and Slack end to end: workflows on a real server send through Twilio, FCM and
Slack fakes on 127.0.0.1 (tests/channel_fakes.py), and what the providers answer lands in the
message records and the contact; E.164 phone numbers; settings that cannot work stop the start;
the dry run lists what would be sent and sends nothing."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import pytest

from flowd.app import create_app
from flowd.config import PushConfig, SlackConfig, SmsConfig
from flowd.errors import ConfigError
from tests.channel_fakes import (
    INVALID_NUMBER,
    TOO_MANY,
    TWILIO_SID,
    TWILIO_TOKEN,
    UNREGISTERED,
    UNSUBSCRIBED,
    FcmFake,
    SlackFake,
    TwilioFake,
    service_account_file,
    service_account_key,
)
from tests.conftest import ADMIN_KEY, Api, make_config

PHONE = "+4915112345678"


@pytest.fixture(scope="module")
def rsa_key():
    return service_account_key()


@pytest.fixture
async def fakes(aiohttp_server, rsa_key):
    twilio, fcm, slack = TwilioFake(), FcmFake(rsa_key[0].public_key()), SlackFake()
    for fake in (twilio, fcm, slack):
        server = await aiohttp_server(fake.app(), host="127.0.0.1")
        base = str(server.make_url("")).rstrip("/")
        if isinstance(fake, TwilioFake):
            fake.url = base
        else:
            fake.base_url = base
    return twilio, fcm, slack


@pytest.fixture
def config(tmp_path, fakes, rsa_key):
    twilio, fcm, slack = fakes
    key_file = service_account_file(tmp_path / "sa.json", rsa_key[1], fcm.token_url)
    return dataclasses.replace(
        make_config(tmp_path),
        sms=SmsConfig(provider="twilio", account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN,
                      sender="+15005550006", base_url=twilio.url, timeout_seconds=5),
        push=PushConfig(provider="fcm", service_account_file=key_file, base_url=fcm.base_url,
                        timeout_seconds=5),
        slack=SlackConfig(webhook_url=slack.url, timeout_seconds=5))


async def _journey(api: Api, steps: list[dict[str, Any]], contact_id: str = "u1",
                   **contact: Any) -> dict[str, Any]:
    await api.workflow({"trigger": {"type": "event", "event": "go"},
                        "settings": {"reentry": "always"}, "steps": steps})
    return await _fire(api, contact_id, **contact)


async def _fire(api: Api, contact_id: str = "u1", **contact: Any) -> dict[str, Any]:
    result = await api.send("go", contact_id, **({"contact": contact} if contact else {}))
    [run_id] = result["runs_started"]
    return await api.run_until(run_id, "completed", "failed")


async def _messages(api: Api, query: str) -> list[dict[str, Any]]:
    status, page = await api.get(f"/v1/messages?{query}")
    assert status == 200, page
    return page["data"]


SMS = {"id": "text", "type": "send_sms", "config": {
    "body": "Hi {{ contact.traits.first_name }}, your code is {{ event.code }}"}}


async def test_an_sms_goes_to_twilio_once_and_its_record_says_so(api: Api, fakes):
    twilio, _, _ = fakes
    await api.workflow({"trigger": {"type": "event", "event": "go"}, "steps": [SMS]})
    result = await api.send("go", "u1", properties={"code": "1234"},
                            contact={"phone": PHONE, "traits": {"first_name": "Ada"}})
    run = await api.run_until(result["runs_started"][0], "completed", "failed")
    assert run["status"] == "completed", run
    [request] = twilio.requests
    assert request["form"] == {"To": PHONE, "From": "+15005550006",
                               "Body": "Hi Ada, your code is 1234"}
    output = run["steps"][0]["output"]
    assert output["status"] == "sent" and output["provider_message_id"] == f"SM{1:032x}"
    [record] = await _messages(api, "channel=sms")
    assert record["id"] == output["message_id"] and record["channel"] == "sms"
    assert (record["to"], record["subject"], record["body"]) == (
        PHONE, None, "Hi Ada, your code is 1234")
    assert record["status"] == "sent" and record["provider_message_id"] == f"SM{1:032x}"
    assert record["run_id"] == run["id"] and record["step_id"] == "text" and record["sent_at"]
    assert await _messages(api, "channel=email") == []


async def test_an_invalid_number_fails_without_retry_and_is_suppressed_afterwards(api, fakes):
    twilio, _, _ = fakes
    twilio.by_number["+15005550001"] = INVALID_NUMBER
    steps = [{**SMS, "retry": {"max_attempts": 3, "backoff": "PT0.1S"},
              "next": {"error": "handle"}},
             {"id": "ok", "type": "set", "config": {"vars": {"x": 1}}, "next": None},
             {"id": "handle", "type": "set", "config": {"vars": {"bad": True}}}]
    run = await _journey(api, steps, phone="+15005550001")
    assert [s["step_id"] for s in run["steps"]] == ["text", "handle"], run
    assert run["steps"][0]["error"]["code"] == "invalid_number"
    assert len(twilio.requests) == 1                       # not retried
    [record] = await _messages(api, "channel=sms")
    assert record["status"] == "failed" and record["error"]["code"] == "invalid_number"
    assert "21211" in record["error"]["message"]

    again = await _fire(api)
    first = again["steps"][0]
    assert first["branch"] == "suppressed" and first["output"]["reason"] == "bad_number"
    assert len(twilio.requests) == 1


async def test_an_unsubscribed_recipient_is_suppressed_and_the_contact_unsubscribed(api, fakes):
    twilio, _, _ = fakes
    twilio.by_number[PHONE] = UNSUBSCRIBED
    run = await _journey(api, [SMS], phone=PHONE)
    step = run["steps"][0]
    assert run["status"] == "completed"
    assert step["branch"] == "suppressed" and step["output"]["reason"] == "unsubscribed"
    _, contact = await api.get("/v1/contacts/u1")
    assert contact["subscribed"] == {"email": True, "sms": False, "push": True}
    _, events = await api.get("/v1/events?name=contact.unsubscribed")
    [event] = events["data"]
    assert event["contact_id"] == "u1" and event["properties"] == {"channel": "sms"}
    [record] = await _messages(api, "channel=sms")
    assert record["status"] == "suppressed" and record["error"]["code"] == "unsubscribed"

    again = await _fire(api)
    assert again["steps"][0]["output"]["reason"] == "unsubscribed"
    assert len(twilio.requests) == 1


async def test_a_429_is_retried_and_the_message_sent_once(api, fakes):
    twilio, _, _ = fakes
    twilio.queue.append(TOO_MANY)
    run = await _journey(api, [{**SMS, "retry": {"max_attempts": 3, "backoff": "PT0.1S"}}],
                         phone=PHONE)
    assert run["status"] == "completed", run
    assert [s["error"]["code"] if s["error"] else s["outcome"] for s in run["steps"]] == [
        "sms_unavailable", "sent"]
    assert len(twilio.requests) == 2
    [record] = await _messages(api, "channel=sms")
    assert record["status"] == "sent" and record["error"] is None
    assert len({s["output"]["message_id"] for s in run["steps"] if s["output"]}) == 1


async def test_push_goes_to_every_token_and_an_unregistered_one_is_removed(api, fakes):
    _, fcm, _ = fakes
    fcm.by_token["dead-token"] = UNREGISTERED
    status, _ = await api.post("/v1/templates", json={
        "name": "shipped", "channel": "push", "title": "Order {{ event.order }}",
        "body": "On its way, {{ contact.traits.first_name }}",
        "data": {"order": "{{ event.order }}", "screen": "orders"}})
    assert status == 201
    await api.workflow({"trigger": {"type": "event", "event": "go"}, "steps": [
        {"id": "notify", "type": "send_push", "config": {"template": "shipped"}}]})
    result = await api.send("go", "u1", properties={"order": 42}, contact={
        "push_tokens": ["live-token", "dead-token"], "traits": {"first_name": "Ada"}})
    run = await api.run_until(result["runs_started"][0], "completed", "failed")
    assert run["status"] == "completed", run
    output = run["steps"][0]["output"]
    assert output["status"] == "sent" and output["sent"] == 1
    assert [m["status"] for m in output["messages"]] == ["sent", "failed"]
    bodies = {s["body"]["message"]["token"]: s["body"]["message"] for s in fcm.sends}
    assert bodies["live-token"] == {"token": "live-token", "notification": {
        "title": "Order 42", "body": "On its way, Ada"}, "data": {"order": "42",
                                                                 "screen": "orders"}}
    _, contact = await api.get("/v1/contacts/u1")
    assert contact["push_tokens"] == ["live-token"]
    records = {m["to"]: m for m in await _messages(api, "channel=push")}
    assert records["live-token"]["status"] == "sent"
    assert records["live-token"]["subject"] == "Order 42"
    assert records["live-token"]["provider_message_id"].startswith("projects/flowd-test/")
    assert records["dead-token"]["status"] == "failed"
    assert records["dead-token"]["error"]["code"] == "unregistered"
    assert len(fcm.token_requests) == 1                 # one token for both sends


async def test_slack_to_the_steps_url_or_the_operators(api, fakes):
    _, _, slack = fakes
    run = await _journey(api, [
        {"id": "ops", "type": "slack", "config": {"text": "Signup: {{ contact.email }}"}},
        {"id": "team", "type": "slack", "config": {
            "text": "fallback", "webhook_url": f"{slack.base_url}/services/T9/B9/other",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]}}],
        email="ada@example.com")
    assert run["status"] == "completed", run
    assert [(p["path"], p["body"]) for p in slack.posts] == [
        ("/services/T0001/B0001/s3cr3tp4th", {"text": "Signup: ada@example.com"}),
        ("/services/T9/B9/other", {"text": "fallback", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]})]
    records = await _messages(api, "channel=slack")
    assert sorted(r["to"] for r in records) == [
        f"{slack.base_url}/services/T0001/B0001/…", f"{slack.base_url}/services/T9/B9/…"]
    assert all(r["status"] == "sent" and r["subject"] is None for r in records)
    assert {r["provider_message_id"] for r in records} == {"req-1", "req-2"}


@pytest.mark.parametrize("phone", ["+49 151 12345678", "015112345678", "+0151123456",
                                   "+49151", "+4915112345678901", "call me"])
async def test_phone_numbers_must_be_e164(api, phone):
    status, error = await api.put("/v1/contacts/u1", json={"phone": phone})
    assert status == 422, error
    assert [d["path"] for d in error["error"]["details"]] == ["phone"]
    status, error = await api.post("/v1/events", json={"name": "x", "contact_id": "u1",
                                                       "contact": {"phone": phone}})
    assert status == 422, error
    status, error = await api.post("/v1/workflows", json={
        "name": "w", "status": "active", "trigger": {"type": "manual"},
        "steps": [{"id": "s", "type": "update_contact", "config": {"phone": phone}}]})
    assert status == 422, error
    assert any(d["path"] == "steps[0].config.phone" for d in error["error"]["details"])


async def test_an_e164_number_is_accepted(api):
    status, contact = await api.put("/v1/contacts/u1", json={"phone": PHONE})
    assert status == 201 and contact["phone"] == PHONE


def _app(tmp_path, **sections):
    return create_app(dataclasses.replace(make_config(tmp_path), **sections),
                      admin_key=ADMIN_KEY)


@pytest.mark.parametrize("sms, needle", [
    (SmsConfig(provider="twilio", auth_token="t", sender="+15005550006"), "account_sid"),
    (SmsConfig(provider="twilio", account_sid="AC1", sender="+15005550006"), "auth_token"),
    (SmsConfig(provider="twilio", account_sid="AC1", auth_token="t"), "messaging_service_sid"),
])
def test_twilio_without_its_settings_stops_the_start(tmp_path, sms, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        _app(tmp_path, sms=sms)
    assert str(info.value).startswith("[sms]")


def test_fcm_without_a_readable_key_file_stops_the_start(tmp_path):
    with pytest.raises(ConfigError, match="needs service_account_file"):
        _app(tmp_path, push=PushConfig(provider="fcm"))
    with pytest.raises(ConfigError, match="cannot read the service-account file"):
        _app(tmp_path, push=PushConfig(provider="fcm",
                                       service_account_file=str(tmp_path / "missing.json")))


def test_fcm_without_cryptography_says_how_to_install_it(tmp_path, monkeypatch, rsa_key):
    key_file = service_account_file(tmp_path / "sa.json", rsa_key[1], "http://127.0.0.1:9/t")
    for name in [m for m in sys.modules if m == "cryptography" or m.startswith("cryptography.")]:
        monkeypatch.setitem(sys.modules, name, None)    # import now raises ImportError
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(ConfigError, match=r"pip install 'flowd\[fcm\]'"):
        _app(tmp_path, push=PushConfig(provider="fcm", service_account_file=key_file))


async def test_the_dry_run_lists_sms_push_and_slack_and_sends_nothing(api, fakes):
    twilio, fcm, slack = fakes
    status, result = await api.post("/v1/workflows/test-run", json={
        "definition": {"name": "t", "trigger": {"type": "manual"}, "steps": [
            {"id": "p", "type": "send_push", "config": {"title": "T", "body": "B",
                                                        "data": {"n": 1}}},
            {"id": "w", "type": "wait", "config": {"duration": "PT1H"}},
            {"id": "s", "type": "send_sms", "config": {"body": "Hi {{ contact.phone }}"}},
            {"id": "k", "type": "slack", "config": {"text": "done"}}]},
        "contact": {"phone": PHONE, "push_tokens": ["t1", "t2"]}})
    assert status == 200, result
    assert result["status"] == "completed", result
    effects = result["effects"]
    assert [(e["kind"], e["step_id"], e["status"]) for e in effects] == [
        ("push", "p", "sent"), ("push", "p", "sent"), ("sms", "s", "sent"),
        ("slack", "k", "sent")]
    assert {e["to"][0] for e in effects[:2]} == {"t1", "t2"}
    assert effects[0]["title"] == "T" and effects[0]["data"] == {"n": "1"}
    assert effects[2]["to"] == [PHONE] and effects[2]["body"] == f"Hi {PHONE}"
    assert effects[3]["text"] == "done" and effects[3]["to"][0].endswith("/…")
    assert effects[2]["at"] > effects[0]["at"]
    assert twilio.requests == [] and fcm.sends == [] and fcm.token_requests == []
    assert slack.posts == []
    assert await _messages(api, "limit=10") == []
