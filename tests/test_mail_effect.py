"""The mail effect (flowd.effects.mail) against a real aiosmtpd on 127.0.0.1, run in the test's
own event loop (the provider's smtplib runs in its threads, so the loop is free to serve it).

The server's handler records what arrives (envelope and bytes) and counts sessions, and can
answer a given reply to MAIL, to a recipient's RCPT or to DATA, or sit on DATA for a while.
Certificates come from a CA made in the test (trustme). No test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import ssl
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, AsyncIterator

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from flowd.effects.base import EffectFailed, RecordingMailProvider
from flowd.effects.mail import (
    Attachment,
    OutboxProvider,
    OutgoingEmail,
    SendResult,
    SmtpProvider,
    build_message,
)
from tests.conftest import eventually

EMAIL = OutgoingEmail(
    message_id="<msg_0123abcd@flowd.example>",
    sender="Jöhn Dœ <john@flowd.example>",
    to=("ann@example.com",),
    subject="Héllo Ann — your digest",
    text="Hello Ann,\n\nThe text part.\n",
    html="<p>Hello <b>Ann</b> é</p>",
)
UNSUBSCRIBE = (("List-Unsubscribe", "<https://flowd.example/v1/unsubscribe/tok_1>"),
               ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))


def email(**changes: Any) -> OutgoingEmail:
    return dataclasses.replace(EMAIL, **changes)


def text_of(part: EmailMessage) -> str:
    """A text part's content as it was given: line ends as "\n", and without the final line
    break the wire adds to a body that ends the message."""
    return part.get_content().replace("\r\n", "\n").rstrip("\n")


# --- the server ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)  # type: ignore[return-value]


class Handler:
    """aiosmtpd handler: records, and answers as told."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.sessions = 0
        self.quits = 0
        self.mail_reply: str | None = None
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self.data_delay = 0.0
        self.queue_ids = True
        self.pipelining = False   # offer RFC 2920 PIPELINING, as real relays do

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply:
            return self.data_reply
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.content, tls))
        if not self.queue_ids:
            return "250 OK"
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"

    async def handle_QUIT(self, server, session, envelope):
        self.quits += 1
        return "221 Bye"


class SmtpServer:
    """An aiosmtpd on 127.0.0.1 (a free port), implicit TLS when `ssl_context` is given;
    `smtp` are aiosmtpd's SMTP options (tls_context, authenticator, timeout, …)."""

    def __init__(self, handler: Handler | None = None, *, ssl_context: ssl.SSLContext | None = None,
                 **smtp: Any) -> None:
        self.handler = handler or Handler()
        self.ssl_context = ssl_context
        self.smtp = smtp
        self.sessions: list[SMTP] = []
        self.port = 0

    def _session(self) -> SMTP:
        self.handler.sessions += 1
        session = SMTP(self.handler, hostname="mx.test", **self.smtp)
        self.sessions.append(session)
        return session

    async def __aenter__(self) -> SmtpServer:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._session, "127.0.0.1", 0,
                                               ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        self.hang_up()
        await self.server.wait_closed()
        await asyncio.sleep(0)  # let the sessions' tasks see their connections lost

    def hang_up(self) -> None:
        """Close every open session from the server's side."""
        for session in self.sessions:
            if session.transport is not None:
                session.transport.close()

    def open_sessions(self) -> int:
        return sum(session.transport is not None for session in self.sessions)

    def provider(self, **options: Any) -> SmtpProvider:
        options.setdefault("timeout", 10.0)
        options.setdefault("local_hostname", "flowd.test")
        return SmtpProvider("127.0.0.1", self.port, **options)

    @property
    def received(self) -> list[Received]:
        return self.handler.received


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def failure_of(provider: SmtpProvider, message: OutgoingEmail = EMAIL) -> EffectFailed:
    with pytest.raises(EffectFailed) as caught:
        await provider.send(message)
    return caught.value


# --- what arrives -------------------------------------------------------------------------------

