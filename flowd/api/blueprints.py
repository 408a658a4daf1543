"""The blueprint gallery: list the starter journeys, clone one into a draft workflow."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, route, shape
from flowd.api.workflows import WORKFLOW, present
from flowd.auth import Access
from flowd.blueprint_cloning import clone
from flowd.blueprints import BLUEPRINTS
from flowd.definition_schema import SETTINGS, STEP, TRIGGER
from flowd.errors import NotFound
from flowd.validation import Array, Integer, Nullable, Object, String, text

BLUEPRINT = shape("Blueprint", {
    "key": String(description="e.g. welcome-series"),
    "name": String(description="The name a clone gets by default."),
    "description": String(),
    "trigger_summary": String(description="What starts it, in words."),
    "step_count": Integer(min=1),
    "templates": Array(String(), description="The email templates a clone makes (or reuses), "
                                             "by name."),
    "definition": Object({"trigger": TRIGGER, "settings": SETTINGS, "steps": Array(STEP)},
                         required=("trigger", "settings", "steps")),
})
BLUEPRINTS_PAGE = Object({"data": Array(BLUEPRINT), "next_cursor": Nullable(String(
    description="Always null: every blueprint is in one page."))}, required=("data", "next_cursor"))
CLONE = Object({"name": text(1, 200, description=(
    "The workflow's name, used as given. Default: the blueprint's name, made unique in the "
    "project with \" (2)\", \" (3)\", …"))}).named("BlueprintClone")
_CLONE_RULES = (
    "One unit of work makes the blueprint's email templates and a draft workflow sending them. "
    "Each template is named \"<key>: <short name>\" (e.g. \"welcome-series: welcome\"): an "
    "existing template of that name with the same channel and content is reused; one whose "
    "content differs is left as it is and the clone makes (or reuses) \"<name> (2)\", …, its "
    "steps naming that one. Activate the draft to start it.")


@route("GET", "/v1/blueprints", access=Access.READ, tag="blueprints", response=BLUEPRINTS_PAGE,
       summary="The starter journeys a workflow can be cloned from, in gallery order.")
async def list_blueprints(call: Call) -> web.Response:
    return json_response({"data": [b.to_json() for b in BLUEPRINTS.values()],
                          "next_cursor": None})


@route("POST", "/v1/blueprints/{key}/clone", access=Access.WRITE, tag="blueprints", body=CLONE,
       body_optional=True, status=201, response=WORKFLOW, errors=(404,),
       links_to="/v1/workflows/{id}",
       path_params=(Param("key", String(min_len=1, max_len=100,
                                        description="A blueprint's key; unknown: 404.")),),
       summary="Clone a blueprint into a draft workflow, with its email templates.",
       description=_CLONE_RULES)
async def clone_blueprint(call: Call) -> web.Response:
    blueprint = BLUEPRINTS.get(call.path("key"))
    if blueprint is None:
        raise NotFound("no such blueprint")
    workflow = await clone(call.services.workflows, call.services.clock, call.project,
                           blueprint, call.body.get("name"))
    return json_response(present(call, workflow), status=201)
