"""`GET /metrics`: the server's counters in Prometheus text format, for a scraper.

Not under /v1 and not behind an API key (a scraper is configured with a URL, and a key of a
project would be the wrong kind of secret): public unless `[server] metrics_token` is set, then
`Authorization: Bearer <that token>`, compared in constant time."""

from __future__ import annotations

import hmac

from aiohttp import web

from flowd.api.routes import Call, route
from flowd.auth import Access
from flowd.errors import Unauthorized
from flowd.metrics import CONTENT_TYPE, render
from flowd.validation import String


@route("GET", "/metrics", access=Access.PUBLIC, tag="operations", content_type="text/plain",
       summary="Prometheus metrics (text exposition format 0.0.4).",
       description="Counters of events ingested, runs started/completed/failed by workflow "
                   "and steps executed; the scheduler's lag; the writer's queue depth and "
                   "commit latency; WAL and database sizes; messages by channel and status. "
                   "No API key: when `[server] metrics_token` is set, `Authorization: Bearer "
                   "<that token>` is required (401 otherwise).",
       response=String(), errors=(401,))
async def metrics(call: Call) -> web.Response:
    token = call.services.config.server.metrics_token
    if token:
        given = call.request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("GET /metrics needs Authorization: Bearer <[server] metrics_token>")
    services = call.services
    body = render(services.metrics, await services.store.storage_metrics())
    return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})
