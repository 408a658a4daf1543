"""The Test tab: a time-travel dry run over days of waits, shown as a timeline by day, the
emails it would send and the path on the graph — and nothing written on the server."""

from __future__ import annotations

import json
import secrets
from typing import Any

from tests.browser.conftest import sign_in, unique


def test_a_dry_run_spans_days_and_writes_nothing(page: Any, flowd: Any) -> None:
    event = f"signup.{secrets.token_hex(4)}"
    created = flowd.post("/v1/workflows", {
        "name": unique("Dry run"),
        "trigger": {"type": "event", "event": event},
        "steps": [
            {"id": "hello", "type": "send_email",
             "config": {"subject": "Welcome {{ contact.email }}", "text": "Glad you came."}},
            {"id": "later", "type": "wait", "config": {"duration": "P3D"}},
            {"id": "clicked", "type": "wait_for_event",
             "config": {"event": "email.clicked", "timeout": "P2D"},
             "next": {"event": "thanks", "timeout": "nudge"}},
            {"id": "nudge", "type": "send_email",
             "config": {"subject": "Still there?", "text": "A reminder."}, "next": None},
            {"id": "thanks", "type": "set", "config": {"vars": {"clicked": True}}, "next": None},
        ],
    })
    assert created.status == 201, created.body
    workflow_id = created.body["id"]
    contact_id = f"dry-{secrets.token_hex(4)}"
    sign_in(page, flowd.key, f"#/workflows/{workflow_id}?tab=test")

    # The trigger's event name is the default; a contact that is not JSON is caught here.
    assert page.get_by_label("Event name").input_value() == event
    contact = page.get_by_label("Contact (JSON)")
    contact.fill('{"id": "oops"')
    page.get_by_role("button", name="Run test").click()
    page.wait_for_selector(".test-problems >> text=Fix these fields first")
    assert contact.get_attribute("aria-invalid") == "true"
    contact.fill(json.dumps({"id": contact_id, "email": "ada@example.com"}))

    # No event: the reminder goes out after the wait times out on day 5.
    page.get_by_role("button", name="Run test").click()
    timeline = page.locator(".test-timeline")
    timeline.wait_for()
    lines = timeline.locator("li").all_inner_texts()
    assert lines[0].startswith("day 0, 00:00: send_email hello — sent")
    assert any(line.startswith("day 3, 00:00: wait_for_event clicked — timeout → nudge")
               for line in lines), lines
    assert lines[-1].startswith("day 5, 00:00: send_email nudge — sent"), lines
    effects = page.locator(".test-effects > li")
    assert effects.count() == 2
    assert "Welcome ada@example.com" in effects.nth(0).inner_text()
    assert "day 5" in effects.nth(1).inner_text()
    assert page.locator(".test-summary .badge").inner_text() == "completed"
    graph = page.locator(".test-results .graph")
    assert "state-ok" in graph.locator('.graph-node[data-step-id="nudge"]').get_attribute("class")
    assert "state-" not in graph.locator('.graph-node[data-step-id="thanks"]').get_attribute("class")

    # The click arrives on day 4, while the run waits for it: no reminder.
    page.get_by_role("button", name="Add event").click()
    page.get_by_label("Event 1 arrives after").fill("P4D")
    assert page.get_by_label("Event 1 name").input_value() == "email.clicked"
    page.get_by_role("button", name="Run test").click()
    page.wait_for_selector(".test-timeline li >> text=event → thanks")
    assert page.locator(".test-effects > li").count() == 1

    # The server's own refusal (a horizon past P366D) shows with its field.
    page.get_by_label("Horizon").fill("P400D")
    page.get_by_role("button", name="Run test").click()
    page.wait_for_selector(".test-problems li >> text=horizon")

    # A dry run: no run, no message, no contact on the server.
    assert flowd.get(f"/v1/runs?workflow_id={workflow_id}").body["data"] == []
    assert flowd.get(f"/v1/messages?contact_id={contact_id}").body["data"] == []
    assert flowd.get(f"/v1/contacts/{contact_id}").status == 404
