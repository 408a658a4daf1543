"""Bundles: export a project (or one workflow) as a canonical bundle, import a bundle or a
definition of another tool, and the bundle's JSON Schema."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.bundle_schema import BUNDLE, SCHEMA_PATH, bundle_json_schema
from flowd.bundles import apply, dumps, export, prepare
from flowd.validation import Array, Either, Enum, Json, String

FOREIGN = Json(object_only=True, without=("format",), description=(
    "One workflow definition of another tool, recognised by its shape: reference 000 "
    "(`steps` with `delayMinutes`, `branch` `ifTrue`/`ifFalse`, `trigger.eventType`, "
    "`isActive`), 001 (`nodes` naming their `parent_id`) or 004 (`steps` and `transitions`). "
    "Fields without an equivalent are reported as warnings, never dropped silently. Saved as a "
    "draft, or active when the source says so and the workflow has no error issues."
)).named("ForeignDefinition")
IMPORT_BODY = Either((BUNDLE, FOREIGN),
                     pick=lambda body: 0 if isinstance(body, dict) and "format" in body else 1,
                     description="A bundle (it has `format`), or one definition of another "
                                 "tool.").named("ImportBody")
WARNING = shape("ImportWarning", {"path": String(description="Where in the source."),
                                  "message": String()})
IMPORTED = shape("ImportedObject", {
    "type": Enum(("workflow", "audience", "template")), "id": String(), "name": String(),
    "warnings": Array(WARNING)}, optional=("warnings",),
    description="`warnings` only for a definition of another tool.")
IMPORT_RESULT = shape("ImportResult", {
    "created": Array(IMPORTED), "updated": Array(IMPORTED), "unchanged": Array(IMPORTED),
    "source": String(description="Which format a definition of another tool was read as."),
    "warnings": Array(WARNING)}, optional=("source", "warnings"))
_BUNDLE_TEXT = ("The text is canonical (sorted keys, two-space indent, workflows, audiences and "
                "templates sorted by name): export → import elsewhere → export gives the same bytes, "
                "apart from the `$schema` URL. References are by name, never by id.")


def _bundle_response(bundle: dict) -> web.Response:
    return web.Response(text=dumps(bundle), content_type="application/json")


@route("GET", "/v1/export", access=Access.READ, tag="bundles", response=BUNDLE, errors=(409,),
       summary="Every workflow, audience and template of the project as one bundle.",
       description=_BUNDLE_TEXT + " 409 for a project of more than 10,000 workflows, "
                                  "audiences or templates (export them one by one).")
async def export_project(call: Call) -> web.Response:
    public_url = call.services.public_url()
    bundle = await call.services.store.read(lambda tx: export(tx, call.project, public_url))
    return _bundle_response(bundle)


@route("GET", "/v1/workflows/{id}/export", access=Access.READ, tag="bundles", response=BUNDLE,
       errors=(404, 409), summary="One workflow as a bundle, with the audiences and templates "
                              "it uses and the workflows its run_workflow steps start.",
       description=_BUNDLE_TEXT)
async def export_workflow(call: Call) -> web.Response:
    public_url = call.services.public_url()
    bundle = await call.services.store.read(
        lambda tx: export(tx, call.project, public_url, call.path("id")))
    return _bundle_response(bundle)


@route("POST", "/v1/import", access=Access.WRITE, tag="bundles", body=IMPORT_BODY, errors=(409,),
       response=IMPORT_RESULT, summary="Import a bundle, or one definition of another tool.",
       description=(
           "Idempotent by name: a workflow, audience or template of the same name is updated, "
           "or listed `unchanged` when it is equal (a workflow's definition, description and "
           "status; an audience's filter and description). Audiences and templates are "
           "imported before the workflows that name them. "
           "All or nothing, in one transaction: a bundle that does not fit the schema, names "
           "a workflow twice, or holds a workflow meant to be active or paused that has "
           "`error` issues is a 422 whose `details` give each problem's path "
           "(`workflows[1].steps[0].config.duration`), and nothing is imported. A workflow "
           "whose status changes goes through the lifecycle's rules (resuming a paused one "
           "releases its runs)."))
async def import_bundle(call: Call) -> web.Response:
    prepared = prepare(call.body)
    now = call.services.clock.now_ms()
    service = call.services.workflows
    result = await call.services.store.write(
        lambda tx: apply(tx, service, call.project, prepared, now))
    return json_response(result)


@route("GET", SCHEMA_PATH, access=Access.PUBLIC, tag="bundles",
       response=Json(object_only=True, description="A JSON Schema, Draft 2020-12."),
       summary="The JSON Schema of a bundle (self-contained: shared shapes under $defs).")
async def bundle_schema(call: Call) -> web.Response:
    return json_response(bundle_json_schema(call.services.public_url()))
