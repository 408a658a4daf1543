"""Email end to end: workflows and the transactional API send through a real SMTP server
(aiosmtpd on 127.0.0.1), and what comes back — bounces, unsubscribes, opens, clicks — flows in
as events."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from flowd.config import EmailConfig
from tests.conftest import Api, eventually, make_config
from tests.mail_server import MailServer, Received

PUBLIC = "https://flowd.example.com"


@pytest.fixture
def smtp():
    with MailServer() as server:
        yield server


@pytest.fixture
def config(tmp_path, smtp):
    base = make_config(tmp_path)
    return dataclasses.replace(
        base, server=dataclasses.replace(base.server, public_url=PUBLIC),
        email=EmailConfig(provider="smtp", host="127.0.0.1", port=smtp.port, timeout_seconds=5,
                          connections=2, sender="Acme <news@acme.example>"))


async def _journey(api: Api, steps: list[dict[str, Any]], **contact: Any) -> dict[str, Any]:
    """A workflow of `steps` on `go`, run once for contact u1; the finished run."""
    await api.workflow({"trigger": {"type": "event", "event": "go"}, "steps": steps})
    result = await api.send("go", "u1", contact=contact or {"email": "ada@example.com"})
    [run_id] = result["runs_started"]
    return await api.run_until(run_id, "completed", "failed")


def _link(html: str, path: str) -> str:
    match = re.search(rf'{re.escape(PUBLIC)}(/v1/{path}/[^"\'\s>]+)', html)
    assert match, html
    return match.group(1)


def _parts(received: Received) -> dict[str, str]:
    message = received.message
    return {part.get_content_type(): part.get_content() for part in message.walk()
            if part.get_content_maintype() == "text"}


async def test_an_inline_email_goes_out_once_with_its_headers_and_record(api: Api, smtp):
    run = await _journey(api, [{"id": "hello", "type": "send_email", "config": {
        "subject": "Hi {{ contact.traits.first_name }}",
        "html": '<p>Welcome, {{ contact.traits.first_name }}! <a href="https://acme.example/start?a=1&amp;b=2">Start</a></p>',
        "text": "Welcome, {{ contact.traits.first_name }}!"}}],
        email="ada@example.com", traits={"first_name": "Ada"})
    assert run["status"] == "completed", run
    [received] = await smtp.arrived(1)
    message = received.message
    assert received.recipients == ["ada@example.com"]
    assert received.sender == "news@acme.example"
    assert message["From"] == "Acme <news@acme.example>"
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Hi Ada"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]

    output = run["steps"][0]["output"]
    assert output["status"] == "sent"
    message_id = output["message_id"]
    assert message["Message-ID"] == f"<{message_id}@acme.example>"
    assert message["List-Unsubscribe"].strip().startswith(f"<{PUBLIC}/v1/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    parts = _parts(received)
    assert parts["text/plain"].strip() == "Welcome, Ada!"
    html = parts["text/html"]
    assert "https://acme.example/start" not in html        # rewritten for click tracking
    assert _link(html, "t/c") and _link(html, "t/o")

    status, record = await api.get(f"/v1/messages/{message_id}")
    assert status == 200, record
    assert record["status"] == "sent" and record["channel"] == "email"
    assert record["to"] == "ada@example.com" and record["subject"] == "Hi Ada"
    assert record["provider_message_id"] == "Q00001"
    assert record["run_id"] == run["id"] and record["step_id"] == "hello"
    assert record["sent_at"] and record["body"].strip() == "Welcome, Ada!"
    assert record["html"] == html
    status, page = await api.get(f"/v1/messages?run_id={run['id']}")
    assert [m["id"] for m in page["data"]] == [message_id]


async def test_a_template_by_name_with_non_ascii_subject_and_sender(api: Api, smtp):
    status, template = await api.post("/v1/templates", json={
        "name": "welcome", "channel": "email",
        "subject": "Grüße, {{ contact.traits.first_name | default: \"du\" }} ✓",
        "text": "Hallo {{ contact.traits.first_name }}"})
    assert status == 201, template
    run = await _journey(api, [{"id": "s1", "type": "send_email", "config": {
        "template": "welcome", "from": "Zoë Müller <zoe@acme.example>",
        "reply_to": "help@acme.example"}}],
        email="jo@example.com", traits={"first_name": "Jörg"})
    assert run["status"] == "completed", run
    [received] = await smtp.arrived(1)
    message = received.message
    assert message["Subject"] == "Grüße, Jörg ✓"
    raw_headers = received.raw.split(b"\r\n\r\n")[0]
    assert b"=?utf-8?" in raw_headers.lower()                # RFC 2047, not raw UTF-8
    assert message["From"].addresses[0].display_name == "Zoë Müller"
    assert message["Reply-To"] == "help@acme.example"
    assert message.get_content_type() == "text/plain"        # no html: no alternative
    assert message.get_content().strip() == "Hallo Jörg"


async def test_values_are_escaped_in_html_and_left_alone_in_text(api: Api, smtp):
    run = await _journey(api, [{"id": "s1", "type": "send_email", "config": {
        "subject": "For {{ contact.traits.nick }}",
        "html": "<p>{{ contact.traits.nick }}</p>", "text": "{{ contact.traits.nick }}"}}],
        email="x@example.com", traits={"nick": "<script>alert(1)</script>"})
    assert run["status"] == "completed", run
    [received] = await smtp.arrived(1)
    parts = _parts(received)
    assert "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" in parts["text/html"]
    assert "<script>" not in parts["text/html"]
    assert parts["text/plain"].strip() == "<script>alert(1)</script>"
    assert received.message["Subject"] == "For <script>alert(1)</script>"


@pytest.mark.parametrize("contact, reason", [
    ({"email": "u@example.com", "subscribed": {"email": False, "sms": True, "push": True}},
     "unsubscribed"),
    ({"traits": {"name": "no address"}}, "no_address"),
])
async def test_suppressed_emails_are_recorded_not_sent(api: Api, smtp, contact, reason):
    run = await _journey(api, [
        {"id": "s1", "type": "send_email", "config": {"subject": "Hi", "text": "Hello"}},
        {"id": "after", "type": "set", "config": {"vars": {"went_on": True}}}], **contact)
    assert run["status"] == "completed", run
    first = run["steps"][0]
    assert first["branch"] == "suppressed"
    assert first["output"]["status"] == "suppressed" and first["output"]["reason"] == reason
    assert run["steps"][1]["step_id"] == "after"      # an unmapped `suppressed` goes on
    _, record = await api.get(f"/v1/messages/{first['output']['message_id']}")
    assert record["status"] == "suppressed" and record["error"]["code"] == reason
    assert smtp.messages == []


async def test_suppressed_branch_is_taken_when_mapped(api: Api, smtp):
    run = await _journey(api, [
        {"id": "s1", "type": "send_email", "config": {"subject": "Hi", "text": "Hello"},
         "next": {"suppressed": "sms_instead"}},
        {"id": "normal", "type": "set", "config": {"vars": {"path": "normal"}}, "next": None},
        {"id": "sms_instead", "type": "set", "config": {"vars": {"path": "fallback"}}}],
        traits={"no": "email"})
    assert [s["step_id"] for s in run["steps"]] == ["s1", "sms_instead"]


async def test_a_550_marks_the_address_bounced_and_later_sends_are_suppressed(api: Api, smtp):
    smtp.refuse("gone@example.com", "550 5.1.1 <gone@example.com>: no such user")
    await api.workflow({"trigger": {"type": "event", "event": "go"}, "settings": {
        "reentry": "always"}, "steps": [
        {"id": "s1", "type": "send_email", "config": {"subject": "Hi", "text": "Hello"},
         "next": {"error": "handle"}},
        {"id": "ok", "type": "set", "config": {"vars": {"x": 1}}, "next": None},
        {"id": "handle", "type": "set", "config": {"vars": {"bounced": True}}}]})
    await api.workflow({"name": "bounces", "trigger": {"type": "event", "event": "email.bounced"},
                        "steps": [{"id": "b", "type": "set", "config": {
                            "vars": {"address": "{{ event.address }}"}}}]})
    result = await api.send("go", "u1", contact={"email": "gone@example.com"})
    run = await api.run_until(result["runs_started"][0], "completed", "failed")
    assert [s["step_id"] for s in run["steps"]] == ["s1", "handle"], run
    assert run["steps"][0]["error"]["code"] == "bounced"
    _, record = await api.get("/v1/messages?contact_id=u1&status=bounced")
    [bounced] = record["data"]
    assert "no such user" in bounced["error"]["message"]

    _, events = await api.get("/v1/events?name=email.bounced")
    [event] = events["data"]
    assert event["contact_id"] == "u1"
    assert event["properties"]["address"] == "gone@example.com"
    assert event["properties"]["message_id"] == bounced["id"]

    # The next email to that address is suppressed before any SMTP transaction.
    ehlos = smtp.ehlos
    again = await api.send("go", "u1")
    run = await api.run_until(again["runs_started"][0], "completed", "failed")
    assert run["steps"][0]["output"]["reason"] == "bounced"
    assert smtp.messages == [] and smtp.ehlos == ehlos


async def test_a_451_fails_the_attempt_and_the_retry_sends_it(api: Api, smtp):
    smtp.refuse("slow@example.com", "451 4.7.1 greylisted, try again")
    await api.workflow({"trigger": {"type": "event", "event": "go"}, "steps": [
        {"id": "s1", "type": "send_email", "config": {"subject": "Hi", "text": "Hello"},
         "retry": {"max_attempts": 5, "backoff": "PT0.1S"}}]})
    result = await api.send("go", "u1", contact={"email": "slow@example.com"})
    run_id = result["runs_started"][0]

    async def attempted_twice() -> bool:
        run = await api.run(run_id)
        return sum(s["error"] is not None and s["error"]["code"] == "smtp_temporary"
                   for s in run["steps"]) >= 2

    await eventually(attempted_twice)
    smtp.refuse("slow@example.com", "")             # greylisting over: accept
    run = await api.run_until(run_id, "completed", "failed")
    assert run["status"] == "completed", run
    [received] = await smtp.arrived(1)
    assert run["steps"][-1]["output"]["status"] == "sent"
    assert len({s["input"]["subject"] for s in run["steps"]}) == 1
    _, bounces = await api.get("/v1/events?name=email.bounced")
    assert bounces["data"] == []


async def test_unsubscribe_get_changes_nothing_and_post_unsubscribes_once(api: Api, smtp):
    run = await _journey(api, [{"id": "s1", "type": "send_email", "config": {
        "subject": "News", "html": "<p>News</p>"}}])
    [received] = await smtp.arrived(1)
    link = received.message["List-Unsubscribe"].strip().strip("<>")
    assert link.startswith(PUBLIC)
    path = urlsplit(link).path

    status, page = await api.get(path, key=None)
    assert status == 200 and "<form" in page and 'method="post"' in page
    _, contact = await api.get("/v1/contacts/u1")
    assert contact["subscribed"]["email"] is True

    # RFC 8058: what a mailbox provider posts, with no API key.
    for _ in range(2):
        status, page = await api.post(path, key=None, data="List-Unsubscribe=One-Click",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200 and "unsubscribed" in page
    _, contact = await api.get("/v1/contacts/u1")
    assert contact["subscribed"] == {"email": False, "sms": True, "push": True}
    _, events = await api.get("/v1/events?name=contact.unsubscribed")
    [event] = events["data"]                                  # once, not per POST
    assert event["contact_id"] == "u1" and event["properties"] == {"channel": "email"}
    assert run["status"] == "completed"


async def test_unsubscribe_tokens_cannot_be_forged_or_guessed(api: Api, smtp):
    await _journey(api, [{"id": "s1", "type": "send_email", "config": {
        "subject": "News", "text": "News"}}])
    [received] = await smtp.arrived(1)
    token = received.message["List-Unsubscribe"].strip().strip("<>").rsplit("/", 1)[1]
    assert len(token) >= 32
    forged = [token[:-1] + ("A" if token[-1] != "A" else "B"), token[:-2], "x" * len(token),
              token + "A", "..", "%2e%2e"]
    for bad in forged:
        for method in ("GET", "POST"):
            status, body = await api.request(method, f"/v1/unsubscribe/{bad}", key=None)
            assert status == 404, (bad, method, body)
            assert body["error"]["code"] == "not_found"
    _, contact = await api.get("/v1/contacts/u1")
    assert contact["subscribed"]["email"] is True


async def test_opens_and_clicks_are_events_and_clicks_only_go_to_their_own_link(api: Api, smtp):
    await api.workflow({"name": "engaged", "trigger": {"type": "event", "event": "go"}, "steps": [
        {"id": "mail", "type": "send_email", "config": {
            "subject": "Offer", "html": '<a href="https://shop.example/offer?x=1&amp;y=2">Buy</a> '
                                        "<a href='http://shop.example/two'>Two</a>"}},
        {"id": "wait", "type": "wait_for_event", "config": {
            "event": "email.clicked", "timeout": "PT30S"}},
    ]})
    result = await api.send("go", "u1", contact={"email": "c@example.com"})
    run_id = result["runs_started"][0]
    await api.run_until(run_id, "waiting")
    [received] = await smtp.arrived(1)
    html = _parts(received)["text/html"]
    clicks = re.findall(rf"{re.escape(PUBLIC)}(/v1/t/c/[^\"'\s>]+)", html)
    assert len(clicks) == 2

    resp = await api.client.get(_link(html, "t/o"), allow_redirects=False)
    assert resp.status == 200 and resp.content_type == "image/gif"
    assert (await resp.read()).startswith(b"GIF89a")

    resp = await api.client.get(clicks[0], allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "https://shop.example/offer?x=1&y=2"
    resp = await api.client.get(clicks[1], allow_redirects=False)
    assert resp.headers["Location"] == "http://shop.example/two"

    run = await api.run_until(run_id, "completed", "failed")
    matched = run["steps"][1]["output"]
    assert matched["name"] == "email.clicked"
    assert matched["properties"]["url"] == "https://shop.example/offer?x=1&y=2"
    assert matched["properties"]["message_id"] == run["steps"][0]["output"]["message_id"]
    assert matched["properties"]["workflow_id"] == run["workflow_id"]
    assert matched["properties"]["step_id"] == "mail"
    _, opened = await api.get("/v1/events?name=email.opened")
    assert len(opened["data"]) == 1 and opened["data"][0]["contact_id"] == "u1"

    # Altered tokens: another index, another message, a changed MAC, a URL smuggled in.
    token = clicks[0].rsplit("/", 1)[1]
    message_id, index, mac = token.split(".")
    altered = [f"{message_id}.5.{mac}", f"{message_id}.1.{mac}", f"msg_other.0.{mac}",
               f"{message_id}.0.{mac[:5]}{'B' if mac[5] == 'A' else 'A'}{mac[6:]}", f"{message_id}.0", "https:%2F%2Fevil.example",
               f"{message_id}.00.{mac}"]
    for bad in altered:
        resp = await api.client.get(f"/v1/t/c/{bad}", allow_redirects=False)
        assert resp.status == 404, bad
        assert "Location" not in resp.headers
    resp = await api.client.get(f"/v1/t/o/{message_id}.{mac}", allow_redirects=False)
    assert resp.status == 404                      # a click token's MAC is not an open's


async def test_transactional_send_with_cc_bcc_and_attachments(api: Api, smtp):
    import base64
    pdf = b"%PDF-1.4 receipt \x00\xff"
    status, body = await api.post("/v1/messages/email", json={
        "to": ["buyer@example.com"], "cc": ["boss@example.com"], "bcc": ["audit@example.com"],
        "subject": "Your receipt", "text": "Attached.", "html": "<p>Attached.</p>",
        "attachments": [{"filename": "receipt.pdf", "content": base64.b64encode(pdf).decode(),
                         "content_type": "application/pdf"}]})
    assert status == 202, body
    assert body["status"] == "sending"
    assert body["accepted"] == ["buyer@example.com", "boss@example.com", "audit@example.com"]
    assert body["rejected"] == {}
    [received] = await smtp.arrived(1)
    assert sorted(received.recipients) == ["audit@example.com", "boss@example.com",
                                           "buyer@example.com"]
    message = received.message
    assert message["Cc"] == "boss@example.com" and message["Bcc"] is None
    assert message.get_content_type() == "multipart/mixed"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "receipt.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf

    async def sent() -> dict[str, Any] | None:
        _, record = await api.get(f"/v1/messages/{body['id']}")
        return record if record["status"] == "sent" else None
    record = await eventually(sent)
    assert record["run_id"] is None and record["to"] == "buyer@example.com"


@pytest.mark.parametrize("change, path, code", [
    ({"attachments": [{"filename": "run.exe", "content": "TVo=",
                       "content_type": "application/octet-stream"}]},
     "attachments[0].filename", "forbidden_attachment"),
    ({"attachments": [{"filename": "a.pdf", "content": "not base64!",
                       "content_type": "application/pdf"}]},
     "attachments[0].content", "invalid_base64"),
    ({"attachments": [{"filename": "a.pdf", "content": "TVo=", "content_type": "pdf"}]},
     "attachments[0].content_type", None),
    ({"attachments": [{"filename": "../../etc/passwd", "content": "TVo=",
                       "content_type": "text/plain"}]}, "attachments[0].filename", None),
    ({"to": "not an address"}, "to", None),
    ({"text": None, "html": None}, "html", "missing_body"),
    ({"bogus": 1}, "bogus", None),
])
async def test_transactional_send_refuses_bad_input_and_records_nothing(
        api: Api, smtp, change, path, code):
    body = {"to": "a@example.com", "subject": "S", "text": "T", **change}
    body = {k: v for k, v in body.items() if v is not None}
    status, error = await api.post("/v1/messages/email", json=body)
    assert status == 422, error
    problems = {d["path"]: d for d in error["error"]["details"]}
    assert path in problems, problems
    if code:
        assert problems[path]["code"] == code
    _, page = await api.get("/v1/messages")
    assert page["data"] == []


async def test_transactional_send_over_the_body_limit_is_413(api: Api, smtp):
    import base64
    big = base64.b64encode(b"x" * 900_000).decode()
    status, error = await api.post("/v1/messages/email", json={
        "to": "a@example.com", "subject": "S", "text": "T",
        "attachments": [{"filename": "big.bin", "content": big,
                         "content_type": "application/octet-stream"}]})
    assert status == 413 and error["error"]["code"] == "payload_too_large"


async def test_transactional_send_to_a_bounced_address_is_rejected_for_it(api: Api, smtp):
    smtp.refuse("gone@example.com", "550 5.1.1 no such user")
    status, first = await api.post("/v1/messages/email", json={
        "to": ["gone@example.com", "ok@example.com"], "subject": "S", "text": "T"})
    assert status == 202

    async def finished() -> dict[str, Any] | None:
        _, record = await api.get(f"/v1/messages/{first['id']}")
        return record if record["status"] != "sending" else None
    record = await eventually(finished)
    assert record["status"] == "sent" and record["error"]["code"] == "partly_bounced"
    status, second = await api.post("/v1/messages/email", json={
        "to": ["gone@example.com", "ok@example.com"], "subject": "S", "text": "T"})
    assert second["accepted"] == ["ok@example.com"]
    assert list(second["rejected"]) == ["gone@example.com"]
    await smtp.arrived(2)
    assert smtp.messages[1].recipients == ["ok@example.com"]


async def test_starttls_with_the_operators_ca_file(aiohttp_client, tmp_path):
    """[email] starttls with ca_file: the server's certificate (made here, for 127.0.0.1) is
    verified against the operator's CA, and the message travels encrypted."""
    import ssl

    import trustme

    from flowd.app import create_app
    from tests.conftest import ADMIN_KEY

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with MailServer(tls_context=server_context, require_starttls=True) as smtp:
        config = dataclasses.replace(make_config(tmp_path), email=EmailConfig(
            provider="smtp", host="127.0.0.1", port=smtp.port, starttls=True,
            ca_file=str(tmp_path / "ca.pem"), timeout_seconds=5))
        api = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
        status, sent = await api.post("/v1/messages/email", json={
            "to": "tls@example.com", "subject": "Encrypted", "text": "yes"})
        assert status == 202, sent
        [received] = await smtp.arrived(1)
        assert received.tls and received.message["Subject"] == "Encrypted"


