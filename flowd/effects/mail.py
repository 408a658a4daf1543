"""The mail effect: turning an `OutgoingEmail` into an RFC 5322 message and handing it to a
provider. What happens around a send (templates, suppression, the message record, bounces,
unsubscribe and tracking links) is the `send_email` step's; this module only builds and sends.

    provider = SmtpProvider("smtp.example.com", 587, username="flowd", password="…",
                            starttls=True)          # or OutboxProvider(), the default
    await provider.start()
    result = await provider.send(OutgoingEmail(message_id="<msg_1@example.com>", …))
    result.accepted, result.rejected, result.provider_message_id
    await provider.close()

What it guarantees:

- **`build_message`** makes the message with the standard library's `email` package (policy
  `SMTP`): `Message-ID` as given, `Date`, `From`/`Reply-To` with non-ASCII display names
  encoded (RFC 2047), `To`, `Cc` — never `Bcc`, whose addresses are only in the envelope —,
  an encoded `Subject`, the caller's extra headers, then text and html as
  multipart/alternative (text first), inside multipart/mixed when there are attachments.
- **Nothing malformed is sent**: a line break in any header value (header injection), an
  address that is not one plain ASCII address, a header the caller may not set (`Bcc`,
  `From`, …) or a message with no body raises `EffectFailed("invalid_message",
  retryable=False)` before any connection (`check_message`, which the outbox also applies).
- **`OutboxProvider`** sends nothing off the machine: the caller's message record is the
  record. Every recipient is accepted; `provider_message_id` is the Message-ID.
- **`SmtpProvider`** sends with `smtplib` on a small pool of reused connections, each used by
  one thread of its own bounded pool (see the class); a one-recipient message goes in two
  round trips when the server offers PIPELINING (RFC 2920). A permanent refusal of a recipient (5xx
  on RCPT, or on DATA for all of them) is a result, not a failure: those recipients are in
  `SendResult.rejected` with the server's reply. Everything else is an `EffectFailed`:

  | code               | when                                                 | retryable |
  |--------------------|------------------------------------------------------|-----------|
  | `smtp_temporary`   | a 4xx reply anywhere (greylisting, 421, 451, 452…)   | yes       |
  | `smtp_unavailable` | the server cannot be reached, or hung up             | yes       |
  | `smtp_timeout`     | a command got no answer within `timeout`             | yes       |
  | `smtp_auth_failed` | the login was refused, or AUTH is not offered        | no        |
  | `smtp_refused`     | a 5xx to the greeting, EHLO or MAIL FROM             | no        |
  | `smtp_tls_failed`  | TLS could not be set up (certificate, no STARTTLS)   | no        |

Building and flattening a text+html message costs ~90 µs (~130 µs with a non-ASCII subject),
against ~850 µs the plain `email` package way (`set_content`, `add_alternative`): the policy's
header parsing and folding, its expensive part, is done only for what needs it (non-ASCII
values, long lines) and cached (the sender and the part headers recur on every message),
bodies are encoded with `binascii`, and the bytes are flattened once per message.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import re
import secrets
import smtplib
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email import policy as email_policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from typing import Callable

from flowd.effects.base import (
    Attachment,
    EffectFailed,
    MailProvider,
    OutgoingEmail,
    SendResult,
)

__all__ = [
    "Attachment",
    "MailProvider",
    "OutboxProvider",
    "OutgoingEmail",
    "SendResult",
    "SmtpProvider",
    "build_message",
    "check_message",
]


# --- checking -----------------------------------------------------------------------------------

# A plain ASCII address: dot-atom local part, host name domain. Quoted local parts, domain
# literals and internationalized addresses (SMTPUTF8) are refused rather than half supported.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")        # printable, no '<' or '>' inside
_HEADER_NAME = re.compile(r"[!-9;-~]+")                      # RFC 5322 ftext
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")

# Set by build_message itself (or structural): an extra header may not repeat or override them.
_RESERVED_HEADERS = frozenset({
    "message-id", "date", "from", "sender", "to", "cc", "bcc", "reply-to", "subject",
    "mime-version", "content-type", "content-transfer-encoding",
})


def _invalid(message: str) -> EffectFailed:
    return EffectFailed("invalid_message", message, retryable=False)


def _check_header_value(field: str, value: str) -> None:
    if not isinstance(value, str):
        raise _invalid(f"{field} must be text, not {type(value).__name__}")
    if "\r" in value or "\n" in value or "\0" in value:
        # A line break would end the header and start one of the caller's making.
        raise _invalid(f"{field} contains a line break (header injection is refused)")


def _check_address(field: str, address: str) -> None:
    _check_header_value(field, address)
    if len(address) > 254 or not _ADDRESS.fullmatch(address):
        raise _invalid(f"{field} {address!r} is not a plain email address (like ann@example.com)")


@functools.lru_cache(maxsize=256)
def _mailbox(field: str, value: str) -> Address:
    """`ann@example.com` or `Ann Café <ann@example.com>`, parsed (senders recur: cached)."""
    _check_header_value(field, value)
    if _ADDRESS.fullmatch(value):
        return Address(addr_spec=value)
    try:
        header = _POLICY.header_factory("From", value)
        addresses = header.addresses
    except Exception:  # the parser raises more than HeaderParseError on some inputs
        addresses, header = (), None
    if header is None or header.defects or len(addresses) != 1:
        raise _invalid(f"{field} {value!r} is not one address (like Ann <ann@example.com>)")
    _check_address(field, addresses[0].addr_spec)
    return addresses[0]


def check_message(email: OutgoingEmail) -> None:
    """Raises `EffectFailed("invalid_message")` when `email` cannot be sent as it is."""
    _check_header_value("message_id", email.message_id)
    if not _MESSAGE_ID.fullmatch(email.message_id):
        raise _invalid(f"message_id {email.message_id!r} is not a Message-ID (<id@domain>)")
    _mailbox("sender", email.sender)
    if email.reply_to is not None:
        _mailbox("reply_to", email.reply_to)
    for field in ("to", "cc", "bcc"):
        for address in getattr(email, field):
            _check_address(field, address)
    if not email.recipients:
        raise _invalid("the message has no recipient")
    _check_header_value("subject", email.subject)
    for name, value in email.headers:
        _check_header_value(f"header {name!r}", name)
        if not _HEADER_NAME.fullmatch(name):
            raise _invalid(f"{name!r} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS:
            raise _invalid(f"header {name} is set from the message's own fields")
        _check_header_value(f"header {name}", value)
    if email.text is None and email.html is None:
        raise _invalid("the message has neither text nor html")
    for attachment in email.attachments:
        _check_attachment(attachment)


def _check_attachment(attachment: Attachment) -> None:
    _check_header_value("attachment filename", attachment.filename)
    _check_header_value("attachment content_type", attachment.content_type)
    if not _CONTENT_TYPE.fullmatch(attachment.content_type) \
            or attachment.content_type.lower().startswith("multipart/"):
        raise _invalid(f"attachment {attachment.filename!r} has content type "
                       f"{attachment.content_type!r}; it must be a type/subtype, not multipart")
    if not isinstance(attachment.content, (bytes, bytearray)):
        raise _invalid(f"attachment {attachment.filename!r} content must be bytes")


# --- building -----------------------------------------------------------------------------------

class _CachingHeaderRegistry(HeaderRegistry):
    """The policy's header parser, memoized. The generator re-parses a part's Content-Type
    several times while flattening it, and a message's part headers and sender are the same
    from one message to the next; header objects are immutable, so sharing them is safe."""

    @functools.lru_cache(maxsize=1024)
    def __call__(self, name: str, value: str):  # type: ignore[override]
        return super().__call__(name, value)


_POLICY = email_policy.SMTP.clone(header_factory=_CachingHeaderRegistry())

# One boundary per process (and per multipart kind, as they nest), so a part's Content-Type is
# the same on every message and its parse is cached; short enough that the header needs no
# folding. "=_" cannot occur in quoted-printable or base64 text; only a 7bit part could contain
# the boundary, and then that message gets a fresh one.
_BOUNDARY_TAG = secrets.token_hex(8)


def build_message(email: OutgoingEmail) -> EmailMessage:
    """The RFC 5322 message for `email` (raises `EffectFailed("invalid_message")`)."""
    check_message(email)
    message = EmailMessage(policy=_POLICY)
    message.set_raw("Message-ID", email.message_id)
    message.set_raw("Date", format_datetime(datetime.now(timezone.utc)))
    _set_header(message, "From", str(_mailbox("sender", email.sender)))
    if email.to:  # a message to bcc only has no To
        message.set_raw("To", ", ".join(email.to))
    if email.cc:
        message.set_raw("Cc", ", ".join(email.cc))
    if email.reply_to is not None:
        _set_header(message, "Reply-To", str(_mailbox("reply_to", email.reply_to)))
    _set_header(message, "Subject", email.subject)
    for name, value in email.headers:
        _set_header(message, name, value)
    message.set_raw("MIME-Version", "1.0")
    if email.attachments:
        body = MIMEPart(policy=_POLICY)
        _fill_body(body, email)
        _fill_multipart(message, "mixed",
                        [body, *(_attachment_part(a) for a in email.attachments)])
    else:
        _fill_body(message, email)
    return message


def _set_header(message: EmailMessage, name: str, value: str) -> None:
    # An ASCII value is stored as it is (the policy still folds it if it is too long); only a
    # non-ASCII one goes through the policy's parser and encoder.
    message.set_raw(name, value if value.isascii() else _encoded_header(name, value))


@functools.lru_cache(maxsize=1024)
def _encoded_header(name: str, value: str) -> str:
    """`value` as the policy writes it: RFC 2047 encoded words, folded."""
    folded = _POLICY.header_factory(name, value).fold(policy=_POLICY)
    return folded[len(name) + 1:].lstrip(" ").removesuffix(_POLICY.linesep)


def _fill_body(part: MIMEPart, email: OutgoingEmail) -> None:
    if email.text is not None and email.html is not None:
        _fill_multipart(part, "alternative",
                        [_text_part("plain", email.text), _text_part("html", email.html)])
    elif email.text is not None:
        _fill_text(part, "plain", email.text)
    else:
        _fill_text(part, "html", email.html or "")


def _text_part(subtype: str, text: str) -> MIMEPart:
    part = MIMEPart(policy=_POLICY)
    _fill_text(part, subtype, text)
    return part


def _fill_text(part: MIMEPart, subtype: str, text: str) -> None:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    if _is_7bit(text):
        part.set_raw("Content-Transfer-Encoding", "7bit")
        part.set_payload(text)
    else:
        # quoted-printable keeps mostly-ASCII text readable and needs no 8BITMIME.
        part.set_raw("Content-Transfer-Encoding", "quoted-printable")
        part.set_payload(binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii"))


def _is_7bit(text: str) -> bool:
    # RFC 5322's line limit is 998 characters; the policy's 78 is for headers.
    return text.isascii() and "\0" not in text and max(map(len, text.split("\n"))) <= 998


def _fill_multipart(part: MIMEPart, subtype: str, subparts: list[MIMEPart]) -> None:
    boundary = f"=_flowd_{_BOUNDARY_TAG}_{subtype[:3]}"
    if any(boundary in _seven_bit_text(p) for p in subparts):
        boundary = f"=_flowd_{secrets.token_hex(8)}_{subtype[:3]}"
    part.set_raw("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')
    part.set_payload(subparts)


def _seven_bit_text(part: MIMEPart) -> str:
    if part.is_multipart():
        return "".join(_seven_bit_text(p) for p in part.get_payload())
    if part.get("Content-Transfer-Encoding") == "7bit":
        return part.get_payload()
    return ""  # quoted-printable or base64: "=_" cannot occur in them


def _attachment_part(attachment: Attachment) -> MIMEPart:
    maintype, subtype = attachment.content_type.split("/", 1)
    part = MIMEPart(policy=_POLICY)
    try:
        part.set_content(bytes(attachment.content), maintype, subtype,
                         disposition="attachment", filename=attachment.filename)
    except (ValueError, TypeError) as exc:
        raise _invalid(f"attachment {attachment.filename!r}: {exc}") from None
    return part


# --- the outbox ---------------------------------------------------------------------------------

class OutboxProvider:
    """Sends nothing off the machine: the caller's message record is the record. The message
    is checked as the SMTP provider would, then every recipient is accepted."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, email: OutgoingEmail) -> SendResult:
        check_message(email)
        return SendResult(email.message_id, email.recipients, {})


