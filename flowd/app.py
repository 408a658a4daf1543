"""Assembling the server: services, middleware, routes, and their start/stop order."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from aiohttp import web

from flowd.api import add_routes
from flowd.api.middleware import BODY_TIMEOUT, MAX_BODY_BYTES, SERVICES, envelope_middleware
from flowd.api.openapi import build_openapi
from flowd.api.routes import ROUTES
from flowd.auth import Authenticator, bootstrap_admin
from flowd.config import Config
from flowd.effects.http import HttpClient
from flowd.effects.signing import WebhookSigner, new_secret
from flowd.engine import Engine
from flowd.ingest import Ingest
from flowd.matching import WaitedNames
from flowd.run_control import RunControl
from flowd.scheduler import Scheduler
from flowd.steps.base import Effects
from flowd.store import Database, DbSettings
from flowd.store import secrets as secret_store
from flowd.timeutil import Clock
from flowd.workflows import WorkflowService


def db_settings(config: Config) -> DbSettings:
    s = config.storage
    return DbSettings(path=s.path, synchronous=s.synchronous, busy_timeout_ms=s.busy_timeout_ms,
                      wal_max_bytes=s.wal_max_bytes, group_commit_max=s.group_commit_max,
                      read_connections=s.read_connections, read_timeout_ms=s.read_timeout_ms)


@dataclass
class Services:
    """Everything a handler may use, built once per server."""

    config: Config
    clock: Clock
    db: Database
    auth: Authenticator
    ingest: Ingest
    engine: Engine
    scheduler: Scheduler
    workflows: WorkflowService
    runs: RunControl
    signer: WebhookSigner
    http: HttpClient
    openapi: dict[str, Any] = field(default_factory=dict)


def build_services(config: Config, clock: Clock) -> Services:
    db = Database(db_settings(config))
    http = HttpClient(
        allow_private_networks=config.http.allow_private_networks,
        allowed_networks=[n.strip() for n in config.http.allowed_networks.split(",") if n.strip()],
        max_body_bytes=config.http.max_response_bytes)

    async def load_secrets(project_id: str) -> list[str]:
        now = clock.now_ms()
        await db.write(secret_store.current_secret, project_id, now, new_secret)
        return await db.read(secret_store.valid_secrets, project_id, now)

    signer = WebhookSigner(load_secrets)
    waited = WaitedNames()
    engine = Engine(db, clock, Effects(http=http, signer=signer), waited=waited,
                    max_concurrent=config.engine.max_concurrent_runs,
                    max_steps_per_run=config.engine.max_steps_per_run)
    scheduler = Scheduler(db, clock, engine, horizon_ms=int(config.engine.horizon_seconds * 1000))
    engine.on_due = scheduler.notify
    return Services(
        config=config, clock=clock, db=db,
        auth=Authenticator(db, clock, config.auth.key_cache_seconds),
        ingest=Ingest(db, clock, index=lambda: engine.index, waited=waited,
                      on_started=scheduler.start_new,
                      on_runs_due=scheduler.notify_now),
        engine=engine, scheduler=scheduler,
        workflows=WorkflowService(db, clock, engine.workflow_changed, scheduler.notify_now),
        runs=RunControl(db, clock, lambda wf_id: engine.index.by_id.get(wf_id),
                        on_runs_due=scheduler.notify_now, on_started=scheduler.start_new),
        signer=signer, http=http, openapi=build_openapi(ROUTES))


def create_app(config: Config, *, clock: Clock | None = None,
               admin_key: str | None = None) -> web.Application:
    """`admin_key` defaults to $FLOWD_ADMIN_KEY."""
    clock = clock or Clock()
    services = build_services(config, clock)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[envelope_middleware])
    app[SERVICES] = services
    app[BODY_TIMEOUT] = config.server.body_timeout
    add_routes(app)
    env_key = admin_key if admin_key is not None else os.environ.get("FLOWD_ADMIN_KEY")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await services.db.open()
        try:
            await bootstrap_admin(services.db, clock, config.storage.path, env_key)
            await services.http.start()
            await services.engine.load_workflows()
            await services.scheduler.start()
            yield
        finally:
            # After the server stopped accepting and in-flight requests finished: stop starting
            # steps, then the writer commits everything still queued, then the files close.
            await services.scheduler.stop()
            await services.engine.stop()
            await services.http.close()
            await services.db.close()

    app.cleanup_ctx.append(lifecycle)
    return app