async def test_the_outbox_records_and_sends_nothing(aiohttp_client, tmp_path, smtp):
    from flowd.app import create_app
    from tests.conftest import ADMIN_KEY

    api = Api(await aiohttp_client(create_app(make_config(tmp_path), admin_key=ADMIN_KEY)))
    run = await _journey(api, [{"id": "s1", "type": "send_email", "config": {
        "subject": "Kept here", "html": "<p>Hi</p>"}}])
    assert run["status"] == "completed", run
    output = run["steps"][0]["output"]
    _, record = await api.get(f"/v1/messages/{output['message_id']}")
    assert record["status"] == "sent" and record["subject"] == "Kept here"
    assert record["provider_message_id"] == f"<{output['message_id']}@localhost>"
    # Links point at the server's own address when no public_url is set.
    assert "http://127.0.0.1:8080/v1/t/o/" in record["html"]
    assert smtp.messages == []


async def test_a_transactional_email_left_sending_goes_out_at_the_next_start(
        aiohttp_client, tmp_path, smtp):
    """Accepted (202) while the SMTP server was down: the record says `sending`; the next
    start of the server sends it."""
    from flowd.app import create_app
    from tests.conftest import ADMIN_KEY
    from tests.e2e.conftest import free_port

    def app(port: int):
        return create_app(dataclasses.replace(make_config(tmp_path), email=EmailConfig(
            provider="smtp", host="127.0.0.1", port=port, timeout_seconds=5)),
            admin_key=ADMIN_KEY)

    first = await aiohttp_client(app(free_port()))          # nothing listens there
    status, accepted = await Api(first).post("/v1/messages/email", json={
        "to": "later@example.com", "subject": "Eventually", "text": "T"})
    assert status == 202 and accepted["status"] == "sending"
    await eventually(lambda: _logged_attempt(first))
    await first.close()

    second = Api(await aiohttp_client(app(smtp.port)))
    [received] = await smtp.arrived(1)
    assert received.message["Message-ID"] == f"<{accepted['id']}@localhost>"

    async def sent() -> bool:
        _, record = await second.get(f"/v1/messages/{accepted['id']}")
        return record["status"] == "sent"
    await eventually(sent)


async def _logged_attempt(client) -> bool:
    _, record = await Api(client).get("/v1/messages")
    return bool(record["data"])


async def test_an_audience_that_does_not_exist_fails_the_step(api: Api, smtp):
    """The audience check is a hook of the email effect: an audience named by a template that
    the project does not have is an error the run shows, never a send to everyone."""
    run = await _journey(api, [{"id": "s1", "type": "send_email", "config": {
        "subject": "Hi", "text": "T", "audience": "{{ contact.traits.segment }}"}}],
        email="ada@example.com", traits={"segment": "vip"})
    assert run["status"] == "failed"
    assert run["steps"][0]["error"]["code"] == "unknown_audience"
    assert smtp.messages == []
