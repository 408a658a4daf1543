"""Webhook signing secrets are made where projects are made — with the project by the CLI, and
for every project missing one when the server starts — so signing a delivery only reads: a
webhook step writes nothing but its own commit."""

from __future__ import annotations

import sqlite3

from standardwebhooks.webhooks import Webhook

from flowd.api.middleware import SERVICES
from flowd.app import create_app, db_settings
from flowd.effects.signing import new_secret
from flowd.store import SyncStore
from tests.conftest import ADMIN_KEY, Api, Sink
from tests.test_keys import create_key_with_cli


def hook_workflow(url: str) -> dict:
    return {"trigger": {"type": "event", "event": "go"},
            "steps": [{"id": "call", "type": "webhook", "config": {"url": url, "body": {"n": 1}}}]}


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


async def test_a_project_created_with_the_cli_while_the_server_runs_gets_signed_webhooks(
        api: Api, sink: Sink, config):
    acme = Api(api.client, key=create_key_with_cli(config.storage.path, "admin", "acme"))
    await acme.workflow(hook_workflow(sink.url))
    run_id = (await acme.send("go", "u1"))["runs_started"][0]
    run = await acme.run_until(run_id, "completed", "failed")
    assert run["status"] == "completed", run
    [request] = sink.requests
    _, secret = await acme.get("/v1/settings/webhook-secret")
    verified = Webhook(secret["secret"]).verify(request["body"], lowered(request["headers"]))
    assert verified == {"n": 1}
    _, default_secret = await api.get("/v1/settings/webhook-secret")
    assert default_secret != secret   # each project signs with its own


def test_the_cli_creates_a_new_projects_secret_with_it(config):
    create_key_with_cli(config.storage.path, "admin", "acme")
    store = SyncStore(db_settings(config))
    try:
        [secret] = store.read().secrets.valid("acme", now=0)
        assert secret.startswith("whsec_")
        # Another key of the project keeps the secret it has.
        create_key_with_cli(config.storage.path, "editor", "acme")
        assert store.read().secrets.valid("acme", now=0) == [secret]
    finally:
        store.close()


def test_ensure_every_project_gives_a_secret_only_to_projects_without_one(config):
    store = SyncStore(db_settings(config))
    try:
        store.migrate()
        with store.transaction() as tx:
            for project in ("a", "b"):
                tx.keys.ensure_project(project, 1)
            kept = tx.secrets.current("a", 1, new_secret)
        with store.transaction() as tx:
            assert tx.secrets.ensure_every_project(2, new_secret) == ["b", "default"]
        with store.transaction() as tx:
            assert tx.secrets.ensure_every_project(3, new_secret) == []
        tx = store.read()
        assert tx.secrets.valid("a", 3) == [kept]
        assert all(len(tx.secrets.valid(p, 3)) == 1 for p in ("b", "default"))
        # A rotated project has a current secret (and its old one, for a while): left alone.
        with store.transaction() as tx:
            tx.secrets.rotate("b", 4, 1000, new_secret)
            assert tx.secrets.ensure_every_project(5, new_secret) == []
    finally:
        store.close()


async def test_the_server_gives_every_project_without_a_secret_one_at_start(
        aiohttp_client, config):
    # A database from before secrets were made with projects: a project with none.
    store = SyncStore(db_settings(config))
    try:
        store.migrate()
        with store.transaction() as tx:
            tx.keys.ensure_project("legacy", 1)
        assert store.read().secrets.valid("legacy", 1) == []
    finally:
        store.close()
    client = await aiohttp_client(create_app(config, admin_key=ADMIN_KEY))
    services = client.server.app[SERVICES]
    now = services.clock.now_ms()
    for project in ("legacy", "default"):
        assert len(await services.store.read(lambda tx: tx.secrets.valid(project, now))) == 1


async def test_a_webhook_step_writes_nothing_but_its_own_commit(api: Api, sink: Sink):
    # A fresh server that has never signed for this project: before, the signer made the
    # project's secret here, with a write of its own in the middle of the step.
    await api.workflow(hook_workflow(sink.url))
    services = api.app[SERVICES]
    writer = services.store.db.writer.stats
    units, steps = writer.units, services.engine.steps_committed
    run_id = (await api.send("go", "u1"))["runs_started"][0]
    assert (await api.run_until(run_id, "completed", "failed"))["status"] == "completed"
    assert len(sink.requests) == 1
    assert services.engine.steps_committed - steps == 1
    # The event's unit (which started the run) and the step's commit: nothing else.
    assert writer.units - units == 1 + 1


async def test_a_project_left_without_a_secret_fails_the_step_instead_of_sending_unsigned(
        api: Api, sink: Sink, config):
    await api.workflow(hook_workflow(sink.url))
    # Only by hand: the server made the secret at start, and signing never makes one.
    with sqlite3.connect(config.storage.path) as conn:
        conn.execute("DELETE FROM webhook_secrets WHERE project_id = 'default'")
    conn.close()
    run_id = (await api.send("go", "u1"))["runs_started"][0]
    run = await api.run_until(run_id, "completed", "failed")
    assert run["error"]["code"] == "no_webhook_secret"
    assert sink.requests == []
