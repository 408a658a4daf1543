"""Assembling the server: services, middleware, routes, and their start/stop order."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from aiohttp import web

from flowd.api import add_routes
from flowd.api.middleware import MAX_BODY_BYTES, SERVICES, envelope_middleware
from flowd.api.openapi import build_openapi
from flowd.api.routes import ROUTES
from flowd.auth import Authenticator, bootstrap_admin
from flowd.config import Config
from flowd.ingest import Ingest
from flowd.store import Database, DbSettings
from flowd.timeutil import Clock


def db_settings(config: Config) -> DbSettings:
    s = config.storage
    return DbSettings(path=s.path, synchronous=s.synchronous, busy_timeout_ms=s.busy_timeout_ms,
                      wal_max_bytes=s.wal_max_bytes, group_commit_max=s.group_commit_max,
                      read_connections=s.read_connections)


@dataclass
class Services:
    """Everything a handler may use, built once per server."""

    config: Config
    clock: Clock
    db: Database
    auth: Authenticator
    ingest: Ingest
    openapi: dict[str, Any] = field(default_factory=dict)


def create_app(config: Config, *, clock: Clock | None = None,
               admin_key: str | None = None) -> web.Application:
    """`admin_key` defaults to $FLOWD_ADMIN_KEY."""
    clock = clock or Clock()
    db = Database(db_settings(config))
    services = Services(config=config, clock=clock, db=db,
                        auth=Authenticator(db, clock, config.auth.key_cache_seconds),
                        ingest=Ingest(db, clock), openapi=build_openapi(ROUTES))
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[envelope_middleware])
    app[SERVICES] = services
    add_routes(app)
    env_key = admin_key if admin_key is not None else os.environ.get("FLOWD_ADMIN_KEY")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await db.open()
        try:
            await bootstrap_admin(db, clock, config.storage.path, env_key)
            yield
        finally:
            # Runs after the server stopped accepting and in-flight requests finished:
            # the writer commits everything still queued, then the connections close.
            await db.close()

    app.cleanup_ctx.append(lifecycle)
    return app
