"""Alert webhooks end to end: each alert type reaches a local receiver signed with its
subscription's secret, retries after a failure with the same webhook-id, workflow.failing at
most once an hour, deliveries listed, bad subscriptions refused, and a deleted subscription
sent nothing more."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from flowd.api.middleware import SERVICES
from flowd.app import create_app
from flowd.clock import Clock
from flowd.config import AlertsConfig, EmailConfig
from flowd.effects.signing import verify
from tests.conftest import ADMIN_KEY, Api, Sink, eventually, make_config
from tests.mail_server import MailServer
from tests.test_approvals import APPROVAL_FLOW

# Nothing listens on port 1 of the loopback: a call there is refused at once, failing its run.
FAILING_STEP = {"id": "call", "type": "http_request", "config": {"url": "http://127.0.0.1:1/"}}
FAILING_FLOW = {"trigger": {"type": "event", "event": "go"}, "settings": {"reentry": "always"},
                "steps": [FAILING_STEP]}


class ShiftedClock(Clock):
    """Wall-clock time moved on by `offset_ms`: an hour passes when a test says so."""

    offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


async def subscribe(api: Api, url: str, *events: str) -> dict[str, Any]:
    status, body = await api.post("/v1/webhooks", json={"url": url, "events": list(events)})
    assert status == 201, body
    return body


async def fail_runs(api: Api, n: int, contact: str = "u1") -> None:
    for _ in range(n):
        [run_id] = (await api.send("go", contact))["runs_started"]
        await api.run_until(run_id, "failed")


def received(sink: Sink, path: str = "/hook") -> list[dict[str, Any]]:
    return [r for r in sink.requests if r["path"] == path]


def check_signed(request: dict[str, Any], secret: str) -> dict[str, Any]:
    """The body of a delivery whose Standard Webhooks signature holds under `secret`."""
    headers = {k.lower(): v for k, v in request["headers"].items()}
    verify(secret, headers, request["body"], now_s=int(headers["webhook-timestamp"]))
    return json.loads(request["body"])


async def deliveries(api: Api, webhook_id: str) -> list[dict[str, Any]]:
    status, body = await api.get(f"/v1/webhooks/{webhook_id}/deliveries")
    assert status == 200, body
    return body["data"]


async def test_a_failed_run_is_alerted_signed_and_the_delivery_listed(api: Api, sink: Sink):
    hook = await subscribe(api, sink.url, "run.failed")
    assert hook["id"].startswith("whk_") and hook["secret"].startswith("whsec_")
    workflow = await api.workflow(FAILING_FLOW)
    [run_id] = (await api.send("go", "u1"))["runs_started"]
    await api.run_until(run_id, "failed")

    [request] = await eventually(lambda: _some(received(sink)))
    body = check_signed(request, hook["secret"])
    assert body["type"] == "run.failed" and body["timestamp"].endswith("Z")
    assert body["data"]["run_id"] == run_id
    assert body["data"]["workflow_id"] == workflow["id"]
    assert body["data"]["error"]["code"] == "connection_failed"

    async def delivered() -> list[dict[str, Any]]:
        listed = await deliveries(api, hook["id"])
        return listed if listed and listed[0]["status"] == "delivered" else []
    [delivery] = await eventually(delivered)
    assert delivery["id"] == request["headers"]["webhook-id"]
    assert delivery["event_type"] == "run.failed"
    assert delivery["attempts"] == 1 and delivery["last_status_code"] == 200
    assert delivery["delivered_at"] is not None and delivery["last_error"] is None
    # The secret is shown once: reads leave it out.
    _, fetched = await api.get(f"/v1/webhooks/{hook['id']}")
    assert "secret" not in fetched and fetched["url"] == sink.url


async def _some(items: list[Any]) -> list[Any]:
    return items


async def test_an_approval_is_alerted_only_to_its_subscribers(api: Api, sink: Sink):
    approvals = await subscribe(api, sink.url, "approval.requested")
    await subscribe(api, sink.url.replace("/hook", "/failures"), "run.failed")
    workflow = await api.workflow(APPROVAL_FLOW)
    status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs",
                                 json={"contact_id": "c1", "payload": {"contract": "ACME"}})
    assert status == 201, run
    await api.run_until(run["id"], "waiting")
    [request] = await eventually(lambda: _some(received(sink)))
    body = check_signed(request, approvals["secret"])
    assert body["type"] == "approval.requested"
    assert body["data"]["run_id"] == run["id"] and body["data"]["step_id"] == "ask"
    assert body["data"]["message"] == "Sign the ACME contract?"
    assert body["data"]["approvers"] == ["boss@example.com", "deputy@example.com"]
    assert "approval_url" not in json.dumps(body)     # links are for the approvers alone
    assert received(sink, "/failures") == []


async def test_a_bounce_is_alerted(aiohttp_client, tmp_path, sink: Sink):
    with MailServer() as smtp:
        config = dataclasses.replace(make_config(tmp_path), email=EmailConfig(
            provider="smtp", host="127.0.0.1", port=smtp.port, timeout_seconds=5))
        api = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
        hook = await subscribe(api, sink.url, "message.bounced")
        smtp.refuse("gone@example.com", "550 5.1.1 <gone@example.com>: no such user")
        await api.workflow({"trigger": {"type": "event", "event": "go"}, "steps": [
            {"id": "mail", "type": "send_email", "config": {"subject": "Hi", "text": "Hello"}}]})
        [run_id] = (await api.send("go", "u1", contact={"email": "gone@example.com"}))[
            "runs_started"]
        await api.run_until(run_id, "completed", "failed")
        [request] = await eventually(lambda: _some(received(sink)))
    body = check_signed(request, hook["secret"])
    assert body["type"] == "message.bounced"
    assert body["data"]["address"] == "gone@example.com"
    assert "no such user" in body["data"]["reason"]
    assert body["data"]["run_id"] == run_id and body["data"]["contact_id"] == "u1"


async def test_a_500_is_retried_with_the_same_id_then_delivered(api: Api, sink: Sink):
    api.app[SERVICES].alert_deliverer.first_retry_ms = 20
    sink.statuses = [500, 503]
    hook = await subscribe(api, sink.url, "run.failed")
    await api.workflow(FAILING_FLOW)
    await fail_runs(api, 1)

    async def delivered() -> list[dict[str, Any]]:
        listed = await deliveries(api, hook["id"])
        return listed if listed and listed[0]["status"] == "delivered" else []
    [delivery] = await eventually(delivered)
    assert delivery["attempts"] == 3 and delivery["last_status_code"] == 200
    attempts = received(sink)
    assert len(attempts) == 3
    assert {r["headers"]["webhook-id"] for r in attempts} == {delivery["id"]}
    assert len({r["body"] for r in attempts}) == 1        # the same bytes every time
    for request in attempts:
        check_signed(request, hook["secret"])


async def test_an_unreachable_destination_is_retried_then_given_up(api: Api, sink: Sink):
    deliverer = api.app[SERVICES].alert_deliverer
    deliverer.first_retry_ms, deliverer.give_up_ms = 10, 50
    hook = await subscribe(api, "http://127.0.0.1:1/nobody", "run.failed")
    await api.workflow(FAILING_FLOW)
    await fail_runs(api, 1)

    async def failed() -> list[dict[str, Any]]:
        listed = await deliveries(api, hook["id"])
        return listed if listed and listed[0]["status"] == "failed" else []
    [delivery] = await eventually(failed)
    assert delivery["attempts"] >= 1 and delivery["last_status_code"] is None
    assert delivery["last_error"].startswith("connection_failed")
    assert delivery["next_attempt_at"] is None


async def test_the_private_network_guard_applies_at_delivery(aiohttp_client, tmp_path,
                                                              sink: Sink):
    config = make_config(tmp_path, allow_private_networks=False)
    api = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
    hook = await subscribe(api, sink.url, "approval.requested")   # accepted: decided later
    workflow = await api.workflow(APPROVAL_FLOW)
    await api.post(f"/v1/workflows/{workflow['id']}/runs", json={"contact_id": "c1"})

    async def failed() -> list[dict[str, Any]]:
        listed = await deliveries(api, hook["id"])
        return listed if listed and listed[0]["status"] == "failed" else []
    [delivery] = await eventually(failed)
    assert delivery["last_error"].startswith("destination_not_allowed")
    assert delivery["attempts"] == 1          # refused again on every try: not retried
    assert sink.requests == []


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
async def failing_api(aiohttp_client, tmp_path, clock) -> Api:
    config = dataclasses.replace(make_config(tmp_path), alerts=AlertsConfig(
        failing_rate=0.5, failing_min_runs=3))
    return Api(await aiohttp_client(create_app(config, clock=clock, admin_key=ADMIN_KEY)))


async def test_workflow_failing_is_sent_at_most_once_an_hour(failing_api: Api, clock,
                                                             sink: Sink):
    api = failing_api
    hook = await subscribe(api, sink.url, "workflow.failing")
    workflow = await api.workflow(FAILING_FLOW)
    await fail_runs(api, 2)
    await fail_runs(api, 4)              # the third failure passes the threshold; not again
    [request] = await eventually(lambda: _some(received(sink)))
    body = check_signed(request, hook["secret"])
    assert body["type"] == "workflow.failing"
    assert body["data"]["workflow_id"] == workflow["id"]
    assert body["data"]["runs_ended"] == 3 and body["data"]["runs_failed"] == 3
    assert len(await deliveries(api, hook["id"])) == 1

    clock.offset_ms += 3_600_001        # an hour later, failing again: said again
    await fail_runs(api, 3)
    second = await eventually(lambda: _some(received(sink)[1:]))
    assert check_signed(second[0], hook["secret"])["type"] == "workflow.failing"
    assert len(await deliveries(api, hook["id"])) == 2


MIXED_FLOW = {"trigger": {"type": "event", "event": "go"}, "settings": {"reentry": "always"},
              "steps": [{"id": "check", "type": "condition", "config": {"if": {
                  "field": "event.properties.fail", "op": "eq", "value": True}},
                  "next": {"yes": "call", "no": "fine"}},
                  {**FAILING_STEP, "next": None},
                  {"id": "fine", "type": "set", "config": {"vars": {"a": 1}}}]}


async def test_a_failure_rate_below_the_threshold_is_not_failing(failing_api: Api, sink: Sink):
    api = failing_api
    await subscribe(api, sink.url, "workflow.failing")
    await subscribe(api, sink.url.replace("/hook", "/control"), "run.failed")
    await api.workflow(MIXED_FLOW)
    for fail in (False, False, False, True, False, True):   # 2 of 6 failed: under 0.5
        [run_id] = (await api.send("go", "u1", properties={"fail": fail}))["runs_started"]
        await api.run_until(run_id, "completed", "failed")
    await eventually(lambda: _some(received(sink, "/control")[1:]))
    [run_id] = (await api.send("go", "u1", properties={"fail": True}))["runs_started"]
    await api.run_until(run_id, "failed")     # 3 of 7: still under
    await eventually(lambda: _some(received(sink, "/control")[2:]))
    assert received(sink) == []
    [run_id] = (await api.send("go", "u1", properties={"fail": True}))["runs_started"]
    await api.run_until(run_id, "failed")     # 4 of 8: there
    [request] = await eventually(lambda: _some(received(sink)))
    data = json.loads(request["body"])["data"]
    assert (data["runs_ended"], data["runs_failed"], data["failure_rate"]) == (8, 4, 0.5)


async def test_deliveries_are_listed_newest_first_page_by_page(api: Api, sink: Sink):
    hook = await subscribe(api, sink.url, "run.failed")
    await api.workflow(FAILING_FLOW)
    await fail_runs(api, 3)
    await eventually(lambda: _some(received(sink)[2:]))
    status, first = await api.get(f"/v1/webhooks/{hook['id']}/deliveries?limit=2")
    assert status == 200 and len(first["data"]) == 2 and first["next_cursor"]
    status, rest = await api.get(f"/v1/webhooks/{hook['id']}/deliveries?limit=2&cursor="
                                 f"{first['next_cursor']}")
    assert status == 200 and len(rest["data"]) == 1 and rest["next_cursor"] is None
    listed = first["data"] + rest["data"]
    assert [d["created_at"] for d in listed] == sorted((d["created_at"] for d in listed),
                                                       reverse=True)
    assert len({d["id"] for d in listed}) == 3


@pytest.mark.parametrize("body,path", [
    ({"url": "ftp://example.com/x", "events": ["run.failed"]}, "url"),
    ({"url": "not a url", "events": ["run.failed"]}, "url"),
    ({"url": "http://", "events": ["run.failed"]}, "url"),
    ({"url": "https://example.com:99999/", "events": ["run.failed"]}, "url"),
    ({"url": "https://example.com/", "events": ["run.exploded"]}, "events[0]"),
    ({"url": "https://example.com/", "events": []}, "events"),
    ({"url": "https://example.com/"}, "events"),
    ({"url": "https://example.com/", "events": ["run.failed"], "secret": "x"}, "secret"),
])
async def test_bad_subscriptions_are_refused(api: Api, body, path):
    status, answer = await api.post("/v1/webhooks", json=body)
    assert status == 422, answer
    assert [d["path"] for d in answer["error"]["details"]] == [path]


async def test_roles_and_projects(api: Api, sink: Sink):
    viewer, editor = await api.new_key("viewer"), await api.new_key("editor")
    body = {"url": sink.url, "events": ["run.failed"]}
    status, _ = await api.post("/v1/webhooks", json=body, key=viewer)
    assert status == 403
    status, hook = await api.post("/v1/webhooks", json=body, key=editor)
    assert status == 201
    status, listed = await api.get("/v1/webhooks", key=viewer)
    assert status == 200 and [h["id"] for h in listed["data"]] == [hook["id"]]
    assert "secret" not in listed["data"][0]
    status, _ = await api.delete(f"/v1/webhooks/{hook['id']}", key=viewer)
    assert status == 403
    status, _ = await api.get("/v1/webhooks/whk_nope")
    assert status == 404


async def test_a_project_has_at_most_50_subscriptions(api: Api):
    for i in range(50):
        await subscribe(api, f"https://example.com/{i}", "run.failed")
    status, answer = await api.post("/v1/webhooks", json={"url": "https://example.com/x",
                                                          "events": ["run.failed"]})
    assert status == 409, answer


async def test_delete_stops_deliveries(api: Api, sink: Sink):
    services = api.app[SERVICES]
    services.alert_deliverer.first_retry_ms = 3_600_000   # a failed attempt stays pending
    sink.statuses = [500]
    doomed = await subscribe(api, sink.url, "run.failed")
    control = await subscribe(api, sink.url.replace("/hook", "/control"), "run.failed")
    await api.workflow(FAILING_FLOW)
    await fail_runs(api, 1)

    async def pending_after_a_500() -> bool:
        listed = await deliveries(api, doomed["id"])
        return bool(listed) and listed[0]["attempts"] == 1
    await eventually(pending_after_a_500)
    assert (await deliveries(api, doomed["id"]))[0]["status"] == "pending"

    status, _ = await api.delete(f"/v1/webhooks/{doomed['id']}")
    assert status == 204
    assert (await api.get(f"/v1/webhooks/{doomed['id']}/deliveries"))[0] == 404
    assert (await api.delete(f"/v1/webhooks/{doomed['id']}"))[0] == 404
    now = services.clock.now_ms()
    due = await services.store.read(lambda tx: tx.alerts.due(now + 10 * 3_600_000, 100))
    assert [d.delivery.subscription_id for d in due] == []   # its pending one is gone

    await fail_runs(api, 1)     # a later alert reaches only the remaining subscription
    await eventually(lambda: _some(received(sink, "/control")[1:]))
    assert len(received(sink)) == 1
    _, listed = await api.get("/v1/webhooks")
    assert [h["id"] for h in listed["data"]] == [control["id"]]
