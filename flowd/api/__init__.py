"""The HTTP API: one module per resource, each registering its routes in `routes.ROUTES`."""

from __future__ import annotations

from aiohttp import web

# Importing the resource modules registers their routes.
from flowd.api import (  # noqa: F401
    ai_settings,
    approvals,
    audiences,
    blueprints,
    bulk,
    bundles,
    contacts,
    events,
    health,
    hooks,
    keys,
    links,
    messages,
    meta,
    metrics,
    run_export,
    run_migration,
    runs,
    sessions,
    settings,
    step_types,
    templates,
    test_runs,
    webhooks,
    workflow_stats,
    workflows,
)
from flowd.api.middleware import bind
from flowd.api.routes import ROUTES


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, bind(route))
