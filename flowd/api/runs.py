"""Runs: list, inspect (with the step trace), fire, cancel, resume, retry; and stats."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route
from flowd.auth import Access
from flowd.contact_fields import CONTACT_ID
from flowd.definitions import STEP_ID
from flowd.schema import Enum, Json, Nullable, Object, String
from flowd.store import runs as run_store
from flowd.store import workflows as workflow_store
from flowd.store.runs import RunStatus

RUN_SCHEMA = {"type": "object", "title": "Run", "properties": {
    "id": {"type": "string"}, "workflow_id": {"type": "string"},
    "workflow_version": {"type": "integer"}, "contact_id": {"type": ["string", "null"]},
    "status": {"enum": [s.value for s in RunStatus]},
    "current_step_id": {"type": ["string", "null"]},
    "wait": {"type": ["object", "null"]}, "trigger": {"type": "object"}, "vars": {"type": "object"},
    "error": {"type": ["object", "null"]}, "exit_reason": {"type": ["string", "null"]},
    "parent_run_id": {"type": ["string", "null"]}, "created_at": {"type": "string"},
    "updated_at": {"type": "string"}, "completed_at": {"type": ["string", "null"]},
    "steps": {"type": "array", "description": "Only on GET /v1/runs/{id}: the trace, oldest first.",
              "items": {"type": "object"}}}}
FIRE = Object({"contact_id": Nullable(CONTACT_ID), "payload": Json(object_only=True)},
              title="Fire")
RETRY = Object({"from_step": STEP_ID}, title="Retry")


@route("GET", "/v1/runs", access=Access.READ, tag="runs", paginated=True,
       query=(Param("workflow_id", String(min_len=1, max_len=100)),
              Param("status", Enum(tuple(s.value for s in RunStatus))),
              Param("contact_id", CONTACT_ID)),
       summary="List runs, newest first.", response=RUN_SCHEMA)
async def list_runs(call: Call) -> web.Response:
    page = await call.services.db.read(
        run_store.list_runs, call.project, workflow_id=call.query.get("workflow_id"),
        status=call.query.get("status"), contact_id=call.query.get("contact_id"),
        before=call.before, limit=call.limit)
    return page_response(page)


@route("GET", "/v1/runs/{id}", access=Access.READ, tag="runs", errors=(404,),
       summary="One run with its full step trace.", response=RUN_SCHEMA)
async def get_run(call: Call) -> web.Response:
    run = await call.services.runs.get(call.project, call.path("id"))
    trace = await call.services.db.read(run_store.trace, run.id)
    return json_response({**run.to_json(), "steps": [entry.to_json() for entry in trace]})


@route("POST", "/v1/workflows/{id}/runs", access=Access.WRITE, tag="runs", body=FIRE,
       body_optional=True, status=201, errors=(404, 409),
       summary="Fire the workflow for one contact: 201 with a new run, or 200 with the run "
               "that the reentry rule keeps in place.", response=RUN_SCHEMA)
async def fire(call: Call) -> web.Response:
    run, created = await call.services.runs.fire(
        call.project, call.path("id"), call.body.get("contact_id"), call.body.get("payload") or {})
    return json_response(run.to_json(), status=201 if created else 200)


@route("POST", "/v1/runs/{id}/cancel", access=Access.WRITE, tag="runs", errors=(404, 409),
       summary="Cancel an active run (idempotent on a cancelled run).", response=RUN_SCHEMA)
async def cancel(call: Call) -> web.Response:
    return json_response((await call.services.runs.cancel(call.project, call.path("id"))).to_json())


@route("POST", "/v1/runs/{id}/resume", access=Access.WRITE, tag="runs", errors=(404, 409),
       summary="A paused run goes on.", response=RUN_SCHEMA)
async def resume(call: Call) -> web.Response:
    return json_response((await call.services.runs.resume(call.project, call.path("id"))).to_json())


@route("POST", "/v1/runs/{id}/retry", access=Access.WRITE, tag="runs", body=RETRY,
       body_optional=True, errors=(404, 409), summary="A failed run goes on from its failed step (or `from_step`).",
       response=RUN_SCHEMA)
async def retry(call: Call) -> web.Response:
    run = await call.services.runs.retry(call.project, call.path("id"),
                                         call.body.get("from_step"))
    return json_response(run.to_json())


@route("POST", "/v1/workflows/{id}/runs/cancel-all", access=Access.WRITE, tag="runs",
       errors=(404,), summary="Cancel every active run of the workflow.",
       response={"type": "object", "properties": {"cancelled": {"type": "integer"}}})
async def cancel_all(call: Call) -> web.Response:
    cancelled = await call.services.runs.cancel_all(call.project, call.path("id"))
    return json_response({"cancelled": cancelled})


@route("GET", "/v1/stats", access=Access.READ, tag="runs",
       summary="Workflows and runs by status, zeros included.",
       response={"type": "object", "properties": {"workflows": {"type": "object"},
                                                  "runs": {"type": "object"}}})
async def stats(call: Call) -> web.Response:
    workflows = await call.services.db.read(workflow_store.status_counts, call.project)
    runs = await call.services.db.read(run_store.status_counts, call.project)
    return json_response({"workflows": workflows, "runs": runs})
