"""Assembling the server: services, middleware, routes, and their start/stop order."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from aiohttp import web

from flowd.ai_service import AiService
from flowd.alert_delivery import AlertDeliverer
from flowd.alerts import AlertRecorder, FailingRule
from flowd.api import add_routes
from flowd.api.middleware import (
    BODY_TIMEOUT,
    MAX_BODY_BYTES,
    SERVICES,
    envelope_middleware,
)
from flowd.api.openapi import build_openapi
from flowd.api.routes import ROUTES
from flowd.approvals import ApprovalDesk
from flowd.audience_service import AudienceLimits, AudienceService
from flowd.auth import Authenticator, bootstrap_admin
from flowd.bulk import BulkProcessor
from flowd.bulk_control import BulkControl
from flowd.channel_setup import Channels, build_channels
from flowd.clock import Clock
from flowd.compose import Composer
from flowd.config import CodeConfig, Config, EmailConfig
from flowd.dueruns import DueRuns
from flowd.durations import parse_duration
from flowd.effects.base import EffectFailed, MailProvider
from flowd.effects.http import HttpClient
from flowd.effects.mail import OutboxProvider, SmtpProvider
from flowd.effects.sandbox import ProcessSandbox, SandboxLimits
from flowd.effects.signing import WebhookSigner, new_secret
from flowd.engine import Engine
from flowd.errors import ConfigError
from flowd.hooks import Hooks
from flowd.ingest import Ingest
from flowd.mailer import Mailer, MailSettings
from flowd.matching import WaitedNames
from flowd.metrics import Metrics
from flowd.registry import Registry
from flowd.retention import Retention, RetentionSettings
from flowd.run_control import RunControl
from flowd.scheduler import Scheduler
from flowd.schedules import Schedules
from flowd.send_history import StoredSendHistory
from flowd.send_policy import NO_POLICY, SendPolicy
from flowd.sessions import SessionDesk
from flowd.sizes import parse_size
from flowd.slots import RunSlots
from flowd.steps.base import Effects
from flowd.store import DbSettings, SqliteStore, Store
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
    store: Store
    auth: Authenticator
    ingest: Ingest
    registry: Registry
    engine: Engine
    slots: RunSlots
    scheduler: Scheduler
    schedules: Schedules
    workflows: WorkflowService
    runs: RunControl
    bulk: BulkControl
    bulk_processor: BulkProcessor
    signer: WebhookSigner
    http: HttpClient
    mailer: Mailer
    channels: Channels
    approvals: ApprovalDesk
    hooks: Hooks
    alerts: AlertRecorder
    alert_deliverer: AlertDeliverer
    retention: Retention
    metrics: Metrics
    sessions: SessionDesk
    sandbox: ProcessSandbox
    audiences: AudienceService
    ai: AiService
    composer: Composer
    openapi: dict[str, Any] = field(default_factory=dict)
    # Where this server is reached, for the links it puts in messages: [server] public_url, or
    # the address it listens on (known once it does: the command line sets it).
    base_url: str = ""
    send_policy: SendPolicy = NO_POLICY   # the project's [policy]; test runs follow it too

    def public_url(self) -> str:
        return self.config.server.public_url or self.base_url or (
            f"http://{self.config.server.host}:{self.config.server.port}")


def mail_provider(email: EmailConfig) -> MailProvider:
    if email.provider == "outbox":
        return OutboxProvider()
    context = None
    if email.ca_file:
        try:
            context = ssl.create_default_context(cafile=email.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"email.ca_file: cannot load {email.ca_file}: {exc}") from None
    try:
        return SmtpProvider(email.host, email.port, username=email.username or None,
                            password=email.password or None, starttls=email.starttls,
                            tls=email.tls, timeout=email.timeout_seconds,
                            connections=email.connections, ssl_context=context)
    except ValueError as exc:
        raise ConfigError(f"[email]: {exc}") from None


def code_sandbox(code: CodeConfig) -> ProcessSandbox:
    return ProcessSandbox(SandboxLimits(
        workers=code.workers, memory_limit=parse_size(code.memory_limit),
        max_stack_size=parse_size(code.max_stack_size),
        max_timeout_ms=parse_duration(code.max_timeout)))


def project_send_policy(config: Config) -> SendPolicy:
    try:
        return SendPolicy.of(config.policy)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def build_services(config: Config, clock: Clock, store: Store | None = None) -> Services:
    """Each part gets what it needs when it is made: the store, the registry of workflows, the
    due runs, the engine, the slots that execute runs, the scheduler that claims them."""
    store = store or SqliteStore(db_settings(config))
    send_policy = project_send_policy(config)
    http = HttpClient(
        allow_private_networks=config.http.allow_private_networks,
        allowed_networks=[n.strip() for n in config.http.allowed_networks.split(",") if n.strip()],
        max_body_bytes=config.http.max_response_bytes)

    async def load_secrets(project_id: str) -> list[str]:
        # Only reads: every project got its secret when it was made (or at start), so a
        # webhook step never writes beside its own commit.
        now = clock.now_ms()
        found = await store.read(lambda tx: tx.secrets.valid(project_id, now))
        if not found:  # only by hand: an unsigned delivery must not go out unnoticed
            raise EffectFailed("no_webhook_secret", f"project {project_id} has no webhook "
                               "signing secret; GET /v1/settings/webhook-secret makes one",
                               retryable=True)
        return found

    signer = WebhookSigner(load_secrets)
    allowed_networks = [n.strip() for n in config.http.allowed_networks.split(",") if n.strip()]
    ai = AiService(store, clock, config.ai,
                   allow_private_networks=config.http.allow_private_networks,
                   allowed_networks=allowed_networks)
    # Alerts go out through the same guarded client as webhook steps; the recorder writes them
    # in the units that end runs, bounce messages and open approvals, and wakes the deliverer.
    alert_deliverer = AlertDeliverer(store, clock, http,
                                     timeout_seconds=config.alerts.timeout_seconds)
    alerts = AlertRecorder(FailingRule.of(config.alerts), on_recorded=alert_deliverer.wake)
    waited = WaitedNames()
    metrics = Metrics()
    registry = Registry(store)
    due = DueRuns(clock)
    # The one cycle among the parts is real: an email step's bounce is an event, whose runs
    # the scheduler starts, on the slots that run the engine, whose effects send the email.
    # Ingest reaches the scheduler through these closures, which see it once it is made.
    ingest = Ingest(store, clock, index=lambda: registry.index, waited=waited,
                    on_started=lambda runs: scheduler.start_new(runs),
                    on_runs_due=lambda run_ids: scheduler.notify_now(run_ids),
                    metrics=metrics)
    audiences = AudienceService(store, clock, AudienceLimits.of(config.audiences))
    mailer = Mailer(store, clock, mail_provider(config.email), ingest,
                    MailSettings.of(config.email), public_url=lambda: services.public_url(),
                    alerts=alerts)
    channels = build_channels(config, store, clock, ingest, http)
    approvals = ApprovalDesk(store, clock, public_url=lambda: services.public_url(),
                             on_runs_due=lambda run_ids: scheduler.notify_now(run_ids))
    sandbox = code_sandbox(config.code)
    engine = Engine(store, registry, clock,
                    Effects(http=http, signer=signer, email=mailer, approvals=approvals,
                            audiences=audiences, **channels.effects(),
                            send_history=StoredSendHistory(store), sandbox=sandbox, ai=ai),
                    due=due, waited=waited, max_steps_per_run=config.engine.max_steps_per_run,
                    step_timeout_seconds=config.engine.step_timeout_seconds,
                    on_started=lambda runs: scheduler.start_new(runs),
                    store_events=ingest.store_events, alerts=alerts,
                    contact_changed=ingest.contact_changed, metrics=metrics,
                    send_policy=send_policy)
    slots = RunSlots(config.engine.max_concurrent_runs, engine.execute, due.notify_now)
    scheduler = Scheduler(store, clock, due, slots, engine.claim,
                          horizon_ms=int(config.engine.horizon_seconds * 1000), metrics=metrics)
    bulk_processor = BulkProcessor(store, clock, registry.current, scheduler.start_new)
    schedules = Schedules(store, clock, lambda: registry.index, on_started=scheduler.start_new,
                          audiences=audiences)
    registry.listeners.append(schedules.notify)
    auth = Authenticator(store, clock, config.auth.key_cache_seconds)
    services = Services(
        config=config, clock=clock, store=store, auth=auth, ingest=ingest,
        registry=registry, engine=engine, slots=slots, scheduler=scheduler, schedules=schedules,
        workflows=WorkflowService(store, clock, registry.changed, scheduler.notify_now),
        runs=RunControl(store, clock, registry.current, on_runs_due=scheduler.notify_now,
                        on_started=scheduler.start_new),
        bulk=BulkControl(store, clock, bulk_processor.wake, audiences),
        bulk_processor=bulk_processor,
        signer=signer, http=http, mailer=mailer, channels=channels, approvals=approvals,
        hooks=Hooks(store, clock, registry.current, on_started=scheduler.start_new,
                    public_url=lambda: services.public_url()),
        alerts=alerts, alert_deliverer=alert_deliverer,
        retention=Retention(store, clock, RetentionSettings.of(config.retention)),
        metrics=metrics,
        sessions=SessionDesk(store, clock, auth, parse_duration(config.server.session_ttl)),
        sandbox=sandbox, audiences=audiences, ai=ai, composer=Composer(ai),
        openapi=build_openapi(ROUTES), send_policy=send_policy)
    return services


async def ensure_webhook_secrets(store: Store, clock: Clock) -> None:
    """Every project has a signing secret before any step runs, in one unit: projects made
    before secrets were created with their project (or by hand) get theirs here."""
    now = clock.now_ms()
    await store.write(lambda tx: tx.secrets.ensure_every_project(now, new_secret))


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
        await services.store.open()
        try:
            await bootstrap_admin(services.store, clock, config.storage.path, env_key)
            await ensure_webhook_secrets(services.store, clock)
            await services.http.start()
            await services.ai.start()
            await services.registry.load()
            await services.engine.load()
            await services.mailer.start()
            await services.channels.start()
            await services.approvals.start()
            await services.sessions.start()
            await services.hooks.start()
            await services.scheduler.start()
            await services.bulk_processor.start()
            await services.schedules.start()
            await services.alert_deliverer.start()
            await services.retention.start()
            yield
        finally:
            # After the server stopped accepting and in-flight requests finished: stop firing
            # schedules and bulk chunks (both hand new runs to the scheduler) and starting
            # steps, then the writer commits everything still queued, then the files close.
            # Retention first: a pass stops between two batches.
            await services.retention.stop()
            await services.schedules.stop()
            await services.bulk_processor.stop()
            await services.scheduler.stop()
            await services.slots.stop()
            await services.alert_deliverer.stop()
            await services.http.close()
            await services.ai.close()
            await services.mailer.close()
            await services.channels.close()
            await services.sandbox.close()
            await services.store.close()

    app.cleanup_ctx.append(lifecycle)
    return app
