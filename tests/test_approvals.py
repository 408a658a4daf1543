"""The approval step over HTTP: links that look without acting, exactly one decision, expiry,
the throttle on guessed tokens, forms and JSON, and deciding through the run's resume."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import eventually

APPROVAL_FLOW = {
    "trigger": {"type": "manual"},
    "steps": [
        {"id": "ask", "type": "approval",
         "config": {"approvers": ["boss@example.com", "deputy@example.com"],
                    "message": "Sign the {{ event.properties.contract }} contract?",
                    "expires": "P2D"},
         "next": {"approved": "yes", "rejected": "no", "expired": "late"}},
        {"id": "yes", "type": "set", "config": {"vars": {"result": "approved"}}, "next": None},
        {"id": "no", "type": "set", "config": {"vars": {"result": "rejected"}}, "next": None},
        {"id": "late", "type": "set", "config": {"vars": {"result": "expired"}}, "next": None},
    ],
}
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml"}


async def waiting_approval(api, flow: dict[str, Any] = APPROVAL_FLOW) -> tuple[dict, str]:
    """A run waiting at its approval, and the path of the link in the step's output."""
    workflow = await api.workflow(flow)
    status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs",
                                 json={"contact_id": "c1", "payload": {"contract": "ACME"}})
    assert status == 201, run
    run = await api.run_until(run["id"], "waiting")
    return run, urlsplit(run["steps"][-1]["output"]["approval_url"]).path


async def test_the_run_waits_with_an_absolute_link_in_its_output(api):
    run, path = await waiting_approval(api)
    assert run["wait"]["kind"] == "approval"
    assert run["wait"]["until"] is not None
    entry = run["steps"][-1]
    assert entry["status"] == "waiting"
    url = entry["output"]["approval_url"]
    assert url.startswith("http://") and path.startswith("/v1/approvals/")
    assert len(path.rsplit("/", 1)[1]) >= 43            # 256 bits, base64url
    assert entry["output"]["approvers"] == ["boss@example.com", "deputy@example.com"]


async def test_looking_never_decides(api):
    run, path = await waiting_approval(api)
    for i in range(20):
        status, page = await api.get(path, key=None, headers=HTML if i % 2 else JSON)
        assert status == 200
    status, shown = await api.get(path, key=None, headers=JSON)
    assert shown["status"] == "pending" and shown["decision"] is None
    assert shown["message"] == "Sign the ACME contract?"
    assert shown["contact_id"] == "c1" and shown["workflow_name"] == "test"
    status, page = await api.get(path, key=None, headers=HTML)
    assert "Sign the ACME contract?" in page and 'value="approved"' in page
    assert 'value="rejected"' in page and '<label for="comment">' in page
    assert (await api.run(run["id"]))["status"] == "waiting"


async def test_a_json_decision_goes_on_along_its_branch_once(api):
    run, path = await waiting_approval(api)
    status, decided = await api.post(path, key=None, json={"decision": "approved",
                                                          "comment": "fine by me"})
    assert status == 200, decided
    assert decided["status"] == "approved" and decided["decided_by"] == "link"
    done = await api.run_until(run["id"], "completed")
    assert done["vars"]["result"] == "approved"
    ask = next(e for e in done["steps"] if e["step_id"] == "ask")
    assert ask["branch"] == "approved"
    assert ask["output"]["decision"] == "approved"
    assert ask["output"]["comment"] == "fine by me"
    assert ask["output"]["decided_by"] == "link"
    status, again = await api.post(path, key=None, json={"decision": "rejected"})
    assert status == 409 and again["error"]["code"] == "conflict"


async def test_fifty_concurrent_decisions_have_exactly_one_winner(api):
    run, path = await waiting_approval(api)
    decisions = ["approved" if i % 2 else "rejected" for i in range(50)]
    answers = await asyncio.gather(*(api.post(path, key=None, json={"decision": d})
                                     for d in decisions))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [409] * 49
    winner = next(body for status, body in answers if status == 200)
    done = await api.run_until(run["id"], "completed")
    assert done["vars"]["result"] == winner["decision"]
    assert [e["step_id"] for e in done["steps"]].count("ask") == 1


async def test_the_page_form_decides_and_answers_with_a_page(api):
    run, path = await waiting_approval(api)
    status, page = await api.post(path, key=None, data={"decision": "rejected",
                                                        "comment": "<b>not now</b>"},
                                  headers=HTML)
    assert status == 200 and "rejected" in page and "<html" in page
    done = await api.run_until(run["id"], "completed")
    assert done["vars"]["result"] == "rejected"
    ask = next(e for e in done["steps"] if e["step_id"] == "ask")
    assert ask["output"]["comment"] == "<b>not now</b>"
    status, page = await api.post(path, key=None, data={"decision": "approved"}, headers=HTML)
    assert status == 409 and "Already decided" in page


async def test_a_bad_decision_is_refused(api):
    run, path = await waiting_approval(api)
    status, body = await api.post(path, key=None, json={"decision": "maybe"})
    assert status == 422 and body["error"]["details"][0]["path"] == "decision"
    status, body = await api.post(path, key=None, json={})
    assert status == 422
    assert (await api.run(run["id"]))["status"] == "waiting"