async def test_a_message_arrives_with_its_headers_and_envelope():
    message = email(to=("ann@example.com",), cc=("carl@example.com",),
                    bcc=("hidden@example.com",), reply_to="Sérvice <help@flowd.example>",
                    headers=UNSUBSCRIBE)
    async with SmtpServer() as server, server.provider() as provider:
        result = await provider.send(message)

    assert result == SendResult("Q1", ("ann@example.com", "carl@example.com",
                                       "hidden@example.com"), {})
    [received] = server.received
    assert received.mail_from == "john@flowd.example"
    assert received.rcpt_tos == ["ann@example.com", "carl@example.com", "hidden@example.com"]
    raw_headers = received.content.split(b"\r\n\r\n", 1)[0].decode("ascii")  # all 7-bit
    assert "Message-ID: <msg_0123abcd@flowd.example>\r\n" in raw_headers
    assert "From: =?utf-8?" in raw_headers and "<john@flowd.example>" in raw_headers
    assert "Subject: =?utf-8?" in raw_headers
    assert "List-Unsubscribe: <https://flowd.example/v1/unsubscribe/tok_1>\r\n" in raw_headers
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw_headers
    assert b"hidden@example.com" not in received.content
    parsed = received.message
    assert parsed["Message-ID"] == "<msg_0123abcd@flowd.example>"
    assert parsed["From"].addresses[0].display_name == "Jöhn Dœ"
    assert parsed["From"].addresses[0].addr_spec == "john@flowd.example"
    assert parsed["To"] == "ann@example.com"
    assert parsed["Cc"] == "carl@example.com"
    assert parsed["Bcc"] is None
    assert str(parsed["Reply-To"]) == "Sérvice <help@flowd.example>"
    assert parsed["Subject"] == "Héllo Ann — your digest"
    assert parsed["Date"].datetime is not None
    assert parsed["MIME-Version"] == "1.0"


async def test_text_and_html_are_multipart_alternative_text_first():
    async with SmtpServer() as server, server.provider() as provider:
        await provider.send(EMAIL)
        await provider.send(email(html=None))
        await provider.send(email(text=None))

    both, text_only, html_only = (r.message for r in server.received)
    assert [p.get_content_type() for p in both.walk()] == ["multipart/alternative",
                                                          "text/plain", "text/html"]
    plain, html = both.iter_parts()
    assert text_of(plain) == EMAIL.text.rstrip("\n")
    assert text_of(html) == EMAIL.html
    assert [p.get_content_type() for p in text_only.walk()] == ["text/plain"]
    assert text_of(text_only) == EMAIL.text.rstrip("\n")
    assert [p.get_content_type() for p in html_only.walk()] == ["text/html"]
    assert text_of(html_only) == EMAIL.html


def test_long_and_non_ascii_bodies_survive_their_transfer_encoding():
    text = "Zoë's line, with a long tail " + "x" * 2000 + "\n.leading dot\nFrom here\n\n"
    html = "<p>" + "é" * 500 + "</p>\r\n<p>\0</p>"
    parsed = message_from_bytes(build_message(email(text=text, html=html)).as_bytes(),
                                policy=policy.default)
    plain, rich = parsed.iter_parts()
    assert text_of(plain) == text.rstrip("\n")
    assert text_of(rich) == html.replace("\r\n", "\n")
    assert all(len(line) <= 998 for line in parsed.as_bytes().split(b"\n"))


async def test_attachments_make_it_multipart_mixed_with_their_content_intact():
    pdf = bytes(range(256)) * 40
    attachments = (Attachment("réport 2024.pdf", pdf, "application/pdf"),
                   Attachment("notes.txt", "naïve\n".encode(), "text/plain"))
    async with SmtpServer() as server, server.provider() as provider:
        await provider.send(email(attachments=attachments))

    parsed = server.received[0].message
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html",
        "application/pdf", "text/plain"]
    found = list(parsed.iter_attachments())
    assert [a.get_filename() for a in found] == ["réport 2024.pdf", "notes.txt"]
    assert found[0].get_content() == pdf
    assert found[1].get_payload(decode=True) == "naïve\n".encode()
    body = parsed.get_body(("plain",))
    assert body is not None and text_of(body) == EMAIL.text.rstrip("\n")


