"""A workflow version's funnel: per step, the runs that entered it, wait on it now, and left
it by each branch; and run totals by status."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, route, shape
from flowd.auth import Access
from flowd.errors import NotFound
from flowd.store.records import RunStatus
from flowd.validation import Array, Integer, MapOf, Nullable, Object, String

_STATUS_COUNTS = Object({s.value: Integer(min=0) for s in RunStatus},
                        required=tuple(s.value for s in RunStatus))
STEP_STATS = shape("StepStats", {
    "step_id": String(), "type": String(), "name": Nullable(String()),
    "entered": Integer(min=0, description="Distinct runs of this version with a trace entry "
                                          "for the step."),
    "waiting": Integer(min=0, description="Runs of this version waiting on the step now."),
    "branches": MapOf(Integer(min=0), description=(
        "Trace entries that left the step, by branch label: a finished entry without a "
        "branch counts as `default`; a failure sent on by an `error` branch as `error`.")),
})
WORKFLOW_STATS = shape("WorkflowStats", {
    "workflow_id": String(), "version": Integer(min=1),
    "steps": Array(STEP_STATS, description="The version's steps, in definition order."),
    "runs": _STATUS_COUNTS.described("Runs of the whole workflow by status (zeros included)."),
    "version_runs": _STATUS_COUNTS.described("Runs of this version by status."),
})


@route("GET", "/v1/workflows/{id}/stats", access=Access.READ, tag="workflows", errors=(404,),
       query=(Param("version", Integer(min=1, max=2**31 - 1, description=(
           "Which version's steps (default: the current one); an unknown version is a "
           "404."))),),
       response=WORKFLOW_STATS,
       summary="Funnel counts per step of a version, and run totals by status.",
       description="Runs moved to another version (POST /v1/workflows/{id}/migrate) count on "
                   "the version they are on now, with their whole trace; trace entries of "
                   "step ids the version does not have are not listed.")
async def workflow_stats(call: Call) -> web.Response:
    workflow = await call.services.workflows.get(call.project, call.path("id"))
    version = call.query.get("version", workflow.version)
    stored = await call.services.store.workflow_version(workflow.id, version)
    if stored is None:
        raise NotFound("no such version")
    counts = await call.services.store.read(
        lambda tx: tx.runs.step_counts(workflow.id, version))
    steps = [{"step_id": step["id"], "type": step["type"], "name": step.get("name"),
              "entered": counts.entered.get(step["id"], 0),
              "waiting": counts.waiting.get(step["id"], 0),
              "branches": counts.branches.get(step["id"], {})}
             for step in stored.definition["steps"]]
    return json_response({"workflow_id": workflow.id, "version": version, "steps": steps,
                          "runs": counts.workflow_runs, "version_runs": counts.version_runs})
