"""Journeys end to end through the HTTP API, with a real webhook sink on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import Api, Sink, eventually, make_config


async def test_welcome_series_signed_webhook_with_templated_body(api: Api, sink: Sink):
    await api.workflow({
        "trigger": {"type": "event", "event": "user.signed_up"},
        "steps": [
            {"id": "tag", "type": "update_profile", "config": {
                "traits": {"stage": "onboarding", "plan": "{{ event.plan }}"}, "add_tags": ["new"]}},
            {"id": "pause", "type": "delay", "config": {"duration": "PT0.2S"}},
            {"id": "notify", "type": "webhook", "config": {
                "url": sink.url, "body": {"text": "Welcome {{ contact.traits.first_name | default: \"friend\" }}",
                                          "plan": "{{ contact.traits.plan | upper }}",
                                          "tags": "{{ contact.tags }}"}}},
        ]})
    result = await api.send("user.signed_up", "u1", properties={"plan": "pro"},
                            contact={"traits": {"first_name": "Ada"}})
    [run_id] = result["runs_started"]
    run = await api.run_until(run_id, "completed", "failed")
    assert run["status"] == "completed", run
    assert [s["step_id"] for s in run["steps"]] == ["tag", "pause", "notify"]
    assert all(s["status"] == "ok" for s in run["steps"])
    assert run["steps"][1]["duration_ms"] >= 200

    [request] = sink.requests
    assert json.loads(request["body"]) == {"text": "Welcome Ada", "plan": "PRO", "tags": ["new"]}
    _, secret = await api.get("/v1/settings/webhook-secret")
    headers = {k.lower(): v for k, v in request["headers"].items()}
    # An independent implementation of Standard Webhooks verifies the signature.
    verified = Webhook(secret["secret"]).verify(request["body"], headers)
    assert verified["text"] == "Welcome Ada"
    assert run["steps"][2]["output"]["status"] == 200

    _, contact = await api.get("/v1/contacts/u1")
    assert contact["traits"] == {"first_name": "Ada", "stage": "onboarding", "plan": "pro"}
    assert contact["tags"] == ["new"]


async def test_a_step_reads_the_contact_as_it_is_when_the_run_gets_there(api: Api):
    """Contacts are loaded only for steps that may read them: after the wait the next step does
    not, so the engine reads the contact when it reaches the one that does, and sees a change
    made while the run waited."""
    await api.workflow({
        "trigger": {"type": "event", "event": "plan.chosen"},
        "steps": [
            {"id": "pause", "type": "wait", "config": {"duration": "PT0.3S"}},
            {"id": "plain", "type": "set", "config": {"vars": {"step": "{{ run.workflow_version }}"}}},
            {"id": "reads", "type": "set", "config": {"vars": {"plan": "{{ user.plan }}"}}},
        ]})
    [run_id] = (await api.send("plan.chosen", "p1", contact={"traits": {"plan": "free"}}))[
        "runs_started"]
    await api.run_until(run_id, "waiting")
    status, _ = await api.put("/v1/contacts/p1", json={"traits": {"plan": "gold"}})
    assert status == 200
    run = await api.run_until(run_id, "completed", "failed")
    assert run["vars"] == {"step": 1, "plan": "gold"}, run


async def test_cart_abandonment_waits_for_the_right_contacts_event(api: Api, sink: Sink):
    await api.workflow({
        "trigger": {"type": "event", "event": "cart.updated"},
        "settings": {"reentry": "after_completion"},
        "steps": [
            {"id": "wait", "type": "wait_for_event", "config": {
                "event": "order.completed", "timeout": "PT2S",
                "filter": {"field": "event.properties.total", "op": "gt", "value": 0}},
             "next": {"event": "thanks", "timeout": "remind"}},
            {"id": "remind", "type": "webhook", "config": {"url": sink.url, "body": {
                "remind": "{{ contact.id }}"}}, "next": None},
            {"id": "thanks", "type": "set", "config": {"vars": {
                "order_total": "{{ steps.wait.properties.total }}"}}},
        ]})
    converts = (await api.send("cart.updated", "buyer"))["runs_started"][0]
    abandons = (await api.send("cart.updated", "browser"))["runs_started"][0]
    await api.run_until(converts, "waiting")
    await api.run_until(abandons, "waiting")
    # Another contact's order must not resume either run; a zero total fails the filter.
    stranger = await api.send("order.completed", "stranger", properties={"total": 99})
    assert stranger["runs_resumed"] == []
    zero = await api.send("order.completed", "buyer", properties={"total": 0})
    assert zero["runs_resumed"] == []
    bought = await api.send("order.completed", "buyer", properties={"total": 42})
    assert bought["runs_resumed"] == [converts]

    run = await api.run_until(converts, "completed")
    assert [s["step_id"] for s in run["steps"]] == ["wait", "thanks"]
    assert run["steps"][0]["branch"] == "event" and run["steps"][0]["status"] == "ok"
    assert run["steps"][0]["output"]["properties"] == {"total": 42}
    assert run["vars"] == {"order_total": 42}

    run = await api.run_until(abandons, "completed", timeout=5)
    assert [s["step_id"] for s in run["steps"]] == ["wait", "remind"]
    assert run["steps"][0]["branch"] == "timeout"
    assert sink.bodies() == [{"remind": "browser"}]


async def test_wait_for_event_lookback_matches_an_earlier_event(api: Api):
    await api.workflow({
        "trigger": {"type": "event", "event": "trial.started"},
        "steps": [{"id": "wait", "type": "wait_for_event",
                   "config": {"event": "app.*", "lookback": "PT1H", "timeout": "PT5S"}}]})
    await api.send("app.opened", "u1")
    [run_id] = (await api.send("trial.started", "u1"))["runs_started"]
    run = await api.run_until(run_id, "completed")
    assert run["steps"][0]["branch"] == "event"
    assert run["steps"][0]["output"]["name"] == "app.opened"


async def test_branching_on_traits(api: Api):
    await api.workflow({
        "trigger": {"type": "event", "event": "plan.*"},
        "settings": {"reentry": "always"},
        "steps": [
            {"id": "route", "type": "split", "config": {"branches": [
                {"name": "vip", "if": {"all": [{"field": "contact.traits.plan", "op": "eq", "value": "enterprise"},
                                               {"field": "contact.traits.seats", "op": "gte", "value": 50}]}},
                {"name": "paid", "if": {"field": "contact.traits.plan", "op": "in", "value": ["pro", "team"]}}]},
             "next": {"vip": "vip", "paid": "paid", "default": "free"}},
            {"id": "vip", "type": "set", "config": {"vars": {"tier": "vip"}}, "next": None},
            {"id": "paid", "type": "set", "config": {"vars": {"tier": "paid"}}, "next": None},
            {"id": "free", "type": "condition", "config": {"if": {"field": "contact.email", "op": "exists"}},
             "next": {"yes": "nudge", "no": None}},
            {"id": "nudge", "type": "set", "config": {"vars": {"tier": "free-with-email"}}},
        ]})
    cases = {
        "big": ({"traits": {"plan": "enterprise", "seats": 80}}, {"tier": "vip"}),
        "small": ({"traits": {"plan": "enterprise", "seats": 5}}, {}),
        "pro": ({"traits": {"plan": "pro"}}, {"tier": "paid"}),
        "mail": ({"email": "x@example.com"}, {"tier": "free-with-email"}),
        "anon": ({}, {}),
    }
    runs = {}
    for contact_id, (contact, _) in cases.items():
        runs[contact_id] = (await api.send("plan.changed", contact_id, contact=contact))["runs_started"][0]
    for contact_id, (_, expected_vars) in cases.items():
        run = await api.run_until(runs[contact_id], "completed")
        assert run["vars"] == expected_vars, contact_id
    small = await api.run(runs["small"])
    assert [s["branch"] for s in small["steps"]] == ["default", "no"]


async def test_weighted_random_split_over_200_contacts(api: Api):
    await api.workflow({
        "trigger": {"type": "event", "event": "ab.enter"},
        "steps": [{"id": "ab", "type": "split",
                   "config": {"random": [{"name": "a", "weight": 80}, {"name": "b", "weight": 20}]},
                   "next": {"a": "a", "b": "b"}},
                  {"id": "a", "type": "set", "config": {"vars": {"arm": "a"}}, "next": None},
                  {"id": "b", "type": "set", "config": {"vars": {"arm": "b"}}, "next": None}]})
    _, body = await api.post("/v1/events", json={"batch": [
        {"name": "ab.enter", "contact_id": f"c{i}"} for i in range(200)]})
    run_ids = [r["runs_started"][0] for r in body["data"]]

    async def arms() -> Counter | None:
        _, page = await api.get("/v1/stats")
        if page["runs"]["completed"] < 200:
            return None
        counts: Counter = Counter()
        for run_id in run_ids:
            counts[(await api.run(run_id))["vars"]["arm"]] += 1
        return counts

    counts = await eventually(arms)
    assert counts["a"] + counts["b"] == 200
    # 80/20 over 200 draws: a is 160 ± 5.7 (1σ); these bounds fail by chance about once in 10^9.
    assert 120 <= counts["a"] <= 195 and counts["b"] >= 5


@pytest.mark.parametrize("reentry,expected_runs", [("once", 1), ("after_completion", 2), ("always", 3)])
async def test_reentry_rules(api: Api, reentry, expected_runs):
    await api.workflow({
        "trigger": {"type": "event", "event": "visit"},
        "settings": {"reentry": reentry},
        "steps": [{"id": "hold", "type": "wait_for_event", "config": {"event": "release"}}]})
    first = await api.send("visit", "u1")
    second = await api.send("visit", "u1")          # while the first run is active
    await api.send("release", "u1")
    await api.run_until(first["runs_started"][0], "completed")
    if second["runs_started"]:
        await api.run_until(second["runs_started"][0], "completed")
    third = await api.send("visit", "u1")           # after it completed
    started = first["runs_started"] + second["runs_started"] + third["runs_started"]
    assert len(started) == expected_runs
    if reentry == "after_completion":
        assert second["runs_started"] == [] and len(third["runs_started"]) == 1
    # Other contacts are never affected.
    assert len((await api.send("visit", "u2"))["runs_started"]) == 1


async def test_exit_on_goal_event_completes_the_contacts_runs(api: Api):
    await api.workflow({
        "trigger": {"type": "event", "event": "trial.started"},
        "settings": {"exit_on": [{"event": "subscription.*",
                                  "filter": {"field": "event.properties.plan", "op": "ne", "value": "free"}}]},
        "steps": [{"id": "wait", "type": "wait", "config": {"duration": "PT30S"}},
                  {"id": "nag", "type": "set", "config": {"vars": {"nagged": True}}}]})
    a = (await api.send("trial.started", "a"))["runs_started"][0]
    b = (await api.send("trial.started", "b"))["runs_started"][0]
    await api.run_until(a, "waiting")
    await api.send("subscription.created", "a", properties={"plan": "free"})  # filter says no
    assert (await api.run(a))["status"] == "waiting"
    await api.send("subscription.created", "a", properties={"plan": "pro"})
    run = await api.run(a)
    assert run["status"] == "completed"
    assert run["exit_reason"] == "exit_on:subscription.created"
    assert run["current_step_id"] == "wait" and run["wait"] is None
    assert (await api.run(b))["status"] == "waiting"


async def test_pause_holds_runs_and_resume_fires_timers_that_came_due(api: Api):
    workflow = await api.workflow({
        "trigger": {"type": "event", "event": "go"},
        "settings": {"reentry": "always"},
        "steps": [{"id": "wait", "type": "wait", "config": {"duration": "PT1S"}},
                  {"id": "after", "type": "set", "config": {"vars": {"done": True}}}]})
    wf = workflow["id"]
    waiting = (await api.send("go", "u1"))["runs_started"][0]
    await api.run_until(waiting, "waiting")
    status, paused = await api.post(f"/v1/workflows/{wf}/pause")
    assert status == 200 and paused["status"] == "paused"
    # A trigger during the pause creates a paused run.
    held = (await api.send("go", "u2"))["runs_started"][0]
    assert (await api.run(held))["status"] == "paused"
    # The timer comes due while paused: the run is held, its step not finished.
    run = await api.run_until(waiting, "paused", timeout=5)
    assert run["steps"][0]["status"] == "waiting" and run["vars"] == {}
    status, resumed = await api.post(f"/v1/workflows/{wf}/resume")
    assert status == 200 and resumed["status"] == "active"
    for run_id in (waiting, held):
        run = await api.run_until(run_id, "completed")
        assert run["vars"] == {"done": True}
        assert [s["status"] for s in run["steps"]] == ["ok", "ok"]
    assert (await api.post(f"/v1/workflows/{wf}/resume"))[0] == 200  # idempotent


async def test_runs_finish_on_the_version_they_started_on(api: Api):
    definition = {
        "trigger": {"type": "event", "event": "go"},
        "settings": {"reentry": "always"},
        "steps": [{"id": "hold", "type": "wait_for_event", "config": {"event": "release"}},
                  {"id": "mark", "type": "set", "config": {"vars": {"version": "one"}}}]}
    workflow = await api.workflow(definition)
    old = (await api.send("go", "u1"))["runs_started"][0]
    await api.run_until(old, "waiting")
    definition["steps"][1]["config"]["vars"]["version"] = "two"
    status, updated = await api.put(f"/v1/workflows/{workflow['id']}", json={"name": "test", **definition})
    assert status == 200 and updated["version"] == 2
    new = (await api.send("go", "u2"))["runs_started"][0]
    await api.run_until(new, "waiting")
    await api.send("release", "u1")
    await api.send("release", "u2")
    old_run = await api.run_until(old, "completed")
    new_run = await api.run_until(new, "completed")
    assert old_run["workflow_version"] == 1 and old_run["vars"] == {"version": "one"}
    assert new_run["workflow_version"] == 2 and new_run["vars"] == {"version": "two"}
    _, versions = await api.get(f"/v1/workflows/{workflow['id']}/versions")
    assert [v["version"] for v in versions["data"]] == [2, 1]


async def test_cancel_retry_and_cancel_all(api: Api, sink: Sink):
    workflow = await api.workflow({
        "trigger": {"type": "manual"},
        "settings": {"reentry": "always"},
        "steps": [{"id": "call", "type": "webhook", "config": {"url": sink.url, "body": {"n": 1}},
                   "retry": {"max_attempts": 2, "backoff": "PT0.05S"}},
                  {"id": "hold", "type": "wait", "config": {"duration": "PT30S"}}]})
    wf = workflow["id"]
    sink.status = 500
    status, run = await api.post(f"/v1/workflows/{wf}/runs", json={"contact_id": "u1"})
    assert status == 201
    failed = await api.run_until(run["id"], "failed")
    assert [(s["step_id"], s["status"], s["attempt"]) for s in failed["steps"]] == [
        ("call", "failed", 1), ("call", "failed", 2)]
    assert failed["error"]["code"] == "http_status" and failed["error"]["step_id"] == "call"
    ids = {r["headers"]["webhook-id"] for r in sink.requests}
    assert len(ids) == 1  # the same delivery id across retries of one visit

    assert (await api.post(f"/v1/runs/{run['id']}/cancel"))[0] == 409  # failed is terminal
    sink.status = 200
    status, retried = await api.post(f"/v1/runs/{run['id']}/retry")
    assert status == 200 and retried["status"] in ("pending", "running", "waiting")
    waiting = await api.run_until(run["id"], "waiting")
    assert waiting["steps"][-2]["status"] == "ok" and waiting["error"] is None
    assert (await api.post(f"/v1/runs/{run['id']}/retry"))[0] == 409  # not failed any more

    status, cancelled = await api.post(f"/v1/runs/{run['id']}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    assert cancelled["current_step_id"] == "hold"
    assert (await api.post(f"/v1/runs/{run['id']}/cancel"))[0] == 200  # idempotent

    others = []
    for i in range(5):
        status, fired = await api.post(f"/v1/workflows/{wf}/runs", json={"contact_id": f"c{i}"})
        others.append(fired["id"])
    for run_id in others:
        await api.run_until(run_id, "waiting")
    status, body = await api.post(f"/v1/workflows/{wf}/runs/cancel-all")
    assert status == 200 and body == {"cancelled": 5}
    for run_id in others:
        assert (await api.run(run_id))["status"] == "cancelled"
    _, stats = await api.get("/v1/stats")
    assert stats["runs"]["cancelled"] == 6
    assert set(stats["runs"]) == {"pending", "running", "waiting", "paused", "completed", "failed", "cancelled"}


async def test_fire_follows_reentry_and_needs_an_active_workflow(api: Api):
    draft = await api.workflow({"steps": [{"id": "a", "type": "wait", "config": {"duration": "PT5S"}}]},
                               activate=False)
    status, body = await api.post(f"/v1/workflows/{draft['id']}/runs", json={"contact_id": "u1"})
    assert status == 409
    await api.post(f"/v1/workflows/{draft['id']}/activate")
    status, first = await api.post(f"/v1/workflows/{draft['id']}/runs",
                                   json={"contact_id": "u1", "payload": {"x": 1}})
    assert status == 201 and first["trigger"]["event"]["properties"] == {"x": 1}
    status, again = await api.post(f"/v1/workflows/{draft['id']}/runs", json={"contact_id": "u1"})
    assert status == 200 and again["id"] == first["id"]
    assert (await api.get("/v1/contacts/u1"))[0] == 200  # fired for an unknown contact: created


async def test_error_branch_and_on_error_continue(api: Api, sink: Sink):
    sink.status = 503
    await api.workflow({
        "trigger": {"type": "event", "event": "go"},
        "settings": {"reentry": "always"},
        "steps": [{"id": "call", "type": "http_request", "config": {"url": sink.url},
                   "next": {"error": "fallback"}},
                  {"id": "skip", "type": "set", "config": {"vars": {"wrong": True}}, "next": None},
                  {"id": "fallback", "type": "http_request", "config": {"url": sink.url},
                   "on_error": "continue"},
                  {"id": "end", "type": "set", "config": {"vars": {"status": "{{ steps.fallback.status }}"}}}]})
    run_id = (await api.send("go", "u1"))["runs_started"][0]
    run = await api.run_until(run_id, "completed", "failed")
    assert run["status"] == "completed", run
    assert [(s["step_id"], s["status"], s["branch"]) for s in run["steps"]] == [
        ("call", "failed", "error"), ("fallback", "failed", None), ("end", "ok", None)]
    assert run["vars"] == {"status": 503}


@pytest.fixture
def config(tmp_path):
    # Every scenario here works the same with the default limit of 10,000 steps; a lower one
    # keeps the runaway-loop test short.
    config = make_config(tmp_path)
    return dataclasses.replace(config, engine=dataclasses.replace(config.engine, max_steps_per_run=200))


async def test_the_step_limit_stops_a_runaway_loop(api: Api):
    # A loop through a zero-length wait is allowed by validation but must still end.
    await api.workflow({
        "trigger": {"type": "event", "event": "go"},
        "steps": [{"id": "tick", "type": "set", "config": {"vars": {"n": 1}}},
                  {"id": "wait", "type": "wait", "config": {"duration": "PT0S"}, "next": "tick"}]})
    run_id = (await api.send("go", "u1"))["runs_started"][0]
    run = await api.run_until(run_id, "failed", timeout=60)
    assert run["error"]["code"] == "step_limit"
    assert len(run["steps"]) == 200


async def test_deleting_a_contact_cancels_its_active_runs(api: Api):
    await api.workflow({"trigger": {"type": "event", "event": "go"},
                        "steps": [{"id": "hold", "type": "wait", "config": {"duration": "PT30S"}}]})
    mine = (await api.send("go", "u1"))["runs_started"][0]
    other = (await api.send("go", "u2"))["runs_started"][0]
    await api.run_until(mine, "waiting")
    assert (await api.delete("/v1/contacts/u1"))[0] == 204
    assert (await api.run(mine))["status"] == "cancelled"
    assert (await api.run(other))["status"] in ("pending", "running", "waiting")


async def test_events_without_a_contact_start_contact_less_runs(api: Api):
    await api.workflow({"trigger": {"type": "event", "event": "deploy.*"},
                        "steps": [{"id": "note", "type": "set",
                                   "config": {"vars": {"service": "{{ event.service }}"}}},
                                  {"id": "wait", "type": "wait_for_event",
                                   "config": {"event": "deploy.verified", "timeout": "PT5S",
                                              "filter": {"field": "event.properties.service",
                                                         "op": "eq", "value": "{{ vars.service }}"}}}]})
    run_id = (await api.send("deploy.started", properties={"service": "api"}))["runs_started"][0]
    run = await api.run_until(run_id, "waiting")
    assert run["contact_id"] is None and run["vars"] == {"service": "api"}
    assert (await api.send("deploy.verified", properties={"service": "web"}))["runs_resumed"] == []
    assert (await api.send("deploy.verified", properties={"service": "api"}))["runs_resumed"] == [run_id]
    assert (await api.run_until(run_id, "completed"))["steps"][-1]["branch"] == "event"


async def test_webhook_secret_rotation_signs_with_both_secrets(api: Api, sink: Sink):
    _, old = await api.get("/v1/settings/webhook-secret")
    assert old["secret"].startswith("whsec_")
    assert (await api.get("/v1/settings/webhook-secret"))[1] == old  # stable until rotated
    status, new = await api.post("/v1/settings/webhook-secret/rotate")
    assert status == 200 and new["secret"] != old["secret"]
    await api.workflow({"trigger": {"type": "event", "event": "go"},
                        "steps": [{"id": "call", "type": "webhook", "config": {"url": sink.url, "body": {}}}]})
    await api.run_until((await api.send("go", "u1"))["runs_started"][0], "completed")
    headers = {k.lower(): v for k, v in sink.requests[0]["headers"].items()}
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old["secret"], new["secret"]):
        Webhook(secret).verify(sink.requests[0]["body"], headers)
    viewer = await api.new_key("viewer")
    assert (await api.get("/v1/settings/webhook-secret", key=viewer))[0] == 403


async def test_more_runs_due_at_once_than_the_engine_has_slots(tmp_path, aiohttp_client):
    # With two slots, a burst of timers claims more runs than can execute: the rest must wait
    # their turn, not stay `running` forever.
    from flowd.app import create_app
    from tests.conftest import ADMIN_KEY

    config = make_config(tmp_path)
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine,
                                                                     max_concurrent_runs=2))
    api = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
    await api.workflow({"trigger": {"type": "event", "event": "go"},
                        "steps": [{"id": "wait", "type": "wait", "config": {"duration": "PT0.3S"}},
                                  {"id": "after", "type": "set", "config": {"vars": {"ok": True}}}]})
    _, body = await api.post("/v1/events", json={"batch": [
        {"name": "go", "contact_id": f"c{i}"} for i in range(30)]})

    async def all_completed() -> bool:
        _, stats = await api.get("/v1/stats")
        return stats["runs"]["completed"] == 30
    await eventually(all_completed, timeout=20)


async def test_a_wait_of_ten_thousand_years_ends_at_the_last_time_rfc_3339_can_write(api: Api):
    await api.workflow({"trigger": {"type": "event", "event": "go"},
                        "steps": [{"id": "w", "type": "wait",
                                   "config": {"duration": "P3650000D"}}]})
    run_id = (await api.send("go", "u1"))["runs_started"][0]
    run = await api.run_until(run_id, "waiting")
    assert run["wait"]["until"] == "9999-12-31T23:59:59.999Z"
