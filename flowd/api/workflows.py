"""Workflows: definitions, versions and the lifecycle."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route
from flowd.auth import Access
from flowd.definitions import (
    DEFINITION_FIELDS,
    NEW_WORKFLOW,
    READ_ONLY,
    REPLACE_WORKFLOW,
)
from flowd.errors import NotFound
from flowd.schema import Array, Enum, Json, Object, String
from flowd.store import workflows as workflow_store
from flowd.timeutil import format_ms

ISSUE_SCHEMA = {"type": "object", "properties": {
    "severity": {"enum": ["error", "warning"]}, "step_id": {"type": ["string", "null"]},
    "code": {"type": "string"}, "message": {"type": "string"}, "path": {"type": "string"}}}
WORKFLOW_SCHEMA = {"type": "object", "title": "Workflow", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
    "status": {"enum": ["draft", "active", "paused", "archived"]}, "version": {"type": "integer"},
    "trigger": REPLACE_WORKFLOW.fields["trigger"].json_schema(),
    "settings": REPLACE_WORKFLOW.fields["settings"].json_schema(),
    "steps": REPLACE_WORKFLOW.fields["steps"].json_schema(),
    "issues": {"type": "array", "items": ISSUE_SCHEMA},
    "created_at": {"type": "string"}, "updated_at": {"type": "string"}}}
PATCH_WORKFLOW = Object({
    "name": DEFINITION_FIELDS["name"], "description": DEFINITION_FIELDS["description"],
    "settings": DEFINITION_FIELDS["settings"],
    "operations": Array(Json(object_only=True), min_items=1, max_items=200,
                        description="add_step | update_step | remove_step | set_trigger"),
}, read_only=READ_ONLY, title="WorkflowPatch")
VERSION_SCHEMA = {"type": "object", "properties": {
    "version": {"type": "integer"}, "created_at": {"type": "string"},
    "issues": {"type": "array", "items": ISSUE_SCHEMA}}}


@route("GET", "/v1/workflows", access=Access.READ, tag="workflows", paginated=True,
       query=(Param("status", Enum(("draft", "active", "paused", "archived"))),
              Param("name", String(min_len=1, max_len=200, description="Name contains this."))),
       summary="List workflows (without steps), newest first; archived ones only when asked.",
       response=WORKFLOW_SCHEMA)
async def list_workflows(call: Call) -> web.Response:
    page = await call.services.db.read(
        workflow_store.list_workflows, call.project, status=call.query.get("status"),
        name=call.query.get("name"), before=call.before, limit=call.limit)
    return page_response(page, lambda workflow: workflow.to_json(with_steps=False))


@route("POST", "/v1/workflows", access=Access.WRITE, tag="workflows", body=NEW_WORKFLOW,
       status=201, summary="Create a workflow (draft by default, or active if it has no errors).",
       response=WORKFLOW_SCHEMA)
async def create_workflow(call: Call) -> web.Response:
    workflow = await call.services.workflows.create(call.project, call.body)
    return json_response(workflow.to_json(), status=201)


@route("GET", "/v1/workflows/{id}", access=Access.READ, tag="workflows", errors=(404,),
       summary="One workflow with its steps and issues.", response=WORKFLOW_SCHEMA)
async def get_workflow(call: Call) -> web.Response:
    workflow = await call.services.workflows.get(call.project, call.path("id"))
    return json_response(workflow.to_json())


@route("PUT", "/v1/workflows/{id}", access=Access.WRITE, tag="workflows", body=REPLACE_WORKFLOW,
       errors=(404,), summary="Replace the definition; a changed definition is a new version.",
       response=WORKFLOW_SCHEMA)
async def replace_workflow(call: Call) -> web.Response:
    workflow = await call.services.workflows.replace(call.project, call.path("id"), call.body)
    return json_response(workflow.to_json())


@route("PATCH", "/v1/workflows/{id}", access=Access.WRITE, tag="workflows", body=PATCH_WORKFLOW,
       errors=(404,), summary="Change name/description/settings, or apply an atomic batch of "
       "operations (one new version).", response=WORKFLOW_SCHEMA)
async def patch_workflow(call: Call) -> web.Response:
    workflow = await call.services.workflows.patch(call.project, call.path("id"), call.body)
    return json_response(workflow.to_json())


@route("DELETE", "/v1/workflows/{id}", access=Access.ADMIN, tag="workflows", status=204,
       errors=(404, 409), query=(Param("force", Enum(("true", "false"))),),
       summary="Delete a workflow and its runs (409 while active or paused unless ?force=true).")
async def delete_workflow(call: Call) -> web.Response:
    await call.services.workflows.delete(call.project, call.path("id"),
                                         force=call.query.get("force") == "true")
    return web.Response(status=204)


def _lifecycle(action: str, summary: str) -> None:
    async def handler(call: Call) -> web.Response:
        workflow = await call.services.workflows.transition(call.project, call.path("id"), action)
        return json_response(workflow.to_json())

    handler.__name__ = f"{action}_workflow"
    route("POST", f"/v1/workflows/{{id}}/{action}", access=Access.WRITE, tag="workflows",
          errors=(404, 409, 422), summary=summary, response=WORKFLOW_SCHEMA)(handler)


_lifecycle("activate", "Start triggering runs (422 while the workflow has errors).")
_lifecycle("deactivate", "Back to draft: no new runs; runs in flight go on.")
_lifecycle("pause", "Hold runs at their next step boundary; triggers create paused runs.")
_lifecycle("resume", "Paused runs go on from where they stopped, oldest first.")
_lifecycle("archive", "No new runs; runs in flight go on; hidden from the default list.")


@route("GET", "/v1/workflows/{id}/versions", access=Access.READ, tag="workflows", errors=(404,),
       summary="Every version, newest first.", response={"type": "object", "properties": {
           "data": {"type": "array", "items": VERSION_SCHEMA}}})
async def list_versions(call: Call) -> web.Response:
    workflow = await call.services.workflows.get(call.project, call.path("id"))
    versions = await call.services.db.read(workflow_store.list_versions, workflow.id)
    return json_response({"data": [{"version": v, "created_at": format_ms(at), "issues": issues}
                                   for v, at, issues in versions], "next_cursor": None})


@route("GET", "/v1/workflows/{id}/versions/{version}", access=Access.READ, tag="workflows",
       errors=(404,), summary="One immutable version's definition.",
       response={"type": "object"})
async def get_version(call: Call) -> web.Response:
    workflow = await call.services.workflows.get(call.project, call.path("id"))
    text = call.path("version")
    stored = (await call.services.db.read(workflow_store.get_version, workflow.id, int(text))
              if text.isdigit() else None)
    if stored is None:
        raise NotFound("no such version")
    definition, issues, created_at = stored
    return json_response({"workflow_id": workflow.id, "version": int(text), **definition,
                          "issues": issues, "created_at": format_ms(created_at)})