# --- SMTP ---------------------------------------------------------------------------------------

# The id a server gives the message in its 250 to DATA: Postfix "queued as 4F3x…", Exim "id=…".
_QUEUE_ID = re.compile(r"queued as\s+<?([^\s<>]+?)>?(?:\s|$)|\bid=<?([^\s<>]+?)>?(?:\s|$)",
                       re.IGNORECASE)


class _ServerHungUp(Exception):
    """The server closed the connection before taking the message's envelope. On a reused
    connection that is an idle connection it dropped meanwhile, and the message is sent once
    more on a fresh one; otherwise `failure` is raised."""

    def __init__(self, failure: EffectFailed) -> None:
        super().__init__(failure.message)
        self.failure = failure


class SmtpProvider:
    """Sends through one SMTP server (a relay or a provider's submission port).

    The pool: `connections` worker threads, each running one message at a time with blocking
    `smtplib` (so the event loop never waits on the network), and at most as many open
    connections — a thread takes an idle connection, or opens one only when none is idle, and
    puts it back after the message, so a steady stream of messages reuses the same sessions
    (no TCP, TLS, EHLO and AUTH per message). A connection the server closed while it was idle
    is noticed on the next MAIL FROM and replaced, and that message sent once more on the new
    one. A connection that failed or timed out is closed, never reused. `close()` waits for the
    messages under way and quits every connection. A `send` whose caller is cancelled still
    runs to its end in its thread: the message may go out.

    `tls` is implicit TLS (SMTPS, port 465); `starttls` upgrades a plain connection (587).
    Both verify the server's certificate against `ssl_context` (default: the system's CAs).
    `timeout` bounds connecting and every command (it is the socket's timeout).
    """

    def __init__(self, host: str, port: int, *, username: str | None = None,
                 password: str | None = None, starttls: bool = False, tls: bool = False,
                 timeout: float = 30.0, connections: int = 4, local_hostname: str | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if tls and starttls:
            raise ValueError("tls (implicit TLS) and starttls exclude each other")
        if connections < 1:
            raise ValueError("connections must be >= 1")
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.tls = tls
        self.timeout = timeout
        self.connections = connections
        self._local_hostname = local_hostname
        self._ssl_context = ssl_context
        if (tls or starttls) and ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        self._executor: ThreadPoolExecutor | None = None
        self._idle: list[smtplib.SMTP] = []
        self._idle_lock = threading.Lock()

    @property
    def _where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.connections,
                                                thread_name_prefix="flowd-smtp")

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(self._shut_down, executor)

    async def __aenter__(self) -> SmtpProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, email: OutgoingEmail) -> SendResult:
        executor = self._executor
        if executor is None:
            raise RuntimeError("SmtpProvider.start() has not been called (or close() has)")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self._send_in_thread, email)

    # --- in a worker thread ---

    def _send_in_thread(self, email: OutgoingEmail) -> SendResult:
        data = build_message(email).as_bytes()
        sender = _mailbox("sender", email.sender).addr_spec
        smtp, reused = self._take_connection()
        try:
            return self._deliver(smtp, sender, email.recipients, data, email.message_id)
        except _ServerHungUp as hung:
            if not reused:
                raise hung.failure from None
        try:
            return self._deliver(self._connect(), sender, email.recipients, data,
                                 email.message_id)
        except _ServerHungUp as hung:
            raise hung.failure from None

    def _take_connection(self) -> tuple[smtplib.SMTP, bool]:
        """An idle connection (the most recently used: the likeliest to be alive), else a new
        one. A new one is opened only when every open one is held by another worker thread, so
        there are never more than `connections`."""
        with self._idle_lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _put_back(self, smtp: smtplib.SMTP) -> None:
        if smtp.sock is None:  # smtplib closes a connection that failed under it
            return
        with self._idle_lock:
            self._idle.append(smtp)

    def _deliver(self, smtp: smtplib.SMTP, sender: str, recipients: tuple[str, ...],
                 data: bytes, message_id: str) -> SendResult:
        try:
            result = self._transaction(smtp, sender, recipients, data, message_id)
        except BaseException:
            _abort_transaction(smtp)
            raise
        finally:
            self._put_back(smtp)
        return result

    def _transaction(self, smtp: smtplib.SMTP, sender: str, recipients: tuple[str, ...],
                     data: bytes, message_id: str) -> SendResult:
        if len(recipients) == 1 and smtp.has_extn("pipelining"):
            return self._pipelined(smtp, sender, recipients[0], data, message_id)
        try:
            # docmd rather than mail()/rcpt(): the addresses are checked plain addr-specs, and
            # smtplib's re-parsing of them was a tenth of a message's cost.
            code, reply = self._command(smtp, "MAIL FROM",
                                        lambda: smtp.docmd("MAIL", f"FROM:<{sender}>"))
        except EffectFailed as failure:
            if failure.code == "smtp_unavailable":
                raise _ServerHungUp(failure) from None
            raise
        if code == 421:  # "closing the channel": what some servers say to an idle connection
            raise _ServerHungUp(self._reply_failure("MAIL FROM", code, reply))
        if code != 250:
            raise self._reply_failure("MAIL FROM", code, reply)

        accepted: list[str] = []
        rejected: dict[str, str] = {}
        for recipient in recipients:
            code, reply = self._command(smtp, f"RCPT TO:<{recipient}>",
                                        lambda: smtp.docmd("RCPT", f"TO:<{recipient}>"))
            if code in (250, 251):
                accepted.append(recipient)
            elif 500 <= code <= 599:
                rejected[recipient] = reply
            else:
                raise self._reply_failure(f"RCPT TO:<{recipient}>", code, reply)
        if not accepted:
            _abort_transaction(smtp)
            return SendResult(None, (), rejected)

        code, reply = self._command(smtp, "DATA", lambda: smtp.data(data))
        if code == 250:
            return SendResult(_queue_id(reply) or message_id, tuple(accepted), rejected)
        if 500 <= code <= 599:  # the message itself is refused: for every recipient
            return SendResult(None, (), {**rejected, **dict.fromkeys(accepted, reply)})
        raise self._reply_failure("DATA", code, reply)

    def _pipelined(self, smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes,
                   message_id: str) -> SendResult:
        """One recipient, RFC 2920: MAIL, RCPT and DATA in one write and their replies read in
        order — two round trips a message instead of four (the server's CPU and ours go to
        each one). Only with one recipient: then a refused RCPT leaves no recipient, so the
        server refuses DATA too (or, were it to take it, an empty body goes to nobody); with
        several, a DATA already accepted could not be taken back when one RCPT says 4xx."""
        batch = f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n"
        try:
            code, reply = self._command(smtp, "MAIL FROM",
                                        lambda: (smtp.send(batch), smtp.getreply())[1])
        except EffectFailed as failure:
            if failure.code == "smtp_unavailable":
                raise _ServerHungUp(failure) from None
            raise
        if code == 421:
            smtp.close()  # it is closing: its other replies will not come
            raise _ServerHungUp(self._reply_failure("MAIL FROM", code, reply))
        mail = code, reply
        rcpt = self._command(smtp, f"RCPT TO:<{recipient}>", smtp.getreply)
        code, reply = self._command(smtp, "DATA", smtp.getreply)
        if code == 354:   # the body must follow now, whatever came before
            body = data if rcpt[0] in (250, 251) and mail[0] == 250 else b""
            code, reply = self._command(smtp, "DATA", lambda: _send_body(smtp, body))
        if mail[0] != 250:
            raise self._reply_failure("MAIL FROM", *mail)
        if rcpt[0] not in (250, 251) and not 500 <= rcpt[0] <= 599:
            raise self._reply_failure(f"RCPT TO:<{recipient}>", *rcpt)
        if rcpt[0] in (250, 251) and code == 250:
            return SendResult(_queue_id(reply) or message_id, (recipient,), {})
        if rcpt[0] in (250, 251) and not 500 <= code <= 599:
            raise self._reply_failure("DATA", code, reply)
        _abort_transaction(smtp)   # refused for good; RSET for the next message
        return SendResult(None, (), {recipient: rcpt[1] if rcpt[0] >= 500 else reply})

    def _command(self, smtp: smtplib.SMTP, doing: str,
                 call: Callable[[], tuple[int, bytes]]) -> tuple[int, str]:
        """The reply to one command as (code, "code text"); a lost connection or a timeout
        is raised as an `EffectFailed`."""
        try:
            code, reply = call()
        except smtplib.SMTPResponseException as exc:
            if smtp.sock is None:  # smtplib gave up on the connection (a reply line too long)
                raise self._failure(doing, exc) from None
            code, reply = exc.smtp_code, exc.smtp_error  # DATA refused before its 354
        except (smtplib.SMTPException, OSError) as exc:
            raise self._failure(doing, exc) from None
        return code, _reply_text(code, reply)

    def _connect(self) -> smtplib.SMTP:
        """A new connection, greeted, upgraded to TLS and logged in as configured."""
        try:
            if self.tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, local_hostname=self._local_hostname,
                    timeout=self.timeout, context=self._ssl_context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, local_hostname=self._local_hostname,
                                    timeout=self.timeout)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._failure("connecting", exc) from None
        # smtplib looks the name up (getfqdn, a DNS query) for every connection unless given.
        self._local_hostname = smtp.local_hostname
        doing = "EHLO"
        try:
            smtp.ehlo_or_helo_if_needed()
            if self.starttls:
                doing = "STARTTLS"
                smtp.starttls(context=self._ssl_context)
                doing = "EHLO"
                smtp.ehlo_or_helo_if_needed()
            if self.username is not None:
                doing = "AUTH"
                smtp.login(self.username, self.password or "")
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise self._failure(doing, exc) from None
        return smtp

    def _shut_down(self, executor: ThreadPoolExecutor) -> None:
        executor.shutdown(wait=True)  # the messages under way put their connections back
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    # --- failures ---

    def _reply_failure(self, doing: str, code: int, reply: str) -> EffectFailed:
        if 500 <= code <= 599:
            return EffectFailed("smtp_refused", f"the {self._where} refused {doing}: {reply}",
                                retryable=False)
        return EffectFailed("smtp_temporary", f"the {self._where} answered {doing} with "
                                              f"{reply}", retryable=True)

    def _failure(self, doing: str, exc: BaseException) -> EffectFailed:
        """What an exception of smtplib, ssl or the socket means, as an `EffectFailed`."""
        if _timed_out(exc):
            return EffectFailed("smtp_timeout", f"the {self._where} did not answer {doing} "
                                f"within {self.timeout:g} s", retryable=True)
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return EffectFailed("smtp_unavailable", f"the {self._where} closed the connection "
                                f"({doing}): {exc}", retryable=True)
        if isinstance(exc, smtplib.SMTPResponseException):  # greeting, EHLO, STARTTLS, AUTH
            reply = _reply_text(exc.smtp_code, exc.smtp_error)
            if doing == "AUTH" and exc.smtp_code >= 500:  # 535: bad credentials
                return self._auth_failure(reply)
            return self._reply_failure(doing, exc.smtp_code, reply)
        if doing == "AUTH" and isinstance(exc, smtplib.SMTPException):
            return self._auth_failure(str(exc))  # no AUTH offered, no mechanism in common
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return EffectFailed("smtp_tls_failed", f"the {self._where} does not offer {doing}",
                                retryable=False)
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, (ssl.SSLEOFError,
                                                                  ssl.SSLZeroReturnError)):
            # A certificate that does not verify, or no TLS on the other side: configuration,
            # which retrying cannot fix.
            return EffectFailed("smtp_tls_failed", f"TLS with the {self._where} failed "
                                f"({doing}): {_describe(exc)}", retryable=False)
        return EffectFailed("smtp_unavailable", f"the {self._where} could not be used "
                            f"({doing}): {_describe(exc)}", retryable=True)

    def _auth_failure(self, reply: str) -> EffectFailed:
        return EffectFailed("smtp_auth_failed", f"the {self._where} refused to log in "
                            f"{self.username!r}: {reply}", retryable=False)


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _send_body(smtp: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """A message's body after DATA's 354 (dots doubled, RFC 5321 4.5.2), and its reply."""
    body = _LEADING_DOT.sub(b"..", data)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    smtp.send(body + b".\r\n")
    return smtp.getreply()


def _abort_transaction(smtp: smtplib.SMTP) -> None:
    """RSET, so the connection can take the next message; closed if even that fails."""
    if smtp.sock is None:
        return
    try:
        code, _ = smtp.rset()
    except (smtplib.SMTPException, OSError):
        code = 0
    if code != 250:
        smtp.close()


def _timed_out(exc: BaseException | None) -> bool:
    # smtplib turns a socket timeout during a reply into SMTPServerDisconnected, with the
    # timeout as its context.
    while exc is not None:
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"


def _queue_id(reply: str) -> str | None:
    match = _QUEUE_ID.search(reply)
    return None if match is None else match.group(1) or match.group(2)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

