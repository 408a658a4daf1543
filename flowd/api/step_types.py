"""What the builder page draws from: every step type and trigger type the server knows, with
the JSON Schema of its config rendered from the very schema objects it validates with."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.definition_schema import TRIGGER_KINDS
from flowd.steps import ALIASES, STEP_TYPES
from flowd.validation import (
    Array,
    Boolean,
    Json,
    Object,
    String,
    standalone_json_schema,
)

# Whose branch labels are the names in its own config (plus `default`).
_DYNAMIC_BRANCHES = frozenset({"split"})
_CONFIG_SCHEMA = Json(object_only=True, description=(
    "A self-contained JSON Schema (2020-12) of the config: nothing refers outside it; only a "
    "recursive part (a condition's all/any/not) is in its own `$defs`. `required` is what an "
    "active workflow needs: a draft may leave those out (they are then its issues)."))
STEP_TYPE = shape("StepType", {
    "name": String(), "description": String(), "config_schema": _CONFIG_SCHEMA,
    "branches": Array(String(), description=(
        "The branch labels `next` may map, besides the default path (`default`)."
        " Empty for a type with dynamic branches.")),
    "dynamic_branches": Boolean(description="True when the labels come from the step's "
                                            "config (split: its branches' names)."),
    "waits": Boolean(description="Runs wait at a step of this type."),
    "aliases": Array(String(), description="Other type names accepted on save (saved as "
                                           "`name`)."),
})
TRIGGER_TYPE = shape("TriggerType", {
    "name": String(), "description": String(), "config_schema": _CONFIG_SCHEMA})


def _list_of(item: Object) -> Object:
    return Object({"data": Array(item)}, required=("data",))


def _step_types() -> list[dict[str, Any]]:
    return [{
        "name": name,
        "description": step_type.summary,
        "config_schema": standalone_json_schema(step_type.schema),
        "branches": [] if name in _DYNAMIC_BRANCHES else list(step_type.branches),
        "dynamic_branches": name in _DYNAMIC_BRANCHES,
        "waits": step_type.waits,
        "aliases": sorted(alias for alias, target in ALIASES.items() if target == name),
    } for name, step_type in sorted(STEP_TYPES.items())]


def _trigger_types() -> list[dict[str, Any]]:
    return [{"name": name, "description": schema.description,
             "config_schema": standalone_json_schema(schema)}
            for name, schema in sorted(TRIGGER_KINDS.items())]


# The same for every request: rendered once, at import.
_STEP_TYPES_BODY = {"data": _step_types()}
_TRIGGER_TYPES_BODY = {"data": _trigger_types()}


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
