"""Message templates: create, list, read, replace, delete (not while a running workflow uses
one), and preview with a contact and an event."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route, shape
from flowd.auth import Access
from flowd.contact_fields import CONTACT_ID
from flowd.definitions import uses_template
from flowd.errors import Conflict, NotFound, Problem, ValidationError
from flowd.message_templates import compile_content
from flowd.store import Transaction
from flowd.store.records import CHANNELS, NameTaken, Template
from flowd.template_schema import TEMPLATE_BODY, template_content
from flowd.templates import Scope
from flowd.timeutil import format_ms
from flowd.validation import Enum, Json, Object, String, time_string

TEMPLATE = shape("Template", {
    "id": String(), "name": String(), "channel": Enum(CHANNELS),
    "subject": String(), "html": String(), "text": String(), "body": String(),
    "title": String(), "data": Json(object_only=True),
    "created_at": time_string(), "updated_at": time_string(),
}, optional=("subject", "html", "text", "body", "title", "data"),
    description="A template: the fields of its channel.")
PREVIEW = Object({"contact_id": CONTACT_ID.described("A contact of the project (a 422 "
                                                     "unknown_contact otherwise)."),
                  "event": Json(object_only=True, description="The event the templates see as "
                                "`event` (name, properties…).")}).named("PreviewRequest")
RENDERED = shape("RenderedMessage", {
    "channel": Enum(CHANNELS), "subject": String(), "html": String(), "text": String(),
    "body": String(), "title": String(), "data": Json(object_only=True)},
    optional=("subject", "html", "text", "body", "title", "data"))
_ID = (Param("id", String(min_len=1, max_len=200, description="The template's id or name.")),)


def _existing(tx: Transaction, project_id: str, ref: str) -> Template:
    template = tx.templates.get(project_id, ref)
    if template is None:
        raise NotFound("no such template")
    return template


@route("POST", "/v1/templates", access=Access.WRITE, tag="templates", body=TEMPLATE_BODY,
       status=201, response=TEMPLATE, errors=(409,), links_to="/v1/templates/{id}",
       summary="Create a message template (409 when the name is taken).")
async def create_template(call: Call) -> web.Response:
    content, now = template_content(call.body), call.services.clock.now_ms()
    try:
        template = await call.services.store.write(lambda tx: tx.templates.create(
            project_id=call.project, name=call.body["name"], channel=call.body["channel"],
            content=content, now=now))
    except NameTaken:
        raise Conflict(f"a template named {call.body['name']!r} exists") from None
    return json_response(template.to_json(), status=201)


@route("GET", "/v1/templates", access=Access.READ, tag="templates", paginated=True,
       query=(Param("channel", Enum(CHANNELS)),), response=TEMPLATE,
       summary="List templates, newest first.")
async def list_templates(call: Call) -> web.Response:
    page = await call.services.store.read(lambda tx: tx.templates.page(
        call.project, channel=call.query.get("channel"), before=call.before, limit=call.limit))
    return page_response(page)


@route("GET", "/v1/templates/{id}", access=Access.READ, tag="templates", errors=(404,),
       path_params=_ID, response=TEMPLATE, summary="One template, by id or name.")
async def get_template(call: Call) -> web.Response:
    template = await call.services.store.read(
        lambda tx: _existing(tx, call.project, call.path("id")))
    return json_response(template.to_json())


@route("PUT", "/v1/templates/{id}", access=Access.WRITE, tag="templates", errors=(404, 409),
       path_params=_ID, body=TEMPLATE_BODY, response=TEMPLATE,
       summary="Replace a template's name and fields (its channel stays).",
       description="Runs that send it from now on send the new version.")
async def replace_template(call: Call) -> web.Response:
    content, now = template_content(call.body), call.services.clock.now_ms()

    def unit(tx: Transaction) -> Template:
        template = _existing(tx, call.project, call.path("id"))
        if template.channel != call.body["channel"]:
            raise Conflict(f"the template is for {template.channel}; its channel cannot change")
        return tx.templates.update(template, name=call.body["name"], content=content, now=now)

    try:
        template = await call.services.store.write(unit)
    except NameTaken:
        raise Conflict(f"a template named {call.body['name']!r} exists") from None
    return json_response(template.to_json())


@route("DELETE", "/v1/templates/{id}", access=Access.WRITE, tag="templates", status=204,
       errors=(404, 409), path_params=_ID,
       summary="Delete a template (409, naming them, while active or paused workflows use it).")
async def delete_template(call: Call) -> web.Response:
    def unit(tx: Transaction) -> None:
        template = _existing(tx, call.project, call.path("id"))
        users = [w for w in tx.workflows.running(call.project)
                 if uses_template(w.definition, template.id, template.name)]
        if users:
            names = ", ".join(f"{w.name} ({w.id})" for w in users)
            raise Conflict(f"active or paused workflows use this template: {names}",
                           [{"workflow_id": w.id, "name": w.name} for w in users])
        tx.templates.delete(template.id)

    await call.services.store.write(unit)
    return web.Response(status=204)


@route("POST", "/v1/templates/{id}/preview", access=Access.READ, tag="templates",
       errors=(404,), path_params=_ID, body=PREVIEW, body_optional=True, response=RENDERED,
       summary="Render a template for a contact and an event, sending nothing.")
async def preview_template(call: Call) -> web.Response:
    contact_id = call.body.get("contact_id")

    def query(tx: Transaction) -> tuple[Template, dict[str, Any] | None]:
        contact = tx.contacts.get(call.project, contact_id) if contact_id else None
        if contact_id and contact is None:
            # The template is there; what the body names is not: a 422 at its path (a 404
            # would say the template was missing).
            raise ValidationError([Problem("contact_id", "no contact has this id",
                                           "unknown_contact")])
        return (_existing(tx, call.project, call.path("id")),
                contact.to_json() if contact else None)

    template, contact = await call.services.store.read(query)
    now = call.services.clock.now_ms()
    scope = Scope({"contact": contact or {}, "event": call.body.get("event") or {},
                   "vars": {}, "steps": {}, "run": {}, "now": format_ms(now)})
    rendered = compile_content(template.channel, template.content).render(scope)
    return json_response({"channel": template.channel, **rendered})