@pytest.mark.parametrize("changes", [
    {"subject": "Hi\r\nBcc: victim@example.com"},
    {"subject": "Hi\nX-Injected: 1"},
    {"sender": "Eve <eve@flowd.example>\r\nBcc: victim@example.com"},
    {"reply_to": "help@flowd.example\nX: y"},
    {"to": ("ann@example.com\r\nBcc: victim@example.com",)},
    {"cc": ("carl@example.com\n",)},
    {"message_id": "<msg_1@flowd.example>\r\nBcc: victim@example.com"},
    {"headers": (("List-Unsubscribe", "<https://x.example/u>\r\nBcc: victim@example.com"),)},
    {"headers": (("X-Evil\r\nBcc", "victim@example.com"),)},
    {"attachments": (Attachment("a.txt\r\nBcc: v@example.com", b"x", "text/plain"),)},
    {"attachments": (Attachment("a.txt", b"x", "text/plain\r\nBcc: v@example.com"),)},
], ids=lambda changes: next(iter(changes)))
async def test_a_line_break_in_any_header_value_is_refused_before_connecting(changes):
    async with SmtpServer() as server, server.provider() as provider:
        failure = await failure_of(provider, email(**changes))
    assert (failure.code, failure.retryable) == ("invalid_message", False)
    assert server.handler.sessions == 0
    with pytest.raises(EffectFailed):
        build_message(email(**changes))
    with pytest.raises(EffectFailed):
        await OutboxProvider().send(email(**changes))


@pytest.mark.parametrize("changes, says", [
    ({"headers": (("Bcc", "victim@example.com"),)}, "header Bcc"),
    ({"headers": (("from", "x@example.com"),)}, "header from"),
    ({"headers": (("Bad Name", "x"),)}, "not a valid header name"),
    ({"to": ("Ann <ann@example.com>",)}, "not a plain email address"),
    ({"to": ("ann@exämple.com",)}, "not a plain email address"),
    ({"to": ()}, "no recipient"),
    ({"sender": "Doe, John <john@flowd.example>"}, "not one address"),
    ({"sender": "not an address"}, "not one address"),
    ({"message_id": "msg_1@flowd.example"}, "not a Message-ID"),
    ({"text": None, "html": None}, "neither text nor html"),
    ({"attachments": (Attachment("a", b"x", "multipart/mixed"),)}, "not multipart"),
])
def test_what_cannot_be_a_correct_message_is_refused(changes, says):
    with pytest.raises(EffectFailed) as caught:
        build_message(email(**changes))
    assert (caught.value.code, caught.value.retryable) == ("invalid_message", False)
    assert says in caught.value.message


def test_a_bcc_only_message_has_no_to_header():
    message = build_message(email(to=(), bcc=("hidden@example.com",)))
    assert message["To"] is None and message["Bcc"] is None


# --- the pool -----------------------------------------------------------------------------------

async def test_one_connection_carries_message_after_message():
    async with SmtpServer() as server, server.provider(connections=4) as provider:
        for n in range(10):
            await provider.send(email(message_id=f"<msg_{n}@flowd.example>"))
    assert len(server.received) == 10
    assert server.handler.sessions == 1
    assert server.handler.quits == 1  # close() quit it


async def test_concurrent_messages_share_at_most_the_configured_connections():
    async with SmtpServer() as server, server.provider(connections=3) as provider:
        results = await asyncio.gather(*(
            provider.send(email(message_id=f"<msg_{n}@flowd.example>", to=(f"u{n}@example.com",)))
            for n in range(40)))
    assert len(server.received) == 40
    assert {r.accepted for r in results} == {(f"u{n}@example.com",) for n in range(40)}
    assert 1 <= server.handler.sessions <= 3
    assert server.handler.quits == server.handler.sessions


@pytest.mark.parametrize("how", ["server hangs up", "server idle timeout"])
async def test_a_connection_the_server_dropped_while_idle_is_replaced(how):
    options = {"timeout": 0.2} if how == "server idle timeout" else {}
    async with SmtpServer(**options) as server, server.provider() as provider:
        await provider.send(email(message_id="<msg_1@flowd.example>"))
        if how == "server hangs up":
            server.hang_up()

        async def dropped() -> bool:
            return server.open_sessions() == 0
        await eventually(dropped)
        result = await provider.send(email(message_id="<msg_2@flowd.example>"))

    assert result.accepted == ("ann@example.com",)
    assert [r.message["Message-ID"] for r in server.received] == ["<msg_1@flowd.example>",
                                                                 "<msg_2@flowd.example>"]
    assert server.handler.sessions == 2


# --- TLS and AUTH -------------------------------------------------------------------------------

