"""Workflows: definitions, versions and the lifecycle."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route, shape
from flowd.auth import Access
from flowd.compose import MAX_PROMPT_CHARS
from flowd.definition_schema import (
    DEFINITION_FIELDS,
    ISSUE,
    NEW_WORKFLOW,
    READ_ONLY,
    REPLACE_WORKFLOW,
    SETTINGS,
    STEP,
    TRIGGER,
    WORKFLOW_STATUSES,
)
from flowd.definitions import Issue
from flowd.errors import NotFound
from flowd.patching import MAX_OPERATIONS, OPERATION
from flowd.store.base import Transaction
from flowd.store.records import Page, Workflow
from flowd.timeutil import format_ms
from flowd.validation import (
    Array,
    Boolean,
    Either,
    Enum,
    Integer,
    Nullable,
    Object,
    String,
    time_string,
)

_SUMMARY_FIELDS = {
    "id": String(), "name": String(), "description": String(),
    "status": Enum(WORKFLOW_STATUSES), "version": Integer(min=1),
    "trigger": TRIGGER, "settings": SETTINGS,
}
_DATES = {"created_at": time_string(), "updated_at": time_string()}
WORKFLOW = shape("Workflow", {**_SUMMARY_FIELDS, "steps": Array(STEP), "issues": Array(ISSUE),
                              **_DATES})
RUN_COUNTS = shape("WorkflowRunCounts", {
    "active": Integer(min=0, description="Runs pending, running, waiting or paused."),
    "failed": Integer(min=0, description="Runs that failed (until retention deletes them)."),
}, description="The workflow's runs now, by state.")
WORKFLOW_SUMMARY = shape("WorkflowSummary", {**_SUMMARY_FIELDS, "issues": Array(ISSUE), **_DATES,
                                             "runs": RUN_COUNTS}, optional=("runs",),
                         description="A workflow in a list: everything but its steps; "
                                     "`runs` in GET /v1/workflows.")
_PATCH_FIELDS = Object({"name": DEFINITION_FIELDS["name"],
                        "description": DEFINITION_FIELDS["description"],
                        "settings": DEFINITION_FIELDS["settings"]},
                       read_only={**READ_ONLY, "status": Enum(WORKFLOW_STATUSES)},
                       description="Plain fields to change; `settings` merge into the stored "
                                   "ones.").named("WorkflowFieldsPatch")
_PATCH_OPERATIONS = Object({"operations": Array(OPERATION, min_items=1, max_items=MAX_OPERATIONS)},
                           required=("operations",),
                           read_only={**READ_ONLY, "status": Enum(WORKFLOW_STATUSES)},
                           description="Operations applied in order, all or nothing, as one new "
                                       "version.").named("WorkflowOperationsPatch")


def _patch_kind(body: object) -> int | None:
    if not isinstance(body, dict) or "operations" not in body:
        return 0
    return None if any(key in body for key in _PATCH_FIELDS.fields) else 1


PATCH_WORKFLOW = Either((_PATCH_FIELDS, _PATCH_OPERATIONS), pick=_patch_kind,
                        mixed="give either plain fields (name, description, settings) or "
                              "operations, not both").named("WorkflowPatch")
VERSION_SUMMARY = shape("WorkflowVersionSummary", {
    "version": Integer(min=1), "created_at": time_string(), "issues": Array(ISSUE)})
VERSION = shape("WorkflowVersion", {
    "workflow_id": String(), "version": Integer(min=1), "trigger": TRIGGER, "settings": SETTINGS,
    "steps": Array(STEP), "issues": Array(ISSUE), "created_at": time_string()},
    description="One immutable version's definition.")
VERSIONS = Object({"data": Array(VERSION_SUMMARY), "next_cursor": Nullable(String(
    description="Always null: every version is in one page."))}, required=("data", "next_cursor"))


def present(call: Call, workflow: Workflow, *, with_steps: bool = True) -> dict[str, Any]:
    """The workflow's JSON, with `trigger.url` when its trigger is a webhook."""
    return call.services.hooks.present(workflow, workflow.to_json(with_steps=with_steps))


_ISSUES_422 = ("The request is checked against the schema (422); what a schema cannot state "
               "is saved as the workflow's `issues`.")
_ACTIVE_422 = (" A workflow that is active or paused refuses a definition with an `error` issue: "
               "422, nothing changed.")


