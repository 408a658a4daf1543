"""Events: ingest one or a batch, and list recent ones."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route
from flowd.auth import Access
from flowd.contact_fields import CONTACT_FIELDS, CONTACT_ID
from flowd.errors import Problem, ValidationError
from flowd.ingest import IncomingEvent
from flowd.schema import Array, Either, Json, Nullable, Object, String
from flowd.store import events as event_store
from flowd.timeutil import parse_time

MAX_BATCH = 1000


def _check_time(value: str) -> str | None:
    try:
        parse_time(value)
    except ValueError as exc:
        return str(exc)
    return None


EVENT = Object(
    title="Event",
    fields={
        "name": String(min_len=1, max_len=200, description="e.g. order.completed"),
        "contact_id": Nullable(CONTACT_ID),
        "properties": Json(object_only=True),
        "timestamp": String(check=_check_time, format="date-time",
                            description="When it happened (default: when received)."),
        "message_id": String(min_len=1, max_len=200,
                             description="De-duplication key: a repeat returns the first result."),
        "contact": CONTACT_FIELDS,
    },
    required=("name",),
    read_only=("id", "received_at"),
)
BATCH = Object({"batch": Array(EVENT, min_items=1, max_items=MAX_BATCH)}, required=("batch",),
               title="EventBatch")
EVENTS_BODY = Either((EVENT, BATCH), pick=lambda v: 1 if isinstance(v, dict) and "batch" in v else 0)

RESULT_SCHEMA = {"type": "object", "title": "IngestResult", "properties": {
    "id": {"type": "string"}, "duplicate": {"type": "boolean"},
    "runs_started": {"type": "array", "items": {"type": "string"}},
    "runs_resumed": {"type": "array", "items": {"type": "string"}}}}
EVENT_SCHEMA = {"type": "object", "title": "StoredEvent", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "contact_id": {"type": ["string", "null"]},
    "properties": {"type": "object"}, "timestamp": {"type": "string", "format": "date-time"},
    "received_at": {"type": "string", "format": "date-time"},
    "message_id": {"type": ["string", "null"]}}}


def _incoming(raw: dict[str, Any], path: str, problems: list[Problem]) -> IncomingEvent:
    if raw.get("contact") is not None and raw.get("contact_id") is None:
        problems.append(Problem(f"{path}contact_id", "is required when contact is given"))
    timestamp = raw.get("timestamp")
    return IncomingEvent(
        name=raw["name"], contact_id=raw.get("contact_id"), properties=raw.get("properties"),
        timestamp=parse_time(timestamp) if timestamp is not None else None,
        message_id=raw.get("message_id"), contact=raw.get("contact"))


@route("POST", "/v1/events", access=Access.INGEST, tag="events", body=EVENTS_BODY, status=202,
       summary=f"Send one event, or {{\"batch\": [...]}} of up to {MAX_BATCH}. Durable on 202.",
       response={"oneOf": [RESULT_SCHEMA, {"type": "object", "properties": {
           "data": {"type": "array", "items": RESULT_SCHEMA}}}]})
async def post_events(call: Call) -> web.Response:
    problems: list[Problem] = []
    if "batch" in call.body:
        events = [_incoming(raw, f"batch[{i}].", problems) for i, raw in enumerate(call.body["batch"])]
    else:
        events = [_incoming(call.body, "", problems)]
    if problems:
        raise ValidationError(problems)
    results = await call.services.ingest.ingest(call.project, events)
    if "batch" in call.body:
        return json_response({"data": [r.to_json() for r in results]}, status=202)
    return json_response(results[0].to_json(), status=202)


@route("GET", "/v1/events", access=Access.READ, tag="events", paginated=True,
       query=(Param("name", String(min_len=1, max_len=200, description="Exact event name.")),
              Param("contact_id", CONTACT_ID)),
       summary="Recent events, newest first.", response=EVENT_SCHEMA)
async def list_events(call: Call) -> web.Response:
    page = await call.services.db.read(
        event_store.list_events, call.project, name=call.query.get("name"),
        contact_id=call.query.get("contact_id"), before=call.before, limit=call.limit)
    return page_response(page)
