"""A workflow's runs, with their traces, as one JSON download that is streamed: read in keyset
pages and written chunk by chunk, so that the server's memory stays flat however many runs
there are."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from flowd.api.middleware import REQUEST_ID, REQUEST_ID_HEADER
from flowd.api.routes import Call, Param, route, shape
from flowd.api.runs import RUN_WITH_STEPS, run_with_steps
from flowd.api.workflows import WORKFLOW_SUMMARY
from flowd.auth import Access
from flowd.store.records import Page, RunStatus
from flowd.timeutil import format_ms
from flowd.validation import Array, Integer, String, time_string

log = logging.getLogger("flowd.api")

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# A page is one read and one chunk written: ~200 runs, fewer when their traces are long.
PAGE_RUNS = 200
PAGE_STEPS = 5_000
_NO_RUNS = Page([], None)

_ONE_STATUS = "(" + "|".join(s.value for s in RunStatus) + ")"
STATUSES = String(
    pattern=f"{_ONE_STATUS}(,{_ONE_STATUS})*", max_len=200,
    pattern_message="must be run statuses separated by commas (pending, running, waiting, "
                    "paused, completed, failed, cancelled)",
    description="One run status, or several separated by commas: runs in any of them.")

EXPORT = shape("RunExport", {
    "workflow": WORKFLOW_SUMMARY,
    "exported_at": time_string(description="When the export started."),
    "run_count": Integer(min=0, description=(
        "How many runs matched when the export started (it comes before the runs).")),
    "runs": Array(RUN_WITH_STEPS, description=(
        "Each run as GET /v1/runs/{id} shows it, with its trace; newest first.")),
}, description="A workflow's runs with their step traces, as one document.")

_DESCRIPTION = (
    "Streams one JSON document (chunked transfer encoding) as a download: `Content-Disposition: "
    "attachment; filename=\"<workflow id>-runs.json\"`. The server reads the runs a page at a "
    "time, so an export of any size costs it little memory.\n\n"
    "`run_count` is counted when the export starts, with the same filters, and the listing is "
    "bounded by that moment: a run created during the export is never in it. The runs are "
    "read page by page, not in one snapshot, so each run (with its trace) is as it is when its "
    "page is read: a run that changes status meanwhile may leave a `status`-filtered export, "
    "and a run deleted meanwhile is missing. Only then do `run_count` and the length of `runs` "
    "differ.\n\n"
    "`run_id` narrows the export to that one run (none when it is not a run of this workflow). "
    "Errors found before the download starts (404, 422, 503) have the usual error body; a "
    "failure after it started (the database busy past the read time limit, the server "
    "shutting down) cuts the connection, so the client sees an incomplete body, never a "
    "complete-looking one.")


@route("GET", "/v1/workflows/{id}/runs/export", access=Access.READ, tag="runs", errors=(404,),
       query=(Param("status", STATUSES),
              Param("run_id", String(min_len=1, max_len=200, description="Only this run."))),
       summary="Download the workflow's runs with their traces as one JSON document (streamed).",
       description=_DESCRIPTION, response=EXPORT,
       response_headers={"Content-Disposition": 'attachment; filename="<workflow id>-runs.json"'})
async def export_runs(call: Call) -> web.StreamResponse:
    workflow = await call.services.workflows.get(call.project, call.path("id"))
    statuses = list(dict.fromkeys(call.query["status"].split(","))) if "status" in call.query \
        else None
    scope = dict(project_id=call.project, workflow_id=workflow.id, statuses=statuses,
                 run_id=call.query.get("run_id"))
    store = call.services.store

    async def page(before: int | None) -> Page:
        if before is None:
            return _NO_RUNS
        return await store.read(lambda tx: tx.runs.export_page(
            **scope, before=before, limit=PAGE_RUNS, max_steps=PAGE_STEPS))

    exported_at = format_ms(call.services.clock.now_ms())
    count, before = await store.read(lambda tx: tx.runs.export_bounds(**scope))
    # The first page is read before the first byte is sent, so that its failure (a busy
    # database) still gets a status and the error body.
    pending = await page(before)
    response = web.StreamResponse(headers={
        "Content-Type": "application/json; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{workflow.id}-runs.json"',
        REQUEST_ID_HEADER: call.request[REQUEST_ID]})
    response.enable_chunked_encoding()
    await response.prepare(call.request)
    head = {"workflow": workflow.to_json(with_steps=False), "exported_at": exported_at,
            "run_count": count}
    try:
        await response.write(_dumps(head)[:-1].encode() + b',"runs":[')
        separator = b""
        while pending.items:
            chunk, before = separator + _chunk(pending.items), pending.next_before
            pending = _NO_RUNS   # let the page go before the next is read: one at a time
            await response.write(chunk)
            separator = b","
            pending = await page(before)
        await response.write(b"]}")
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError) as exc:
        # The client hung up: the next write fails, or (with aiohttp's handler_cancellation)
        # the handler is cancelled. Nothing is held between pages (each is one read that keeps
        # no snapshot, and a read cancelled in flight is dropped when it ends), so stopping
        # here leaves nothing open.
        log.info("run export of %s stopped: the client closed the connection", workflow.id)
        if isinstance(exc, asyncio.CancelledError):
            raise
    except Exception:
        log.exception("run export of %s failed after its headers were sent (request id %s)",
                      workflow.id, call.request[REQUEST_ID])
        # The status line is gone: cutting the connection is the one way left to tell the
        # client that the document is incomplete.
        if call.request.transport is not None:
            call.request.transport.abort()
    return response


def _chunk(items: list[Any]) -> bytes:
    return b",".join(_dumps(run_with_steps(run, trace)).encode() for run, trace in items)