async def test_starttls_with_a_trusted_certificate(server_tls, client_tls):
    async with SmtpServer(tls_context=server_tls, require_starttls=True) as server, \
            server.provider(starttls=True, ssl_context=client_tls) as provider:
        await provider.send(EMAIL)
        await provider.send(EMAIL)
    assert [r.tls for r in server.received] == [True, True]
    assert server.handler.sessions == 1


async def test_implicit_tls(server_tls, client_tls):
    async with SmtpServer(ssl_context=server_tls) as server, \
            server.provider(tls=True, ssl_context=client_tls) as provider:
        await provider.send(EMAIL)
    assert [r.tls for r in server.received] == [True]


async def test_a_certificate_that_does_not_verify_is_not_retried(server_tls):
    untrusting = ssl.create_default_context()  # the system's CAs: not the test's CA
    async with SmtpServer(tls_context=server_tls) as server, \
            server.provider(starttls=True, ssl_context=untrusting) as provider:
        failure = await failure_of(provider)
    assert (failure.code, failure.retryable) == ("smtp_tls_failed", False)
    assert server.received == []


async def test_starttls_required_but_not_offered():
    async with SmtpServer() as server, server.provider(starttls=True) as provider:
        failure = await failure_of(provider)
    assert (failure.code, failure.retryable) == ("smtp_tls_failed", False)
    assert "STARTTLS" in failure.message


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and auth_data == (b"flowd", b"s3cret")
    return AuthResult(success=good, handled=False)  # handled=False: aiosmtpd answers the 535


async def test_auth_with_good_credentials(server_tls, client_tls):
    async with SmtpServer(tls_context=server_tls, authenticator=authenticator,
                          auth_required=True) as server, \
            server.provider(starttls=True, ssl_context=client_tls, username="flowd",
                            password="s3cret") as provider:
        result = await provider.send(EMAIL)
    assert result.accepted == ("ann@example.com",)
    assert len(server.received) == 1


async def test_auth_with_bad_credentials_is_not_retried(server_tls, client_tls):
    async with SmtpServer(tls_context=server_tls, authenticator=authenticator,
                          auth_required=True) as server, \
            server.provider(starttls=True, ssl_context=client_tls, username="flowd",
                            password="wrong") as provider:
        failure = await failure_of(provider)
    assert (failure.code, failure.retryable) == ("smtp_auth_failed", False)
    assert "535" in failure.message and "'flowd'" in failure.message
    assert server.received == []


async def test_auth_configured_but_not_offered():
    async with SmtpServer() as server, server.provider(username="flowd",
                                                       password="s3cret") as provider:
        failure = await failure_of(provider)  # aiosmtpd offers AUTH only over TLS
    assert (failure.code, failure.retryable) == ("smtp_auth_failed", False)


# --- refusals -----------------------------------------------------------------------------------

async def test_a_recipient_refused_on_rcpt_is_rejected_and_the_others_get_the_message():
    message = email(to=("ann@example.com", "gone@example.com"), cc=("carl@example.com",))
    refusal = "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"
    async with SmtpServer() as server, server.provider() as provider:
        server.handler.rcpt_replies["gone@example.com"] = refusal
        result = await provider.send(message)
    assert result == SendResult("Q1", ("ann@example.com", "carl@example.com"),
                                {"gone@example.com": refusal})
    assert server.received[0].rcpt_tos == ["ann@example.com", "carl@example.com"]


async def test_when_every_recipient_is_refused_nothing_is_sent_and_the_connection_stays():
    async with SmtpServer() as server, server.provider() as provider:
        server.handler.rcpt_replies.update({"ann@example.com": "550 5.1.1 no such user",
                                            "bob@example.com": "553 5.1.3 bad address"})
        result = await provider.send(email(to=("ann@example.com", "bob@example.com")))
        assert result == SendResult(None, (), {"ann@example.com": "550 5.1.1 no such user",
                                               "bob@example.com": "553 5.1.3 bad address"})
        assert server.received == []
        await provider.send(email(to=("carl@example.com",)))
    assert [r.rcpt_tos for r in server.received] == [["carl@example.com"]]
    assert server.handler.sessions == 1


