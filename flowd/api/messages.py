"""Messages: the record of every message (list with filters, one with its rendered content),
and the transactional email sent outside any workflow."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Any

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route, shape
from flowd.auth import Access
from flowd.contact_fields import CONTACT_ID, EMAIL
from flowd.effects.messages import EmailAttachment, EmailRequest
from flowd.errors import NotFound, Problem, ValidationError
from flowd.store.records import MESSAGE_CHANNELS, MessageStatus
from flowd.validation import (
    Array,
    Either,
    Enum,
    Json,
    Nullable,
    Object,
    String,
    time_string,
)

MAX_RECIPIENTS = 50
MAX_ATTACHMENTS = 20
# Attachments a mail client would run on a click: the big providers refuse them outright,
# and so does flowd (Postmark and SES keep similar lists).
_FORBIDDEN_EXTENSIONS = frozenset((
    "ade", "adp", "apk", "appx", "bat", "cab", "chm", "cmd", "com", "cpl", "dll", "dmg", "exe",
    "hta", "ins", "isp", "jar", "js", "jse", "lib", "lnk", "mde", "msc", "msi", "msix", "msp",
    "mst", "nsh", "pif", "ps1", "scr", "sct", "shb", "sys", "vb", "vbe", "vbs", "vxd", "wsc",
    "wsf", "wsh"))
_MEDIA_TYPE = r"(?:application|audio|font|image|model|text|video)/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"

_ADDRESSES = Array(EMAIL, max_items=MAX_RECIPIENTS)
_FILENAME = String(min_len=1, max_len=255, pattern=r"[^/\\\x00-\x1f\x7f]+",
                   pattern_message="must be a file name without a path or control characters")
ATTACHMENT = Object({
    "filename": _FILENAME,
    "content": String(min_len=1, description="The file's bytes in base64 (RFC 4648)."),
    "content_type": String(max_len=200, pattern=_MEDIA_TYPE, pattern_message=(
        "must be a media type such as application/pdf or image/png")),
}, required=("filename", "content", "content_type"),
    description="Executable attachments (.exe, .js, .bat, … as mail providers refuse them) are "
                "a 422 `forbidden_attachment`; the whole request stays under 1 MiB (413).")
SEND_EMAIL = Object({
    "to": Either((EMAIL, Array(EMAIL, min_items=1, max_items=MAX_RECIPIENTS)),
                 pick=lambda value: 1 if isinstance(value, list) else 0,
                 description=f"One address, or up to {MAX_RECIPIENTS}."),
    "subject": String(max_len=2000),
    "text": String(max_len=500_000),
    "html": String(max_len=500_000),
    "cc": _ADDRESSES,
    "bcc": _ADDRESSES,
    "from": String(min_len=3, max_len=500, description="Default: [email] from."),
    "reply_to": String(min_len=3, max_len=500, description="Default: [email] reply_to."),
    "contact_id": CONTACT_ID.described(
        "The contact it is for (default: the contact whose email is the first `to`): its "
        "bounce, opens and clicks become that contact's events, and the email carries its "
        "unsubscribe link."),
    "attachments": Array(ATTACHMENT, max_items=MAX_ATTACHMENTS),
}, required=("to", "subject")).named("TransactionalEmail")
ACCEPTED = shape("EmailAccepted", {
    "id": String(), "status": Enum(tuple(s.value for s in MessageStatus)),
    "accepted": Array(String()), "rejected": Json(object_only=True, description=(
        "Address → why it will not be sent to (an earlier bounce)."))},
    description="The message is on disk: `sending` goes out in the background (see its record "
                "for the outcome); `suppressed` will not.")
MESSAGE_FIELDS = {
    "id": String(), "channel": Enum(MESSAGE_CHANNELS), "to": String(description=(
        "Comma-separated: email addresses, an SMS's phone number, a push notification's "
        "device token, a Slack webhook URL without its secret last segment.")),
    "subject": Nullable(String(description="An email's subject, a push notification's title; "
                               "null for SMS and Slack.")),
    "body": Nullable(String(description="An email's text part (or the html when there is "
                            "none); the text of an SMS, push notification or Slack message.")),
    "status": Enum(tuple(s.value for s in MessageStatus)),
    "provider_message_id": Nullable(String()), "run_id": Nullable(String()),
    "step_id": Nullable(String()), "contact_id": Nullable(String()),
    "error": Nullable(Json(object_only=True, description="{code, message}: why it was "
                           "suppressed, failed or bounced.")),
    "created_at": time_string(), "sent_at": Nullable(time_string())}
MESSAGE = shape("Message", MESSAGE_FIELDS)
MESSAGE_DETAIL = shape("MessageDetail", {
    **MESSAGE_FIELDS, "html": Nullable(String(description="The html as sent (links rewritten "
                                                           "for tracking).")),
    "text": Nullable(String())})


@route("GET", "/v1/messages", access=Access.READ, tag="messages", paginated=True,
       query=(Param("contact_id", CONTACT_ID), Param("channel", Enum(MESSAGE_CHANNELS)),
              Param("status", Enum(tuple(s.value for s in MessageStatus))),
              Param("run_id", String(min_len=1, max_len=200))),
       response=MESSAGE, summary="List messages, newest first.")
async def list_messages(call: Call) -> web.Response:
    q = call.query
    page = await call.services.store.read(lambda tx: tx.messages.page(
        call.project, contact_id=q.get("contact_id"), channel=q.get("channel"),
        status=q.get("status"), run_id=q.get("run_id"), before=call.before, limit=call.limit))
    return page_response(page)


# Message ids start with msg_, which keeps /v1/messages/email (POST only) apart.
@route("GET", "/v1/messages/{id:msg_[^/]+}", access=Access.READ, tag="messages", errors=(404,),
       path_params=(Param("id", String(min_len=5, max_len=200, pattern="msg_[^/]+")),),
       response=MESSAGE_DETAIL, summary="One message, with its rendered subject and content.")
async def get_message(call: Call) -> web.Response:
    message = await call.services.store.read(
        lambda tx: tx.messages.get(call.project, call.path("id")))
    if message is None:
        raise NotFound("no such message")
    return json_response(message.to_json(full=True))


@route("POST", "/v1/messages/email", access=Access.WRITE, tag="messages", body=SEND_EMAIL,
       status=202, response=ACCEPTED,
       summary="Send one email outside any workflow (a password reset, a receipt).",
       description="Answers once the message is recorded; it goes out in the background, and a "
                   "crash before it went out sends it at the next start. An earlier bounce "
                   "suppresses it; an unsubscribe does not (it is not marketing).")
async def send_email(call: Call) -> web.Response:
    body = call.body
    if not body.get("html") and not body.get("text"):
        raise ValidationError([Problem("html", "an email needs html, text or both",
                                       "missing_body")])
    to = tuple(body["to"]) if isinstance(body["to"], list) else (body["to"],)
    contact_id = body.get("contact_id")
    if contact_id is None:
        found = await call.services.store.read(lambda tx: tx.contacts.page(
            call.project, email=to[0], tag=None, before=None, limit=1))
        contact_id = found.items[0].id if found.items else None
    delivery = await call.services.mailer.accept(EmailRequest(
        project_id=call.project, message_id="msg_" + secrets.token_hex(12), to=to,
        subject=body["subject"], text=body.get("text") or None, html=body.get("html") or None,
        contact_id=contact_id, sender=body.get("from"), reply_to=body.get("reply_to"),
        cc=tuple(body.get("cc", ())), bcc=tuple(body.get("bcc", ())),
        attachments=_attachments(body.get("attachments", [])), respect_unsubscribe=False))
    return json_response({"id": delivery.message_id, "status": delivery.status.value,
                          "accepted": list(delivery.accepted),
                          "rejected": delivery.rejected}, status=202)


def _attachments(raw: list[dict[str, Any]]) -> tuple[EmailAttachment, ...]:
    problems: list[Problem] = []
    attachments = []
    for index, item in enumerate(raw):
        path = f"attachments[{index}]"
        extension = item["filename"].rpartition(".")[2].lower() if "." in item["filename"] else ""
        if extension in _FORBIDDEN_EXTENSIONS:
            problems.append(Problem(f"{path}.filename", f".{extension} files are not sent as "
                                    "attachments (a mail client would run them)",
                                    "forbidden_attachment"))
        try:
            content = base64.b64decode(_WHITESPACE.sub("", item["content"]), validate=True)
        except (binascii.Error, ValueError):
            problems.append(Problem(f"{path}.content", "must be base64 (RFC 4648)",
                                    "invalid_base64"))
            continue
        attachments.append(EmailAttachment(item["filename"], content, item["content_type"]))
    if problems:
        raise ValidationError(problems)
    return tuple(attachments)


_WHITESPACE = re.compile(r"\s+")