async def test_unknown_and_forged_tokens_are_404_and_guessing_is_throttled(api):
    run, path = await waiting_approval(api)
    token = path.rsplit("/", 1)[1]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    status, body = await api.get(f"/v1/approvals/{forged}", key=None, headers=JSON)
    assert status == 404
    status, body = await api.post(f"/v1/approvals/{forged}", key=None,
                                  json={"decision": "approved"})
    assert status == 404
    for i in range(18):
        status, _ = await api.get(f"/v1/approvals/guess{i}", key=None, headers=JSON)
        assert status == 404
    async with api.client.get("/v1/approvals/guess-more", headers=JSON) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "rate_limited"
    # Held back even with the right token, until the window ends; nothing was decided.
    status, _ = await api.post(path, key=None, json={"decision": "approved"})
    assert status == 429
    assert (await api.run(run["id"]))["status"] == "waiting"


async def test_after_expiry_the_run_goes_expired_and_a_decision_is_410(api):
    flow = {**APPROVAL_FLOW, "steps": [
        {**APPROVAL_FLOW["steps"][0], "config": {"message": "quick?", "expires": "PT0.3S"}},
        *APPROVAL_FLOW["steps"][1:]]}
    run, path = await waiting_approval(api, flow)
    done = await api.run_until(run["id"], "completed")
    assert done["vars"]["result"] == "expired"
    ask = next(e for e in done["steps"] if e["step_id"] == "ask")
    assert ask["branch"] == "expired" and ask["output"]["decision"] == "expired"
    status, body = await api.post(path, key=None, json={"decision": "approved"})
    assert status == 410, body
    status, shown = await api.get(path, key=None, headers=JSON)
    assert shown["status"] == "expired"


async def test_a_cancelled_run_cannot_be_decided(api):
    run, path = await waiting_approval(api)
    status, _ = await api.post(f"/v1/runs/{run['id']}/cancel")
    assert status == 200
    status, body = await api.post(path, key=None, json={"decision": "approved"})
    assert status == 410, body
    status, shown = await api.get(path, key=None, headers=JSON)
    assert shown["status"] == "pending"   # nothing was recorded


async def test_an_editor_decides_through_resume(api):
    run, path = await waiting_approval(api)
    viewer = await api.new_key("viewer")
    status, _ = await api.post(f"/v1/runs/{run['id']}/resume", key=viewer,
                               json={"decision": "approved"})
    assert status == 403
    status, body = await api.post(f"/v1/runs/{run['id']}/resume",
                                  json={"decision": "rejected", "data": {"comment": "no budget",
                                                                         "ticket": 7}})
    assert status == 200, body
    done = await api.run_until(run["id"], "completed")
    ask = next(e for e in done["steps"] if e["step_id"] == "ask")
    assert ask["output"]["decision"] == "rejected"
    assert ask["output"]["comment"] == "no budget"
    assert ask["output"]["data"] == {"comment": "no budget", "ticket": 7}
    assert ask["output"]["decided_by"].startswith("key:")
    status, body = await api.post(f"/v1/runs/{run['id']}/resume", json={"decision": "approved"})
    assert status == 409


async def test_resume_with_a_decision_needs_an_approval_wait(api):
    workflow = await api.workflow({"trigger": {"type": "manual"}, "steps": [
        {"id": "w", "type": "wait", "config": {"duration": "P1D"}}]})
    status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs", json={})
    await api.run_until(run["id"], "waiting")
    status, body = await api.post(f"/v1/runs/{run['id']}/resume", json={"decision": "approved"})
    assert status == 409 and "not waiting for an approval: it is waiting (timer)" in body["error"]["message"]


async def test_approvers_are_emailed_their_own_links(api):
    run, _ = await waiting_approval(api)

    async def mails() -> list[dict[str, Any]]:
        status, page = await api.get("/v1/messages?channel=email")
        return [m for m in page["data"] if m["status"] == "sent"]

    sent = await eventually(lambda: _two(mails))
    assert sorted(m["to"][0] if isinstance(m["to"], list) else m["to"] for m in sent) == [
        "boss@example.com", "deputy@example.com"]
    status, detail = await api.get(f"/v1/messages/{sent[0]['id']}")
    link = re.search(r"http://\S+/v1/approvals/\S+", detail["text"]).group(0)
    status, shown = await api.get(urlsplit(link).path, key=None, headers=JSON)
    assert status == 200 and shown["approver"] in ("boss@example.com", "deputy@example.com")
    status, decided = await api.post(urlsplit(link).path, key=None,
                                     json={"decision": "approved"})
    assert decided["decided_by"] == shown["approver"]
    done = await api.run_until(run["id"], "completed")
    assert next(e for e in done["steps"] if e["step_id"] == "ask")["output"][
        "decided_by"] == shown["approver"]


async def _two(mails) -> list[dict[str, Any]] | None:
    found = await mails()
    return found if len(found) == 2 else None
