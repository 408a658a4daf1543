"""Bulk runs: fire a workflow for many contacts as one job, follow it, approve or cancel it."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, json_response, page_response, route, shape
from flowd.auth import Access
from flowd.contact_fields import CONTACT_ID
from flowd.store.records import BulkJobStatus, BulkSource
from flowd.validation import (
    Array,
    Boolean,
    Enum,
    Integer,
    Json,
    Nullable,
    Object,
    String,
    text,
    time_string,
)

MAX_CONTACT_IDS = 100_000
_STATUSES = tuple(s.value for s in BulkJobStatus)

STATUS_MACHINE = (
    "Status machine: a job created with `require_approval` starts in `approval`, where nothing "
    "starts until a second action (`PATCH {\"action\": \"approve\"}`, typically by another "
    "person with an editor key) moves it to `running`; otherwise it starts `running`. A running "
    "job goes through its contacts in chunks (`started` + `skipped` grows while it runs) and "
    "ends `finished` once every contact is done. `cancel` ends an `approval` or `running` job as "
    "`cancelled`: no run starts after the cancel is answered; runs already started stay. A job "
    "ends `failed` (with `error`) when its workflow stops being active or paused while it runs. "
    "`finished`, `cancelled` and `failed` are final.")

BULK_JOB = shape("BulkJob", {
    "id": String(description="job_…"),
    "workflow_id": String(),
    "status": Enum(_STATUSES, description="approval → running → finished; approval or running "
                                          "→ cancelled; running → failed."),
    "source": Enum(tuple(s.value for s in BulkSource),
                   description="Where the contacts come from."),
    "audience": Nullable(String(description="The audience (its id) of an audience job.")),
    "require_approval": Boolean(),
    "total": Integer(min=0, description="Contacts in the job (duplicates counted once)."),
    "started": Integer(min=0, description="Contacts for which a run was started."),
    "skipped": Integer(min=0, description="Contacts the workflow's reentry rule kept out (they "
                                          "had an active run, or with `once` any run)."),
    "error": Nullable(Object({"code": String(), "message": String()},
                             required=("code", "message"))),
    "created_at": time_string(), "updated_at": time_string(),
    "finished_at": Nullable(time_string(description="When it finished, was cancelled or "
                                                    "failed.")),
}, description="A bulk run job. " + STATUS_MACHINE)

CREATE = Object({
    "audience": text(1, 200, description=(
        "An audience (aud_… or its name): every member, listed when the job is created and "
        "started in the order the contacts were made. A job waiting for approval starts "
        "exactly those contacts (its `total`), whatever changes meanwhile. An unknown audience "
        "is a 422 with detail code `unknown_audience`; one with more members than [audiences] "
        "max_members, `too_many_members`.")),
    "contact_ids": Array(CONTACT_ID, min_items=1, max_items=MAX_CONTACT_IDS, description=(
        "Up to 100,000 contact ids, started in this order; duplicates count once. Unknown "
        "contacts are created with only their id. The 1 MiB body limit still applies (413): "
        "100,000 ids fit when each takes at most 10 bytes of JSON (7 characters, its quotes "
        "and a comma); longer ids, fewer per job.")),
    "payload": Json(object_only=True, description="The trigger event's properties of every run "
                                                  "(event name `api.bulk`)."),
    "require_approval": Boolean(description="true: the job waits in `approval` until a second "
                                            "action approves it; nothing starts before. "
                                            "Default false."),
}, exclusive=("audience", "contact_ids"), one_required=("audience", "contact_ids"),
    defaults={"payload": {}, "require_approval": False},
    description="Exactly one of audience or contact_ids.").named("BulkRunRequest")

_READ_ONLY = {name: schema for name, schema in BULK_JOB.fields.items()}
ACTION = Object({"action": Enum(("approve", "cancel"), description=(
    "approve: `approval` → `running` (409 from any other status). cancel: `approval` or "
    "`running` → `cancelled` (200 again on a cancelled job; 409 on a finished or failed one)."))},
    required=("action",), read_only=_READ_ONLY,
    description="A job's fields as GET returns them may come along; they are ignored."
).named("BulkJobAction")


@route("POST", "/v1/workflows/{id}/bulk-runs", access=Access.WRITE, tag="bulk", body=CREATE,
       status=201, errors=(404, 409), response=BULK_JOB, links_to="/v1/bulk-jobs/{id}",
       summary="Fire the workflow for many contacts as one job.",
       description="The job stores its contact list and starts runs in chunks in the "
                   "background; the workflow's reentry rule applies per contact (a contact it "
                   "keeps out counts as `skipped`). 409 unless the workflow is active or paused "
                   "(in a paused workflow the runs are created paused). With "
                   "`require_approval` nothing starts until the job is approved. "
                   + STATUS_MACHINE)
async def create_bulk_run(call: Call) -> web.Response:
    job = await call.services.bulk.create(
        call.project, call.path("id"), payload=call.body["payload"],
        require_approval=call.body["require_approval"],
        contact_ids=call.body.get("contact_ids"), audience=call.body.get("audience"))
    return json_response(job.to_json(), status=201)


@route("GET", "/v1/bulk-jobs/{id}", access=Access.READ, tag="bulk", errors=(404,),
       response=BULK_JOB, summary="One bulk job, with its counts so far.",
       description=STATUS_MACHINE)
async def get_bulk_job(call: Call) -> web.Response:
    return json_response((await call.services.bulk.get(call.project, call.path("id"))).to_json())


@route("PATCH", "/v1/bulk-jobs/{id}", access=Access.WRITE, tag="bulk", body=ACTION,
       errors=(404, 409), response=BULK_JOB, summary="Approve or cancel a bulk job.",
       description="Approval is the second step of a job created with `require_approval`: "
                   "a separate action (another person's, typically) after creation, before "
                   "anything starts. " + STATUS_MACHINE)
async def act_on_bulk_job(call: Call) -> web.Response:
    bulk, job_id = call.services.bulk, call.path("id")
    if call.body["action"] == "approve":
        job = await bulk.approve(call.project, job_id)
    else:
        job = await bulk.cancel(call.project, job_id)
    return json_response(job.to_json())


@route("GET", "/v1/workflows/{id}/bulk-jobs", access=Access.READ, tag="bulk", paginated=True,
       errors=(404,), response=BULK_JOB, summary="The workflow's bulk jobs, newest first.")
async def list_bulk_jobs(call: Call) -> web.Response:
    page = await call.services.bulk.page(call.project, call.path("id"), before=call.before,
                                         limit=call.limit)
    return page_response(page)
