"""Delivery health: what each channel did in the last day and week, and the workflows whose
runs fail — the page an operator opens when a journey seems broken."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.store.records import MessageStatus
from flowd.validation import Array, Integer, Number, Object, String

DELIVERY_CHANNELS = ("email", "sms", "push", "slack")
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MAX_WORKFLOWS = 100

_STATUSES = tuple(status.value for status in MessageStatus)
_WINDOW = Object({status: Integer(min=0) for status in _STATUSES}, required=_STATUSES,
                 description="Messages created in the window, by status (zeros included).")
_CHANNEL = Object({"24h": _WINDOW, "7d": _WINDOW}, required=("24h", "7d"))
DELIVERY_HEALTH = shape("DeliveryHealth", {
    "channels": Object({channel: _CHANNEL for channel in DELIVERY_CHANNELS},
                       required=DELIVERY_CHANNELS),
    "workflows": Array(Object({
        "workflow_id": String(), "name": String(),
        "runs_24h": Integer(min=0, description="Runs that ended in the last 24 hours."),
        "runs_failed_24h": Integer(min=0, description="…of which failed."),
        "failure_rate_24h": Number(description="runs_failed_24h / runs_24h."),
    }, required=("workflow_id", "name", "runs_24h", "runs_failed_24h", "failure_rate_24h")),
        description=f"Workflows with runs that ended in the last 24 hours, the highest failure "
                    f"rate first (then the most failures), at most {MAX_WORKFLOWS}."),
})


@route("GET", "/v1/health/delivery", access=Access.READ, tag="messages",
       response=DELIVERY_HEALTH,
       summary="Messages per channel and status over the last 24 hours and 7 days, and the "
               "workflows whose runs fail.",
       description="Windows are rolling, counted back from the moment of the call by each "
                   "message's creation. `sending` (recorded, not yet delivered) is listed "
                   "beside the contract's sent, failed, bounced and suppressed. A workflow's "
                   "runs count when they ended (completed, failed or cancelled) in the last 24 "
                   "hours; runs still waiting have not failed.")
async def delivery_health(call: Call) -> web.Response:
    now = call.services.clock.now_ms()
    project = call.project
    counts, ended = await call.services.store.read(lambda tx: (
        tx.messages.delivery_counts(project, now - WEEK_MS, now - DAY_MS),
        tx.runs.ended_by_workflow(project, now - DAY_MS)))
    return json_response({"channels": _channels(counts), "workflows": _workflows(ended)})


def _channels(counts: dict[tuple[str, str], tuple[int, int]]) -> dict[str, Any]:
    channels = {channel: {"24h": dict.fromkeys(_STATUSES, 0), "7d": dict.fromkeys(_STATUSES, 0)}
                for channel in DELIVERY_CHANNELS}
    for (channel, status), (day, week) in counts.items():
        if channel in channels and status in _STATUSES:
            channels[channel]["24h"][status] = day
            channels[channel]["7d"][status] = week
    return channels


def _workflows(ended: list[tuple[str, str, int, int]]) -> list[dict[str, Any]]:
    rows = [{"workflow_id": workflow_id, "name": name, "runs_24h": runs,
             "runs_failed_24h": failed, "failure_rate_24h": round(failed / runs, 4)}
            for workflow_id, name, runs, failed in ended if runs]
    rows.sort(key=lambda r: (-r["failure_rate_24h"], -r["runs_failed_24h"], r["name"]))
    return rows[:MAX_WORKFLOWS]