async def test_a_5xx_on_data_rejects_every_recipient():
    async with SmtpServer() as server, server.provider() as provider:
        server.handler.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
        server.handler.data_reply = "554 5.7.1 message refused as spam"
        result = await provider.send(email(to=("ann@example.com", "gone@example.com")))
        assert result == SendResult(None, (), {
            "ann@example.com": "554 5.7.1 message refused as spam",
            "gone@example.com": "550 5.1.1 no such user"})
        server.handler.data_reply = None
        await provider.send(EMAIL)
    assert len(server.received) == 1
    assert server.handler.sessions == 1


@pytest.mark.parametrize("where", ["MAIL", "RCPT", "DATA"])
async def test_a_4xx_is_a_retryable_failure(where):
    async with SmtpServer() as server, server.provider() as provider:
        reply = "451 4.7.1 greylisted, try again later"
        if where == "MAIL":
            server.handler.mail_reply = reply
        elif where == "RCPT":
            server.handler.rcpt_replies["ann@example.com"] = reply
        else:
            server.handler.data_reply = reply
        failure = await failure_of(provider, email(to=("ann@example.com", "bob@example.com")))
        assert (failure.code, failure.retryable) == ("smtp_temporary", True)
        assert "451 4.7.1 greylisted" in failure.message
        assert server.received == []
        server.handler.mail_reply = server.handler.data_reply = None
        server.handler.rcpt_replies.clear()
        await provider.send(EMAIL)  # the same connection, reset
    assert len(server.received) == 1
    assert server.handler.sessions == 1


async def test_a_5xx_on_mail_from_is_refused_for_good():
    async with SmtpServer() as server, server.provider() as provider:
        server.handler.mail_reply = "553 5.7.1 sender not allowed"
        failure = await failure_of(provider)
    assert (failure.code, failure.retryable) == ("smtp_refused", False)
    assert "553 5.7.1 sender not allowed" in failure.message


async def test_a_data_reply_without_a_queue_id_gives_the_message_id():
    async with SmtpServer() as server, server.provider() as provider:
        server.handler.queue_ids = False
        result = await provider.send(EMAIL)
    assert result.provider_message_id == EMAIL.message_id


# --- pipelining (one recipient: MAIL, RCPT and DATA in one write) ---------------------------------

def _pipelining_server() -> SmtpServer:
    handler = Handler()
    handler.pipelining = True
    return SmtpServer(handler)


async def test_pipelined_messages_arrive_intact_on_one_connection():
    bodies = ["plain\n", ".starts with a dot\n..two\n.\nend", "no newline at the end"]
    async with _pipelining_server() as server, server.provider() as provider:
        for n, body in enumerate(bodies):
            result = await provider.send(email(message_id=f"<msg_{n}@flowd.example>",
                                               text=body, html=None))
            assert result.accepted == ("ann@example.com",)
    assert [text_of(r.message) for r in server.received] == [text_of(
        build_message(email(text=body, html=None))) for body in bodies]
    assert server.handler.sessions == 1


@pytest.mark.parametrize("pipelining", [False, True])
@pytest.mark.parametrize("where, reply, outcome", [
    ("RCPT", "550 5.1.1 no such user", "rejected"),
    ("DATA", "554 5.7.1 spam", "rejected"),
    ("MAIL", "451 4.3.0 later", "smtp_temporary"),
    ("RCPT", "451 4.7.1 greylisted", "smtp_temporary"),
    ("DATA", "452 4.3.1 full", "smtp_temporary"),
    ("MAIL", "553 5.7.1 sender not allowed", "smtp_refused"),
])
async def test_one_recipient_outcomes_and_the_connection_goes_on(pipelining, where, reply,
                                                                  outcome):
    server = _pipelining_server() if pipelining else SmtpServer()
    async with server, server.provider() as provider:
        if where == "MAIL":
            server.handler.mail_reply = reply
        elif where == "RCPT":
            server.handler.rcpt_replies["ann@example.com"] = reply
        else:
            server.handler.data_reply = reply
        if outcome == "rejected":
            assert await provider.send(EMAIL) == SendResult(None, (), {"ann@example.com": reply})
        else:
            failure = await failure_of(provider)
            assert failure.code == outcome and reply in failure.message
            assert failure.retryable is (outcome == "smtp_temporary")
        assert server.received == []
        server.handler.mail_reply = server.handler.data_reply = None
        server.handler.rcpt_replies.clear()
        assert (await provider.send(EMAIL)).accepted == ("ann@example.com",)
    assert len(server.received) == 1 and server.handler.sessions == 1


