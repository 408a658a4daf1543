"""Audiences: create, list, read, replace, delete (not while a running workflow names one), and
evaluate now — how many contacts are members, and which (a page at a time)."""

from __future__ import annotations

from aiohttp import web

from flowd.api.contacts import CONTACT
from flowd.api.routes import Call, Param, json_response, page_response, route, shape
from flowd.auth import Access
from flowd.conditions import CONDITION
from flowd.validation import Integer, Object, String, text, time_string

EVALUATION = (
    "Evaluated at the moment of the call over the contacts as they are then (nothing is "
    "cached): a changed trait counts at once. A relative time in the filter (`after -P7D`) "
    "counts from now. The filter is decided in SQL wherever it can be matched exactly; the "
    "parts SQL cannot decide (a value that is a template, `eq_ignore_case` on non-ASCII text, "
    "a time written other than YYYY-MM-DDTHH:MM:SS[.mmm]Z, …) are evaluated in Python on just "
    "the contacts that reach them, at most [audiences] max_python_rows per call: more is a 422 "
    "whose details (code `audience_too_costly`) name those parts.")
FILTER_RULES = (
    "A condition (the language of trigger filters and condition steps) whose every field is a "
    "field of the contact: `contact.id`, `contact.email`, `contact.phone`, `contact.timezone`, "
    "`contact.traits.<name>` (nested paths too), `contact.tags`, `contact.subscribed.<channel>`, "
    "`contact.push_tokens`, `contact.created_at`, `contact.updated_at`; the aliases of imported "
    "definitions `user.x`, `profile.x`, `trait.x` (the contact's `x`, else `traits.x`) too. A "
    "template in a value may read the contact only. A filter reading anything else is a 422 "
    "with the path of the field.")
_READ_ONLY = {"id": String(), "created_at": time_string(), "updated_at": time_string()}
AUDIENCE_BODY = Object({
    "name": text(1, 200, description="Unique in the project; steps, schedule triggers and bulk "
                                     "jobs name an audience by id or name."),
    "filter": CONDITION,
    "description": String(max_len=2000),
}, required=("name", "filter"), read_only=_READ_ONLY,
    description="`filter`: " + FILTER_RULES).named("AudienceInput")
AUDIENCE = shape("Audience", {
    "id": String(description="aud_…"), "name": String(), "description": String(),
    "filter": CONDITION, "created_at": time_string(), "updated_at": time_string(),
}, description="A named filter over the project's contacts.")
COUNT = shape("AudienceCount", {"count": Integer(min=0, description="Members now.")})
_ID = (Param("id", String(min_len=1, max_len=200, description="The audience's id (aud_…).")),)


@route("POST", "/v1/audiences", access=Access.WRITE, tag="audiences", body=AUDIENCE_BODY,
       status=201, response=AUDIENCE, errors=(409,), links_to="/v1/audiences/{id}",
       summary="Create an audience (409 when the name is taken).", description=FILTER_RULES)
async def create_audience(call: Call) -> web.Response:
    audience = await call.services.audiences.create(call.project, call.body)
    return json_response(audience.to_json(), status=201)


@route("GET", "/v1/audiences", access=Access.READ, tag="audiences", paginated=True,
       response=AUDIENCE, summary="List audiences, newest first.")
async def list_audiences(call: Call) -> web.Response:
    page = await call.services.audiences.page(call.project, before=call.before, limit=call.limit)
    return page_response(page)


@route("GET", "/v1/audiences/{id}", access=Access.READ, tag="audiences", errors=(404,),
       path_params=_ID, response=AUDIENCE, summary="One audience.")
async def get_audience(call: Call) -> web.Response:
    return json_response((await call.services.audiences.get(call.project,
                                                            call.path("id"))).to_json())


@route("PUT", "/v1/audiences/{id}", access=Access.WRITE, tag="audiences", errors=(404, 409),
       path_params=_ID, body=AUDIENCE_BODY, response=AUDIENCE,
       summary="Replace an audience's name, filter and description.",
       description="Every check and send from now on uses the new filter. A renamed audience "
                   "is no longer found by its old name: steps that name it so fail with "
                   "`unknown_audience`. " + FILTER_RULES)
async def replace_audience(call: Call) -> web.Response:
    audience = await call.services.audiences.replace(call.project, call.path("id"), call.body)
    return json_response(audience.to_json())


@route("DELETE", "/v1/audiences/{id}", access=Access.WRITE, tag="audiences", status=204,
       errors=(404, 409), path_params=_ID,
       summary="Delete an audience (409, naming them, while active or paused workflows name "
               "it).",
       description="A messaging step's `audience` or a schedule trigger's, by id or name, in "
                   "the current version of an active or paused workflow keeps it (409 with "
                   "those workflows in `details`). Drafts may name it: they get an "
                   "`unknown_audience` error when saved or activated again. Bulk jobs listed "
                   "their members when they were created, so a running job does not need "
                   "it.")
async def delete_audience(call: Call) -> web.Response:
    await call.services.audiences.delete(call.project, call.path("id"))
    return web.Response(status=204)


@route("GET", "/v1/audiences/{id}/count", access=Access.READ, tag="audiences",
       errors=(404,), path_params=_ID, response=COUNT,
       summary="How many contacts are members now.", description=EVALUATION)
async def count_audience(call: Call) -> web.Response:
    count = await call.services.audiences.count(call.project, call.path("id"))
    return json_response({"count": count})


@route("GET", "/v1/audiences/{id}/contacts", access=Access.READ, tag="audiences",
       errors=(404,), path_params=_ID, paginated=True, response=CONTACT,
       summary="The members now, newest contact first, as GET /v1/contacts lists them.",
       description=EVALUATION + " Each page is evaluated when it is asked for: a contact that "
                   "joins or leaves between two pages shows or not accordingly.")
async def audience_contacts(call: Call) -> web.Response:
    page = await call.services.audiences.members(call.project, call.path("id"),
                                                 before=call.before, limit=call.limit)
    return page_response(page)
