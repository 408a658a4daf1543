"""Events: ingest one or a batch, and list recent ones."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route, shape
from flowd.auth import Access
from flowd.contact_fields import CONTACT_FIELDS, CONTACT_ID
from flowd.ingest import IncomingEvent
from flowd.timeutil import parse_time
from flowd.validation import (
    Array,
    Boolean,
    Either,
    Json,
    Nullable,
    Object,
    String,
    text,
    time_string,
)

MAX_BATCH = 1000


def _check_time(value: str) -> str | None:
    try:
        parse_time(value)
    except ValueError as exc:
        return str(exc)
    return None


EVENT = Object(
    fields={
        "name": text(1, 200, description="e.g. order.completed"),
        "contact_id": Nullable(CONTACT_ID),
        "properties": Json(object_only=True),
        "timestamp": String(check=_check_time, check_code="invalid_time", format="date-time",
                            description="When it happened (default: when received). RFC 3339 "
                                        "with an offset or Z, years 0001–9999."),
        "message_id": text(1, 200, description="De-duplication key: a repeat in this project "
                                               "returns the first result and starts nothing."),
        "contact": CONTACT_FIELDS,
    },
    required=("name",),
    requires={"contact": ("contact_id",)},
    read_only={"id": String(), "received_at": time_string()},
    description="`contact` upserts that contact first, in the same transaction (it needs "
                "`contact_id`). That change, or a `contact_id` not known yet, also ingests the "
                "contact events (`contact.created`, `contact.updated`, `contact.tag_added`, "
                "`contact.tag_removed`; see `PUT /v1/contacts/{id}`) — only those something "
                "listens for.",
).named("NewEvent")
BATCH = Object({"batch": Array(EVENT, min_items=1, max_items=MAX_BATCH)},
               required=("batch",)).named("EventBatch")
EVENTS_BODY = Either((EVENT, BATCH), pick=lambda v: 1 if isinstance(v, dict) and "batch" in v else 0)

_RUN_IDS = Array(String())
RESULT = shape("IngestResult", {
    "id": String(description="The event's id (the first one's, for a duplicate)."),
    "duplicate": Boolean(),
    "runs_started": _RUN_IDS, "runs_resumed": _RUN_IDS,
    "runs_exited": Array(String(), description="Active runs an exit_on rule ended."),
})
BATCH_RESULT = shape("IngestBatchResult", {"data": Array(RESULT, description="In the order of "
                                                                             "the batch.")})
STORED_EVENT = shape("Event", {
    "id": String(), "name": String(), "contact_id": Nullable(String()),
    "properties": Json(object_only=True), "timestamp": time_string(),
    "received_at": time_string(), "message_id": Nullable(String()),
})


def _incoming(raw: dict[str, Any]) -> IncomingEvent:
    timestamp = raw.get("timestamp")
    return IncomingEvent(
        name=raw["name"], contact_id=raw.get("contact_id"), properties=raw.get("properties"),
        timestamp=parse_time(timestamp) if timestamp is not None else None,
        message_id=raw.get("message_id"), contact=raw.get("contact"))


@route("POST", "/v1/events", access=Access.INGEST, tag="events", body=EVENTS_BODY, status=202,
       summary=f"Send one event, or {{\"batch\": [...]}} of up to {MAX_BATCH}. Durable on 202.",
       response=Either((RESULT, BATCH_RESULT), pick=lambda v: 0),
       description="A batch is stored all or none, and answered with one result per event.")
async def post_events(call: Call) -> web.Response:
    if "batch" in call.body:
        events = [_incoming(raw) for raw in call.body["batch"]]
    else:
        events = [_incoming(call.body)]
    results = await call.services.ingest.ingest(call.project, events)
    if "batch" in call.body:
        return json_response({"data": [r.to_json() for r in results]}, status=202)
    return json_response(results[0].to_json(), status=202)


@route("GET", "/v1/events", access=Access.READ, tag="events", paginated=True,
       query=(Param("name", text(1, 200, description="Exact event name.")),
              Param("contact_id", CONTACT_ID)),
       summary="Recent events, newest first.", response=STORED_EVENT,
       description="Contact events (`contact.created`, …) are stored, and so listed, only "
                   "while a trigger, an `exit_on` rule or a waiting run listens for their name.")
async def list_events(call: Call) -> web.Response:
    page = await call.services.store.list_events(
        call.project, name=call.query.get("name"), contact_id=call.query.get("contact_id"),
        before=call.before, limit=call.limit)
    return page_response(page)
