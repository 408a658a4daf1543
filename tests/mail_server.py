"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 (its own thread and event loop) that keeps
every message it accepts and answers as a test tells it — a 550 or 451 for a recipient, a
451 or a delay on DATA.

    with MailServer() as smtp:          # smtp.port; smtp.messages[i].message["Subject"]
        smtp.refuse("gone@example.com", "550 5.1.1 no such user")
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes
    tls: bool = False

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]


class _AnyPortController(Controller):
    """aiosmtpd's Controller on port 0: the port the OS picked is read before the controller
    connects to check that the server answers."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class MailServer:
    def __init__(self, *, tls_context: ssl.SSLContext | None = None,
                 require_starttls: bool = False) -> None:
        self.messages: list[Received] = []
        self.ehlos = 0                       # one per SMTP session a client opened
        self.data_reply: str | None = None   # e.g. "451 4.3.0 try again later"
        self.data_delay = 0.0                # seconds DATA waits before answering
        self._refusals: dict[str, str] = {}
        # After this many messages, DATA is held unanswered until release(): then the held ones
        # are refused with a 421, never kept (their client is gone: a crash test killed it),
        # and later ones answered as usual.
        self.answer_first: int | None = None
        self.held = 0
        self._data_seen = 0
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._controller = _AnyPortController(
            self, hostname="127.0.0.1", port=0, tls_context=tls_context,
            require_starttls=require_starttls, ready_timeout=10)

    # -- the test's side ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def refuse(self, address: str, reply: str) -> None:
        """Answer RCPT TO:<address> with `reply` ("550 5.1.1 …", "451 4.2.0 …")."""
        with self._lock:
            self._refusals[address.lower()] = reply

    def release(self) -> None:
        self._released.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """For synchronous tests (a flowd in another process)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} of {count} messages arrived")
            time.sleep(0.01)
        return list(self.messages)

    async def arrived(self, count: int, timeout: float = 10.0) -> list[Received]:
        """For tests on an event loop that the flowd under test shares."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} of {count} messages arrived")
            await asyncio.sleep(0.01)
        return list(self.messages)

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    # -- aiosmtpd's handler hooks ---------------------------------------------------------------

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        with self._lock:
            self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self._lock:
            refusal = self._refusals.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self._lock:
            self._data_seen += 1
            hold = (self.answer_first is not None and self._data_seen > self.answer_first
                    and not self._released.is_set())
            self.held += hold
        if hold:
            while not self._released.is_set():
                await asyncio.sleep(0.02)
            return "421 4.3.0 closing"
        if self.data_reply:
            return self.data_reply
        with self._lock:
            self.messages.append(Received(
                envelope.mail_from, list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                tls=server.transport.get_extra_info("ssl_object") is not None))
        return f"250 2.0.0 Ok: queued as Q{len(self.messages):05d}"
