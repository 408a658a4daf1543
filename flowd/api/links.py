"""The routes behind the links in messages, which recipients (and their mail providers) follow
without an API key: unsubscribe (RFC 8058 one-click, or a page with a button), the open
pixel, and click redirects.

GET never changes anything, because mail scanners fetch every link they see; only a POST
unsubscribes. A token this server did not make — unknown, altered, or for another link — is a
404, never a redirect: the click route leads only to a URL that was in that very message.
"""

from __future__ import annotations

import base64
import html
import logging
from typing import Any

from aiohttp import web

from flowd.api.pages import PRIVATE, page
from flowd.api.routes import FORM, Call, Param, route
from flowd.auth import Access
from flowd.errors import FlowdError, NotFound
from flowd.ingest import IncomingEvent
from flowd.links import read_click_token, read_open_token, token_hash
from flowd.store import Transaction
from flowd.store.records import Message
from flowd.validation import Object, String

log = logging.getLogger("flowd.links")

_TOKEN = (Param("token", String(min_len=1, max_len=200, description=(
    "A token from a link in a message; anything else is a 404."))),)
# The smallest transparent GIF: 1×1, one colour.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
ONE_CLICK = Object({"List-Unsubscribe": String(description="`One-Click` (RFC 8058).")},
                   description="RFC 8058's `List-Unsubscribe=One-Click`, the page's button, or "
                               "no body at all: every POST unsubscribes.")

_ASK = ("Unsubscribe", (
    "<p>Stop receiving these {channel} messages?</p>"
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">Unsubscribe</button></form>'))
_DONE = ("You are unsubscribed", (
    "<p>You will not receive these {channel} messages any more.</p>"))


def _html(text: tuple[str, str], channel: str) -> web.Response:
    title, body = text
    return page(title, body.replace("{channel}", html.escape(channel)))


def _token_owner(tx: Transaction, token: str) -> tuple[str, str, str]:
    owner = tx.messages.unsubscribe_token(token_hash(token))
    if owner is None:
        raise NotFound("no such unsubscribe link")
    return owner


@route("GET", "/v1/unsubscribe/{token}", access=Access.PUBLIC, tag="links", errors=(404,),
       path_params=_TOKEN, content_type="text/html", response=String(),
       summary="The unsubscribe page: asks, changes nothing (mail scanners fetch links).")
async def unsubscribe_page(call: Call) -> web.Response:
    token = call.path("token")
    _, _, channel = await call.services.store.read(lambda tx: _token_owner(tx, token))
    return _html(_ASK, channel)


@route("POST", "/v1/unsubscribe/{token}", access=Access.PUBLIC, tag="links", errors=(404,),
       path_params=_TOKEN, body=ONE_CLICK, body_optional=True, body_type=FORM,
       content_type="text/html", response=String(),
       summary="Unsubscribe (RFC 8058 one-click, or the page's button).",
       description="Sets the contact's `subscribed.<channel>` to false and ingests "
                   "`contact.unsubscribed` (property `channel`) the first time; again, it "
                   "changes nothing. A contact deleted since is a 200 too: nothing is sent "
                   "to it.")
async def unsubscribe(call: Call) -> web.Response:
    token, now = call.path("token"), call.services.clock.now_ms()
    ingest = call.services.ingest

    def unit(tx: Transaction) -> str:
        project_id, contact_id, channel = _token_owner(tx, token)
        contact = tx.contacts.get(project_id, contact_id)
        if contact is not None and contact.subscribed.get(channel, True):
            upserted = tx.contacts.upsert(project_id, contact_id,
                                          {"subscribed": {channel: False}}, now)
            ingest.contact_changed(tx, project_id, upserted.change, now)
            ingest.store_events(tx, project_id, [IncomingEvent(
                "contact.unsubscribed", contact_id, {"channel": channel})], now)
        return channel

    channel = await call.services.store.write(unit)
    return _html(_DONE, channel)


@route("GET", "/v1/t/o/{token}", access=Access.PUBLIC, tag="links", errors=(404,),
       path_params=_TOKEN, content_type="image/gif", response=String(format="binary"),
       summary="The open pixel: a 1×1 GIF; ingests `email.opened` for the message's contact.")
async def open_pixel(call: Call) -> web.Response:
    message_id = read_open_token(call.services.mailer.links_key, call.path("token"))
    message = await _message(call, message_id)
    await _engagement(call, message, "email.opened", {})
    return web.Response(body=PIXEL, content_type="image/gif", headers=PRIVATE)


@route("GET", "/v1/t/c/{token}", access=Access.PUBLIC, tag="links", errors=(404,),
       path_params=_TOKEN, status=302, response=None,
       summary="A tracked link: 302 to the URL that was in the message, and nowhere else; "
               "ingests `email.clicked` (with `url`).")
async def click(call: Call) -> web.Response:
    found = read_click_token(call.services.mailer.links_key, call.path("token"))
    message = await _message(call, found[0] if found else None)
    links = message.content.get("links", [])
    index = found[1] if found else -1
    if not 0 <= index < len(links):
        raise NotFound("no such link")
    url = links[index]
    await _engagement(call, message, "email.clicked", {"url": url})
    return web.Response(status=302, headers={**PRIVATE, "Location": url})


async def _message(call: Call, message_id: str | None) -> Message:
    message = None
    if message_id is not None:
        message = await call.services.store.read(lambda tx: tx.messages.get(None, message_id))
    if message is None:
        raise NotFound("no such link")
    return message


async def _engagement(call: Call, message: Message, name: str, extra: dict[str, Any]) -> None:
    """Ingest an open or click like any other event. The recipient gets the pixel or the
    redirect even when it could not be stored: their mail must work; the log says what was
    lost."""
    properties = {"message_id": message.id, "run_id": message.run_id,
                  "workflow_id": message.workflow_id, "step_id": message.step_id, **extra}
    try:
        await call.services.ingest.ingest(message.project_id, [IncomingEvent(
            name, message.contact_id, properties)])
    except FlowdError as error:
        log.warning("%s of message %s not recorded: %s", name, message.id, error.message)
