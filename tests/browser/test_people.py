"""What flowd did to one person: the contact page lists their events, runs and messages, and
the events and messages lists filter by what the API supports."""

from __future__ import annotations

import secrets
import time
import urllib.parse

from tests.browser.conftest import unique


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def test_contact_page_events_and_messages(admin_page, flowd):
    page = admin_page
    tag = secrets.token_hex(3)
    contact, event = f"person-{tag}", f"people.signed_up.{tag}"
    workflow = flowd.post("/v1/workflows", {
        "name": unique("people welcome"), "status": "active",
        "trigger": {"type": "event", "event": event},
        "steps": [{"id": "hello", "type": "send_email",
                   "config": {"subject": "Hello {{ contact.traits.first }}",
                              "text": "Welcome aboard, <b>{{ contact.traits.first }}</b>.",
                              "html": "<p>Welcome <a href=\"https://example.com/start\">aboard</a></p>"}}],
    })
    assert workflow.status == 201, workflow.body
    wf_id = workflow.body["id"]
    posted = flowd.post("/v1/events", {"name": event, "contact_id": contact,
                                       "properties": {"plan": "pro"},
                                       "contact": {"email": f"{tag}@example.com",
                                                   "traits": {"first": "Ada"}}})
    assert posted.status == 202 and len(posted.body["runs_started"]) == 1
    run_id = posted.body["runs_started"][0]
    deadline = time.monotonic() + 10
    while True:   # the run sends in the background; wait until the server recorded the message
        messages = flowd.get(f"/v1/messages?contact_id={_q(contact)}").body["data"]
        if messages and messages[0]["status"] != "sending":
            break
        assert time.monotonic() < deadline, messages
        time.sleep(0.05)
    message = messages[0]
    assert (message["status"], message["subject"]) == ("sent", "Hello Ada")

    page.goto(f"/#/contacts/{_q(contact)}")
    for section in ("events", "runs", "messages"):
        page.wait_for_selector(f".contact-{section} [data-count='1']")
    assert event in page.locator(".contact-events tbody").inner_text()
    run_link = page.locator(".contact-runs tbody a").first
    assert run_link.inner_text() == run_id
    assert run_link.get_attribute("href") == f"#/workflows/{wf_id}/runs/{run_id}"
    assert "Hello Ada" in page.locator(".contact-messages tbody").inner_text()
    assert "Ada" in page.locator("dl.traits").inner_text()

    # The events list filters through its form (the filter lands in the hash).
    page.goto("/#/events")
    page.wait_for_selector("main[data-view=events] [data-count]")
    page.get_by_label("Event name (exact)").fill(event)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(f"**/#/events?name={_q(event)}")
    page.wait_for_selector("main[data-view=events] [data-count='1']")
    assert page.locator("main tbody tr td").first.inner_text() == event

    # Messages: the contact's sent email is listed; a status it does not have lists nothing.
    page.goto(f"/#/messages?contact_id={_q(contact)}")
    page.wait_for_selector("main[data-view=messages] [data-count='1']")
    assert page.locator("main tbody .badge").inner_text() == "sent"
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("No messages match.").wait_for()
    assert flowd.get(f"/v1/messages?contact_id={_q(contact)}&status=failed").body["data"] == []

    # The message itself: its text as text, markup included.
    page.goto(f"/#/messages/{message['id']}")
    page.wait_for_selector("main[data-view=message] pre.message-text")
    assert page.locator("pre.message-text").inner_text() == "Welcome aboard, <b>Ada</b>."
    html = page.locator("pre.message-html").inner_text()
    assert html.startswith("<p>Welcome <a href=")   # the source, links as sent (tracked)
    assert page.locator("main b, main p a[href^='http']").count() == 0
    page.wait_for_selector(f"main a[href='#/workflows/{wf_id}/runs/{run_id}']")
