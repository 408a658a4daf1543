"""Time-travel test runs: days of waits in one call, events at their virtual times, canned
answers that drive branches — and nothing written, sent or called."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from tests.conftest import Api

DAY = timedelta(days=1)


def journey(sink_url: str) -> dict[str, Any]:
    """30 days: an email, a wait, a click wait, a lookup whose answer picks a branch, a
    webhook whose 500 takes its error branch, a long wait, the end."""
    return {
        "name": "Onboarding", "trigger": {"type": "manual"},
        "steps": [
            {"id": "hello", "type": "send_email",
             "config": {"subject": "Hi {{ contact.traits.first_name }}", "text": "Welcome!"}},
            {"id": "pause", "type": "wait", "config": {"duration": "P3D"}},
            {"id": "clicked", "type": "wait_for_event",
             "config": {"event": "email.clicked", "timeout": "P5D"},
             "next": {"event": "lookup", "timeout": "nudge"}},
            {"id": "nudge", "type": "set", "config": {"vars": {"nudged": True}}, "next": None},
            {"id": "lookup", "type": "http_request",
             "config": {"url": sink_url + "/crm", "method": "GET"}},
            {"id": "vip", "type": "condition",
             "config": {"if": {"field": "steps.lookup.body.vip", "op": "eq", "value": True}},
             "next": {"yes": "tell_sales", "no": None}},
            {"id": "tell_sales", "type": "webhook",
             "config": {"url": sink_url + "/sales", "body": {"who": "{{ contact.id }}"}},
             "next": {"error": "later", "default": "later"}},
            {"id": "later", "type": "wait", "config": {"duration": "P20D"}},
            {"id": "done", "type": "set", "config": {"vars": {"finished": True}}},
        ],
    }


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _row_counts(path: str) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        tables = [n for (n,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        conn.close()


async def test_thirty_days_pass_in_one_call_and_nothing_is_written_or_sent(api: Api, sink, config):
    workflow = await api.workflow(journey(sink.url))
    before = _row_counts(config.storage.path)
    status, result = await api.post(f"/v1/workflows/{workflow['id']}/test-run", json={
        "contact": {"id": "ada", "email": "ada@example.com", "traits": {"first_name": "Ada"}},
        "events": [{"after": "P4D", "name": "email.clicked", "properties": {"url": "x"}}],
        "responses": {"lookup": {"status": 200, "body": {"vip": True}},
                      "tell_sales": {"status": 500, "body": {"error": "down"}}},
        "horizon": "P60D"})
    assert status == 200, result
    assert result["status"] == "completed" and result["stopped"] is None
    steps = [e["step_id"] for e in result["trace"]]
    assert steps == ["hello", "pause", "clicked", "lookup", "vip", "tell_sales", "later", "done"]
    by_step = {e["step_id"]: e for e in result["trace"]}
    start = _at(by_step["hello"]["at"])
    assert _at(by_step["pause"]["finished_at"]) - start == 3 * DAY
    assert _at(by_step["clicked"]["finished_at"]) - start == 4 * DAY      # the event's time
    assert by_step["clicked"]["branch"] == "event"
    assert by_step["vip"]["branch"] == "yes"
    assert by_step["tell_sales"]["status"] == "failed"
    assert by_step["tell_sales"]["branch"] == "error"
    assert _at(result["ends_at"]) - start == 24 * DAY
    assert result["run"]["vars"] == {"finished": True}

    kinds = [(e["kind"], e["step_id"]) for e in result["effects"]]
    assert kinds == [("email", "hello"), ("http_request", "lookup"), ("webhook", "tell_sales")]
    email = result["effects"][0]
    assert email["to"] == ["ada@example.com"] and email["subject"] == "Hi Ada"
    assert _at(result["effects"][2]["at"]) - start == 4 * DAY
    assert '"who":"ada"' in result["effects"][2]["body"].replace(" ", "")

    assert sink.requests == []
    assert _row_counts(config.storage.path) == before


async def test_the_horizon_stops_a_waiting_run(api: Api, sink):
    workflow = await api.workflow(journey(sink.url))
    status, result = await api.post(f"/v1/workflows/{workflow['id']}/test-run",
                                    json={"horizon": "P2D"})
    assert status == 200, result
    assert result["status"] == "waiting"
    assert result["run"]["current_step_id"] == "pause"
    start = _at(result["trace"][0]["at"])
    assert _at(result["ends_at"]) - start == 2 * DAY
    # Without an address the email is suppressed, as it would be for real.
    assert result["effects"][0]["status"] == "suppressed"


async def test_an_unsaved_definition_can_be_tested(api: Api, sink):
    status, result = await api.post("/v1/workflows/test-run", json={
        "definition": {"name": "draft", "steps": [
            {"id": "w", "type": "wait", "config": {"duration": "PT2H"}},
            {"id": "s", "type": "set", "config": {"vars": {"x": "{{ event.properties.n }}"}}}]},
        "event": {"properties": {"n": 7}}})
    assert status == 200, result
    assert result["status"] == "completed" and result["run"]["vars"] == {"x": 7}
    status, page = await api.get("/v1/workflows")
    assert page["data"] == []


async def test_bad_requests_are_refused(api: Api, sink):
    workflow = await api.workflow(journey(sink.url))
    path = f"/v1/workflows/{workflow['id']}/test-run"
    status, body = await api.post(path, json={"horizon": "P400D"})
    assert status == 422 and body["error"]["details"][0]["path"] == "horizon"
    status, body = await api.post(path, json={"events": [{"after": "soon", "name": "x"}]})
    assert status == 422 and body["error"]["details"][0]["path"] == "events[0].after"
    status, body = await api.post("/v1/workflows/test-run", json={"definition": {
        "name": "broken", "steps": [{"id": "a", "type": "wait", "config": {}}]}})
    assert status == 422 and body["error"]["details"][0]["code"] == "missing_config"
    status, body = await api.post("/v1/workflows/wf_nope/test-run", json={})
    assert status == 404


async def test_a_loop_that_never_ends_stops_at_the_step_cap(api: Api):
    status, result = await api.post("/v1/workflows/test-run", json={"definition": {
        "name": "busy", "steps": [
            {"id": "l", "type": "loop", "config": {"items": list(range(5000)),
                                                   "max_items": 10000},
             "next": {"each": "b", "done": None}},
            {"id": "b", "type": "set", "config": {"vars": {"i": "{{ loop.index }}"}},
             "next": "l"}]}})
    assert status == 200, result
    assert result["status"] == "failed"
    assert result["run"]["error"]["code"] == "step_limit"
