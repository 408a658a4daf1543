"""Moving a workflow's waiting runs to a newer version (flowd.run_migration)."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.definition_schema import MAX_STEPS, STEP_ID
from flowd.run_migration import RunMigration
from flowd.validation import Array, Boolean, Integer, MapOf, Object, String

_VERSION = Integer(min=1, max=2**31 - 1)
MIGRATE = Object({
    "from_version": _VERSION.described("The version whose waiting runs move (404 if unknown)."),
    "to_version": _VERSION.described("Where they move: a newer version (422 otherwise; 404 if "
                                     "unknown) without errors."),
    "step_map": MapOf(STEP_ID, max_keys=MAX_STEPS, description=(
        "Old step id → new step id, each of the same type (422 otherwise). A step not listed "
        "maps to the step of the same id and type in to_version, if there is one.")),
    "dry_run": Boolean(description="Count what would move, changing nothing (default false)."),
}, required=("from_version", "to_version")).named("RunMigrationRequest")
UNMAPPED = shape("UnmappedStep", {"step_id": String(), "runs": Integer(min=1)})
MIGRATION = shape("RunMigrationResult", {
    "runs": Integer(min=0, description="Runs waiting on from_version."),
    "moved": Integer(min=0, description="Runs moved (in a dry run: that would move)."),
    "unmapped": Array(UNMAPPED, description="Steps with waiting runs that stay where they are."),
    "step_map": MapOf(String(), description="The mapping applied, defaults included."),
    "dry_run": Boolean(),
})


@route("POST", "/v1/workflows/{id}/migrate", access=Access.WRITE, tag="workflows", body=MIGRATE,
       errors=(404,), response=MIGRATION,
       summary="Move the runs waiting on one version to a newer version.",
       description=(
           "Only runs with status `waiting` move (a timer, an event, an approval, a child run, "
           "a retry's backoff); paused runs stay. A run moves to the mapped step and keeps its "
           "wait as it is (its `until`, its event registration); the open trace entry of that "
           "wait takes the new step's id. Runs move in chunks of 500, one transaction each; "
           "runs waiting on a step with no mapping stay and are listed in `unmapped`."))
async def migrate_runs(call: Call) -> web.Response:
    migration = RunMigration(call.services.store, call.services.clock)
    return json_response(await migration.migrate(call.project, call.path("id"), call.body))
