"""Contacts: upsert, read, list, delete."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route
from flowd.auth import Access
from flowd.contact_fields import CONTACT_FIELDS, CONTACT_ID
from flowd.errors import NotFound, Problem, ValidationError
from flowd.schema import String
from flowd.store import contacts as contact_store

CONTACT_SCHEMA = {
    "type": "object", "title": "Contact",
    "properties": {
        "id": {"type": "string"}, "email": {"type": ["string", "null"]},
        "phone": {"type": ["string", "null"]}, "timezone": {"type": ["string", "null"]},
        "traits": {"type": "object"}, "tags": {"type": "array", "items": {"type": "string"}},
        "subscribed": {"type": "object", "properties": {
            "email": {"type": "boolean"}, "sms": {"type": "boolean"}, "push": {"type": "boolean"}}},
        "push_tokens": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}


def _contact_id(call: Call) -> str:
    problems: list[Problem] = []
    CONTACT_ID.validate(call.path("id"), "id", problems)
    if problems:
        raise ValidationError(problems)
    return call.path("id")


@route("PUT", "/v1/contacts/{id}", access=Access.INGEST, tag="contacts", body=CONTACT_FIELDS,
       summary="Create or update a contact (201 created, 200 updated).", response=CONTACT_SCHEMA)
async def upsert_contact(call: Call) -> web.Response:
    now = call.services.clock.now_ms()
    contact, created = await call.services.db.write(
        contact_store.upsert_contact, call.project, _contact_id(call), call.body, now)
    return json_response(contact.to_json(), status=201 if created else 200)


@route("GET", "/v1/contacts/{id}", access=Access.READ, tag="contacts", errors=(404,),
       summary="Get one contact.", response=CONTACT_SCHEMA)
async def get_contact(call: Call) -> web.Response:
    contact = await call.services.db.read(contact_store.get_contact, call.project, _contact_id(call))
    if contact is None:
        raise NotFound("no such contact")
    return json_response(contact.to_json())


@route("GET", "/v1/contacts", access=Access.READ, tag="contacts", paginated=True,
       query=(Param("email", String(min_len=1, max_len=254, description="Exact email address.")),
              Param("tag", String(min_len=1, max_len=100, description="Contacts carrying this tag."))),
       summary="List contacts, newest first.", response=CONTACT_SCHEMA)
async def list_contacts(call: Call) -> web.Response:
    page = await call.services.db.read(
        contact_store.list_contacts, call.project, email=call.query.get("email"),
        tag=call.query.get("tag"), before=call.before, limit=call.limit)
    return page_response(page)


@route("DELETE", "/v1/contacts/{id}", access=Access.ADMIN, tag="contacts", status=204,
       errors=(404,), summary="Delete a contact (its personal fields with it) and cancel its "
       "active runs.")
async def delete_contact(call: Call) -> web.Response:
    await call.services.runs.erase_contact(call.project, _contact_id(call))
    return web.Response(status=204)
