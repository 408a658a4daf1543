"""What the builder page draws from: every step type and trigger type the server knows, with
the JSON Schema of its config rendered from the very schema objects it validates with."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.catalogue import step_types, trigger_types
from flowd.validation import Array, Boolean, Json, Object, String

_CONFIG_SCHEMA = Json(object_only=True, description=(
    "A self-contained JSON Schema (2020-12) of the config: nothing refers outside it; only a "
    "recursive part (a condition's all/any/not) is in its own `$defs`. `required` is what an "
    "active workflow needs: a draft may leave those out (they are then its issues)."))
STEP_TYPE = shape("StepType", {
    "name": String(), "description": String(), "config_schema": _CONFIG_SCHEMA,
    "branches": Array(String(), description=(
        "The branch labels `next` may map, besides the default path (`default`); for a "
        "type with dynamic branches, those besides the ones its config names.")),
    "dynamic_branches": Boolean(description="True when labels come from the step's config "
                                            "(split: its branches' names; ai: a decide "
                                            "step's options)."),
    "waits": Boolean(description="Runs wait at a step of this type."),
    "aliases": Array(String(), description="Other type names accepted on save (saved as "
                                           "`name`)."),
})
TRIGGER_TYPE = shape("TriggerType", {
    "name": String(), "description": String(), "config_schema": _CONFIG_SCHEMA})


def _list_of(item: Object) -> Object:
    return Object({"data": Array(item)}, required=("data",))


# The same for every request: rendered once, at import.
_STEP_TYPES_BODY = {"data": step_types()}
_TRIGGER_TYPES_BODY = {"data": trigger_types()}


@route("GET", "/v1/step-types", access=Access.READ, tag="workflows",
       response=_list_of(STEP_TYPE),
       summary="Every step type: its config's JSON Schema, branch labels, whether it waits, "
               "and its aliases; by name.")
async def list_step_types(call: Call) -> web.Response:
    return json_response(_STEP_TYPES_BODY)


@route("GET", "/v1/trigger-types", access=Access.READ, tag="workflows",
       response=_list_of(TRIGGER_TYPE),
       summary="Every trigger type with its JSON Schema (the `type` field included); by name.")
async def list_trigger_types(call: Call) -> web.Response:
    return json_response(_TRIGGER_TYPES_BODY)
