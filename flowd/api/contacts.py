"""Contacts: upsert, read, list, delete."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route, shape
from flowd.auth import Access
from flowd.contact_fields import CHANNELS, CONTACT_FIELDS, CONTACT_ID
from flowd.errors import NotFound
from flowd.store import Transaction
from flowd.store.records import Upserted
from flowd.validation import (
    Array,
    Boolean,
    Json,
    Nullable,
    Object,
    String,
    text,
    time_string,
)

CONTACT = shape("Contact", {
    "id": String(), "email": Nullable(String()), "phone": Nullable(String()),
    "timezone": Nullable(String()), "traits": Json(object_only=True), "tags": Array(String()),
    "subscribed": Object({c: Boolean() for c in CHANNELS}, required=CHANNELS),
    "push_tokens": Array(String()), "created_at": time_string(), "updated_at": time_string(),
})
_ID = (Param("id", CONTACT_ID),)


@route("PUT", "/v1/contacts/{id}", access=Access.INGEST, tag="contacts", body=CONTACT_FIELDS,
       path_params=_ID, response=CONTACT, other_statuses={201: "Created."},
       links_to="/v1/contacts/{id}",
       summary="Create or update a contact (201 created, 200 updated).",
       description="`traits` merge shallowly into the stored ones (a null trait is deleted); "
                   "other given fields replace. The time zone must exist (422 otherwise). "
                   "The change is ingested, in the same transaction, as contact events that "
                   "trigger, resume and exit runs like posted ones: `contact.created`, or "
                   "`contact.updated` (property `changed`: the changed field names such as "
                   "`email`, `traits.plan`, `tags`), then `contact.tag_added` / "
                   "`contact.tag_removed` (property `tag`) per tag. Only events something "
                   "listens for (a trigger, an `exit_on` rule, a waiting run) are stored, so "
                   "they show in `GET /v1/events` only then.")
async def upsert_contact(call: Call) -> web.Response:
    now, ingest = call.services.clock.now_ms(), call.services.ingest

    def unit(tx: Transaction) -> Upserted:
        upserted = tx.contacts.upsert(call.project, call.path("id"), call.body, now)
        ingest.contact_changed(tx, call.project, upserted.change, now)
        return upserted

    upserted = await call.services.store.write(unit)
    return json_response(upserted.contact.to_json(), status=201 if upserted.created else 200)


@route("GET", "/v1/contacts/{id}", access=Access.READ, tag="contacts", errors=(404,),
       path_params=_ID, summary="Get one contact.", response=CONTACT)
async def get_contact(call: Call) -> web.Response:
    contact = await call.services.store.get_contact(call.project, call.path("id"))
    if contact is None:
        raise NotFound("no such contact")
    return json_response(contact.to_json())


@route("GET", "/v1/contacts", access=Access.READ, tag="contacts", paginated=True,
       query=(Param("email", String(min_len=1, max_len=254, description="Exact email address.")),
              Param("tag", text(1, 100, description="Contacts carrying this tag."))),
       summary="List contacts, newest first.", response=CONTACT)
async def list_contacts(call: Call) -> web.Response:
    page = await call.services.store.list_contacts(
        call.project, email=call.query.get("email"), tag=call.query.get("tag"),
        before=call.before, limit=call.limit)
    return page_response(page)


@route("DELETE", "/v1/contacts/{id}", access=Access.ADMIN, tag="contacts", status=204,
       errors=(404,), path_params=_ID,
       summary="Delete a contact (its personal fields with it) and cancel its active runs.",
       description="No contact event is ingested: the contact is gone, and its runs with it.")
async def delete_contact(call: Call) -> web.Response:
    await call.services.runs.erase_contact(call.project, call.path("id"))
    return web.Response(status=204)
