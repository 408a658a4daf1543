"""Runs: list, inspect (with the step trace), fire, cancel, resume, retry; and stats."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, page_response, route, shape
from flowd.approvals import DECISIONS
from flowd.auth import Access
from flowd.contact_fields import CONTACT_ID, EMAIL
from flowd.definition_schema import STEP_ID, WORKFLOW_STATUSES
from flowd.store.records import Run, RunStatus, TraceEntry
from flowd.validation import (
    Array,
    Boolean,
    Enum,
    Integer,
    Json,
    Nullable,
    Object,
    String,
    time_string,
)

MAX_CHILD_RUNS = 100
RUN_ERROR = shape("RunError", {"code": String(), "message": String(),
                               "step_id": Nullable(String())}, optional=("step_id",))
WAIT = shape("RunWait", {
    "kind": Enum(("timer", "event", "approval", "child"),
                 description="What the run waits for."),
    "until": Nullable(time_string(description="When the wait ends by itself (null: never).")),
    "event": String(description="The event name pattern an event wait matches."),
    "retry": Boolean(description="True when the wait is the backoff before the next attempt."),
}, optional=("event", "retry"))
_RUN_FIELDS = {
    "id": String(), "workflow_id": String(), "workflow_version": Integer(min=1),
    "contact_id": Nullable(String()), "status": Enum(tuple(s.value for s in RunStatus)),
    "current_step_id": Nullable(String()), "wait": Nullable(WAIT),
    "trigger": Json(object_only=True, description="How the run started: {type, event}."),
    "vars": Json(object_only=True), "error": Nullable(RUN_ERROR),
    "exit_reason": Nullable(String()), "parent_run_id": Nullable(String()),
    "created_at": time_string(), "updated_at": time_string(),
    "completed_at": Nullable(time_string()),
}
RUN = shape("Run", _RUN_FIELDS)
TRACE_ENTRY = shape("TraceEntry", {
    "seq": Integer(min=1), "step_id": String(), "type": String(),
    "status": Enum(("ok", "failed", "skipped", "waiting")),
    "outcome": Nullable(String()), "branch": Nullable(String()), "attempt": Integer(min=1),
    "started_at": time_string(), "finished_at": Nullable(time_string()),
    "duration_ms": Nullable(Integer(min=0)),
    "input": Json(description="The step's config with its templates resolved."),
    "output": Json(), "error": Nullable(Json(object_only=True)),
}, description="One visit of a step.")
RUN_WITH_STEPS = shape("RunWithTrace", {
    **_RUN_FIELDS,
    "steps": Array(TRACE_ENTRY, description="The trace, oldest first."),
    "child_runs": Array(shape("ChildRun", {
        "id": String(), "workflow_id": String(), "status": Enum(tuple(s.value for s in RunStatus)),
        "created_at": time_string(), "completed_at": Nullable(time_string())}),
        description=f"The runs its run_workflow steps started, oldest first (at most "
                    f"{MAX_CHILD_RUNS}). Only in GET /v1/runs/{{id}}: an export lists runs "
                    f"whole, each with its parent_run_id."),
}, optional=("child_runs",))
FIRE = Object({
    "contact_id": Nullable(CONTACT_ID),
    "email": EMAIL.described("Names the contact by email instead: an unknown email is a 404, "
                             "an email several contacts have a 409."),
    "payload": Json(object_only=True, description="The trigger event's properties."),
}, exclusive=("contact_id", "email"),
    description="Names the contact by contact_id or by email (at most one).").named("FireRequest")
RETRY = Object({"from_step": STEP_ID}).named("RetryRequest")
RESUME = Object({
    "decision": Enum(DECISIONS, description="Decide the approval the run waits at."),
    "data": Json(object_only=True, description="Kept in the step's output (`data`); a "
                                               "`comment` in it is the decision's comment."),
}, description="Empty: a paused run goes on. With `decision`: the approval the run waits at "
               "is decided (by this API key).").named("ResumeRequest")

STATS = shape("Stats", {
    "workflows": Object({s: Integer(min=0) for s in WORKFLOW_STATUSES},
                        required=WORKFLOW_STATUSES),
    "runs": Object({s.value: Integer(min=0) for s in RunStatus},
                   required=tuple(s.value for s in RunStatus)),
}, description="Counts by status, zeros included.")


@route("GET", "/v1/runs", access=Access.READ, tag="runs", paginated=True,
       query=(Param("workflow_id", String(min_len=1, max_len=100)),
              Param("status", Enum(tuple(s.value for s in RunStatus))),
              Param("contact_id", CONTACT_ID)),
       summary="List runs, newest first.", response=RUN)
async def list_runs(call: Call) -> web.Response:
    page = await call.services.store.list_runs(
        call.project, workflow_id=call.query.get("workflow_id"), status=call.query.get("status"),
        contact_id=call.query.get("contact_id"), before=call.before, limit=call.limit)
    return page_response(page)


@route("GET", "/v1/runs/{id}", access=Access.READ, tag="runs", errors=(404,),
       summary="One run with its full step trace.", response=RUN_WITH_STEPS)
async def get_run(call: Call) -> web.Response:
    run = await call.services.runs.get(call.project, call.path("id"))
    trace = await call.services.store.run_trace(run.id)
    children = await call.services.store.read(
        lambda tx: tx.runs.children(run.id, limit=MAX_CHILD_RUNS))
    return json_response({**run_with_steps(run, trace),
                          "child_runs": [_child(child) for child in children]})


def _child(run: Run) -> dict[str, Any]:
    shown = run.to_json()
    return {key: shown[key] for key in ("id", "workflow_id", "status", "created_at",
                                        "completed_at")}


def run_with_steps(run: Run, trace: list[TraceEntry]) -> dict[str, Any]:
    """A run as GET /v1/runs/{id} shows it (the export shows each run so too)."""
    return {**run.to_json(), "steps": [entry.to_json() for entry in trace]}


@route("POST", "/v1/workflows/{id}/runs", access=Access.WRITE, tag="runs", body=FIRE,
       body_optional=True, status=201, errors=(404, 409), response=RUN, links_to="/v1/runs/{id}",
       other_statuses={200: "The contact already has an active run (or, with reentry `once`, "
                            "had one): that run; nothing started."},
       summary="Fire the workflow for one contact: 201 with a new run, or 200 with the run "
               "that the reentry rule keeps in place.",
       description="409 unless the workflow is active or paused (in a paused workflow the new "
                   "run is created paused), or when several contacts have the given email. "
                   "An unknown contact_id creates that contact; an unknown email is a 404.")
async def fire(call: Call) -> web.Response:
    run, created = await call.services.runs.fire(
        call.project, call.path("id"), call.body.get("payload") or {},
        contact_id=call.body.get("contact_id"), email=call.body.get("email"))
    return json_response(run.to_json(), status=201 if created else 200)


@route("POST", "/v1/runs/{id}/cancel", access=Access.WRITE, tag="runs", errors=(404, 409),
       summary="Cancel an active run (idempotent on a cancelled run).", response=RUN,
       description="409 for a completed or failed run.")
async def cancel(call: Call) -> web.Response:
    return json_response((await call.services.runs.cancel(call.project, call.path("id"))).to_json())


@route("POST", "/v1/runs/{id}/resume", access=Access.WRITE, tag="runs", body=RESUME,
       body_optional=True, errors=(404, 409, 410), response=RUN,
       summary="A paused run goes on; or, with `decision`, the approval it waits at is decided.",
       description="Without `decision`: 409 unless the run is paused, or while its workflow is "
                   "paused (resume the workflow instead). With `decision`: 409 unless the run "
                   "waits at an approval that is still open (409 once decided, 410 once "
                   "expired); `decided_by` in the step's output is `key:<key id>`.")
async def resume(call: Call) -> web.Response:
    run_id = call.path("id")
    if "decision" not in call.body:
        return json_response((await call.services.runs.resume(call.project, run_id)).to_json())
    assert call.principal is not None
    await call.services.approvals.decide_for_run(
        call.project, run_id, call.body["decision"], call.body.get("data"),
        f"key:{call.principal.key_id}")
    return json_response((await call.services.runs.get(call.project, run_id)).to_json())


@route("POST", "/v1/runs/{id}/retry", access=Access.WRITE, tag="runs", body=RETRY,
       body_optional=True, errors=(404, 409), response=RUN,
       summary="A failed run goes on from its failed step (or `from_step`).",
       description="409 unless the run failed; 422 when its workflow version has no step "
                   "`from_step`.")
async def retry(call: Call) -> web.Response:
    run = await call.services.runs.retry(call.project, call.path("id"),
                                         call.body.get("from_step"))
    return json_response(run.to_json())


@route("POST", "/v1/workflows/{id}/runs/cancel-all", access=Access.WRITE, tag="runs",
       errors=(404,), summary="Cancel every active run of the workflow.",
       response=shape("CancelAllResult", {"cancelled": Integer(min=0)}))
async def cancel_all(call: Call) -> web.Response:
    cancelled = await call.services.runs.cancel_all(call.project, call.path("id"))
    return json_response({"cancelled": cancelled})


@route("GET", "/v1/stats", access=Access.READ, tag="runs",
       summary="Workflows and runs by status, zeros included.",
       response=STATS)
async def stats(call: Call) -> web.Response:
    return json_response(await call.services.store.status_counts(call.project))