# `/v1/workflows/test-run` is a resource of its own (POST: a test run of an unsaved
# definition); the workflow's resource must not claim that path too, or it would advertise
# methods there that only mean "no workflow with the id test-run".
WORKFLOW_PATH = "/v1/workflows/{id:(?!test-run$)[^/]+}"
WORKFLOW_ID = (Param("id", String(min_len=1, max_len=100, pattern="(?!test-run$)[^/]+",
                                  pattern_message="is not a workflow id",
                                  description="A workflow's id.")),)


@route("GET", "/v1/workflows", access=Access.READ, tag="workflows", paginated=True,
       query=(Param("status", Enum(WORKFLOW_STATUSES)),
              Param("name", String(min_len=1, max_len=200, description="Name contains this."))),
       summary="List workflows (without steps, with their active and failed runs counted), "
               "newest first; archived ones only when asked.",
       response=WORKFLOW_SUMMARY)
async def list_workflows(call: Call) -> web.Response:
    status, name = call.query.get("status"), call.query.get("name")

    def query(tx: Transaction) -> tuple[Page, dict[str, dict[str, int]]]:
        page = tx.workflows.page(call.project, status=status, name=name, before=call.before,
                                 limit=call.limit)
        return page, tx.runs.workflow_counts([workflow.id for workflow in page.items])

    page, counts = await call.services.store.read(query)
    return page_response(page, lambda workflow: {
        **present(call, workflow, with_steps=False), "runs": counts[workflow.id]})


_DEFINITION_KEYS = ("trigger", "settings", "steps")
COMPOSE_WORKFLOW = Object({
    "name": DEFINITION_FIELDS["name"],
    "description": DEFINITION_FIELDS["description"],
    "prompt": String(min_len=1, max_len=MAX_PROMPT_CHARS, description=(
        "What the workflow should do, in words: the AI provider composes the definition.")),
    "status": Enum(("draft",), description="A composed workflow is always saved as a draft."),
}, required=("name", "prompt"), read_only=READ_ONLY).named("WorkflowCompose")


def _create_kind(body: object) -> int | None:
    if not isinstance(body, dict) or "prompt" not in body:
        return 0
    return None if any(key in body for key in _DEFINITION_KEYS) else 1


CREATE_WORKFLOW = Either((NEW_WORKFLOW, COMPOSE_WORKFLOW), pick=_create_kind,
                         mixed="give either a prompt or a definition (trigger, settings, "
                               "steps), not both").named("WorkflowCreateRequest")
_COMPOSE = (
    " With `prompt` instead of a definition, the project's AI provider composes one (it is "
    "given the step and trigger types with their schemas, and one round to repair what the "
    "server finds wrong), and the workflow is saved as a draft with its remaining `issues` — "
    "never active (parts of the answer that do not fit the request shape are left out, each "
    "a `composed_part_dropped` warning). 422 `ai_unavailable` without a provider (the "
    "project's own, PUT /v1/settings/ai, or the server's [ai]); 422 `ai_bad_answer` when the "
    "repaired answer is still not a JSON object; 429 `rate_limited` (with the provider's "
    "Retry-After) when the provider is rate-limiting; 503 `unavailable` for any other "
    "provider failure (its message names the code: ai_unauthorized, ai_model_not_found, "
    "ai_provider_error, …). The prompt is at most 4,000 characters.")


@route("POST", "/v1/workflows", access=Access.WRITE, tag="workflows", body=CREATE_WORKFLOW,
       status=201, summary="Create a workflow (draft by default, or active if it has no "
       "errors), or compose a draft from a prompt.", errors=(429,),
       response=WORKFLOW, links_to="/v1/workflows/{id}", description=_ISSUES_422 + " Asked for `active`, a definition with an "
       "`error` issue is a 422 whose `details` list those issues." + _COMPOSE)
async def create_workflow(call: Call) -> web.Response:
    body = call.body
    extra: list[Issue] = []
    if "prompt" in body:
        composed = await call.services.composer.compose(call.project, body["prompt"])
        body = {"name": body["name"], **composed.definition,
                "description": body.get("description") or composed.description}
        extra = composed.dropped
    workflow = await call.services.workflows.create(call.project, body, extra_issues=extra)
    return json_response(present(call, workflow), status=201)