async def test_a_pipelined_send_on_a_connection_the_server_dropped_is_sent_on_a_new_one():
    async with _pipelining_server() as server, server.provider() as provider:
        await provider.send(email(message_id="<msg_1@flowd.example>"))
        server.hang_up()

        async def dropped() -> bool:
            return server.open_sessions() == 0
        await eventually(dropped)
        await provider.send(email(message_id="<msg_2@flowd.example>"))
    assert len(server.received) == 2 and server.handler.sessions == 2


# --- the network --------------------------------------------------------------------------------

async def test_a_refused_connection_is_retryable():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with SmtpProvider("127.0.0.1", port, timeout=5) as provider:
        failure = await failure_of(provider)
    assert (failure.code, failure.retryable) == ("smtp_unavailable", True)
    assert f"127.0.0.1:{port}" in failure.message


@contextlib.asynccontextmanager
async def raw_server(handle: Any) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that speaks as `handle` does (no SMTP library); its port."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_server_that_never_answers_times_out():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never greets
        writer.close()

    async with raw_server(silent) as port, SmtpProvider("127.0.0.1", port,
                                                       timeout=0.2) as provider:
        failure = await failure_of(provider)
    assert (failure.code, failure.retryable) == ("smtp_timeout", True)


@pytest.mark.parametrize("greeting, code, retryable", [
    (b"554 5.7.1 no service for you\r\n", "smtp_refused", False),
    (b"421 4.3.2 too busy, come back later\r\n", "smtp_temporary", True),
])
async def test_a_greeting_that_refuses(greeting, code, retryable):
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await reader.read()
        writer.close()

    async with raw_server(refuse) as port, SmtpProvider("127.0.0.1", port,
                                                       timeout=5) as provider:
        failure = await failure_of(provider)
    assert (failure.code, failure.retryable) == (code, retryable)
    assert greeting.decode().strip() in failure.message


async def test_a_server_stalling_on_data_times_out_and_the_connection_is_not_reused():
    async with SmtpServer() as server, server.provider(timeout=0.2) as provider:
        server.handler.data_delay = 30
        failure = await failure_of(provider)
        assert (failure.code, failure.retryable) == ("smtp_timeout", True)
        server.handler.data_delay = 0
        await provider.send(EMAIL)
    assert len(server.received) == 1
    assert server.handler.sessions == 2


async def test_send_needs_start():
    provider = SmtpProvider("127.0.0.1", 25)
    with pytest.raises(RuntimeError):
        await provider.send(EMAIL)
    with pytest.raises(ValueError):
        SmtpProvider("127.0.0.1", 25, tls=True, starttls=True)


# --- the outbox and the recorder ----------------------------------------------------------------

async def test_the_outbox_accepts_every_recipient_and_sends_nothing():
    provider = OutboxProvider()
    await provider.start()
    result = await provider.send(email(to=("ann@example.com",), cc=("carl@example.com",),
                                       bcc=("ann@example.com", "hidden@example.com")))
    await provider.close()
    assert result == SendResult(EMAIL.message_id, ("ann@example.com", "carl@example.com",
                                                   "hidden@example.com"), {})


async def test_the_recorder_records_and_accepts_by_default():
    recorder = RecordingMailProvider()
    result = await recorder.send(email(cc=("carl@example.com",)))
    assert result == SendResult(EMAIL.message_id, ("ann@example.com", "carl@example.com"), {})
    assert recorder.emails == [email(cc=("carl@example.com",))]


async def test_the_recorder_answers_per_recipient():
    bounced = SendResult(None, (), {"gone@example.com": "550 5.1.1 no such user"})
    later = EffectFailed("smtp_temporary", "451 4.7.1 later", retryable=True)
    recorder = RecordingMailProvider(by_recipient={"gone@example.com": bounced,
                                                   "slow@example.com": later})
    assert await recorder.send(email(to=("gone@example.com",))) == bounced
    with pytest.raises(EffectFailed) as caught:
        await recorder.send(email(to=("ann@example.com",), bcc=("slow@example.com",)))
    assert caught.value is later
    assert (await recorder.send(EMAIL)).accepted == ("ann@example.com",)
    assert [e.to for e in recorder.emails] == [("gone@example.com",), ("ann@example.com",),
                                               ("ann@example.com",)]