@route("GET", WORKFLOW_PATH, path_params=WORKFLOW_ID, access=Access.READ, tag="workflows", errors=(404,),
       summary="One workflow with its steps and issues.", response=WORKFLOW)
async def get_workflow(call: Call) -> web.Response:
    workflow = await call.services.workflows.get(call.project, call.path("id"))
    return json_response(present(call, workflow))


@route("PUT", WORKFLOW_PATH, path_params=WORKFLOW_ID, access=Access.WRITE, tag="workflows", body=REPLACE_WORKFLOW,
       errors=(404,), summary="Replace the definition; a changed definition is a new version.",
       response=WORKFLOW, description=_ISSUES_422 + _ACTIVE_422)
async def replace_workflow(call: Call) -> web.Response:
    workflow = await call.services.workflows.replace(call.project, call.path("id"), call.body)
    return json_response(present(call, workflow))


@route("PATCH", WORKFLOW_PATH, path_params=WORKFLOW_ID, access=Access.WRITE, tag="workflows", body=PATCH_WORKFLOW,
       errors=(404,), summary="Change name/description/settings, or apply an atomic batch of "
       "operations (one new version).", response=WORKFLOW,
       description="Either plain fields or operations, not both (422). " + _ISSUES_422
       + _ACTIVE_422)
async def patch_workflow(call: Call) -> web.Response:
    workflow = await call.services.workflows.patch(call.project, call.path("id"), call.body)
    return json_response(present(call, workflow))


@route("DELETE", WORKFLOW_PATH, path_params=WORKFLOW_ID, access=Access.ADMIN, tag="workflows", status=204,
       errors=(404, 409), query=(Param("force", Boolean(description="Delete even while active or paused.")),),
       summary="Delete a workflow and its runs (409 while active or paused unless ?force=true).")
async def delete_workflow(call: Call) -> web.Response:
    await call.services.workflows.delete(call.project, call.path("id"),
                                         force=call.query.get("force", False))
    return web.Response(status=204)


def _lifecycle(action: str, summary: str, description: str = "") -> None:
    async def handler(call: Call) -> web.Response:
        workflow = await call.services.workflows.transition(call.project, call.path("id"), action)
        return json_response(present(call, workflow))

    handler.__name__ = f"{action}_workflow"
    route("POST", f"/v1/workflows/{{id}}/{action}", access=Access.WRITE, tag="workflows",
          errors=(404, 409, 422) if action == "activate" else (404, 409), summary=summary,
          response=WORKFLOW, description=description)(handler)


_lifecycle("activate", "Start triggering runs (422 while the workflow has errors).",
           "A 422 here depends on the stored workflow, not on the request: its `details` list "
           "the workflow's `error` issues.")
_lifecycle("deactivate", "Back to draft: no new runs; runs in flight go on.")
_lifecycle("pause", "Hold runs at their next step boundary; triggers create paused runs.")
_lifecycle("resume", "Paused runs go on from where they stopped, oldest first.")
_lifecycle("archive", "No new runs; runs in flight go on; hidden from the default list.")


@route("GET", "/v1/workflows/{id}/versions", access=Access.READ, tag="workflows", errors=(404,),
       summary="Every version, newest first.", response=VERSIONS)
async def list_versions(call: Call) -> web.Response:
    workflow = await call.services.workflows.get(call.project, call.path("id"))
    versions = await call.services.store.workflow_versions(workflow.id)
    return json_response({"data": [{"version": v.version, "created_at": format_ms(v.created_at),
                                    "issues": v.issues} for v in versions],
                          "next_cursor": None})


@route("GET", "/v1/workflows/{id}/versions/{version}", access=Access.READ, tag="workflows",
       errors=(404,), summary="One immutable version's definition.", response=VERSION,
       path_params=(Param("version", Integer(min=1, max=2**31 - 1)),))
async def get_version(call: Call) -> web.Response:
    workflow = await call.services.workflows.get(call.project, call.path("id"))
    version = int(call.path("version"))
    stored = await call.services.store.workflow_version(workflow.id, version)
    if stored is None:
        raise NotFound("no such version")
    return json_response({"workflow_id": workflow.id, "version": version, **stored.definition,
                          "issues": stored.issues, "created_at": format_ms(stored.created_at)})
