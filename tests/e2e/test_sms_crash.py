"""Crash while SMS are in flight: a subprocess server sends one SMS per run through a Twilio
fake (an aiohttp server in a thread of this process, speaking Twilio's Messages API) that
answers the first ANSWERED requests and then holds every request unanswered, so that at the
kill the server has ANSWERED messages recorded `sent` and the rest recorded `sending` with
their request in the air. After a `kill -9` and a restart on the same file, every run
completes, every message is delivered, and none whose record said `sent` at the kill is
delivered again."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from tests.channel_fakes import TWILIO_SID, TWILIO_TOKEN
from tests.e2e.conftest import ServerProcess, wait_until

RUNS = 40
ANSWERED = 15


class HoldingTwilio:
    """Twilio's POST …/Messages.json: 201 with a `sid` for the first `answered` requests, then
    every request waits until `release()`. `delivered` counts each body as a real provider
    would have taken it: a held request counts once released, even if its sender died."""

    def __init__(self, answered: int) -> None:
        self.answered = answered
        self.requests = 0
        self.held = 0
        self.delivered: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _messages(self, request: web.Request) -> web.Response:
        form = {k: v[0] for k, v in parse_qs(await request.text()).items()}
        assert request.match_info["sid"] == TWILIO_SID
        self.requests += 1
        if self.requests > self.answered:
            self.held += 1
            await self._released.wait()
        self.delivered[form["Body"]] += 1
        return web.json_response({"sid": f"SM{self.requests:032x}", "status": "queued",
                                  "to": form["To"], "body": form["Body"]}, status=201)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._messages)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._released.set)

    def __enter__(self) -> "HoldingTwilio":
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _env(twilio: HoldingTwilio) -> dict[str, str]:
    return {"FLOWD_SMS_PROVIDER": "twilio", "FLOWD_SMS_ACCOUNT_SID": TWILIO_SID,
            "FLOWD_SMS_AUTH_TOKEN": TWILIO_TOKEN, "FLOWD_SMS_FROM": "+15005550006",
            "FLOWD_SMS_BASE_URL": f"http://127.0.0.1:{twilio.port}",
            "FLOWD_SMS_TIMEOUT_SECONDS": "60"}


def test_no_sms_recorded_sent_is_sent_again_after_kill9(start_server) -> None:
    with HoldingTwilio(ANSWERED) as twilio:
        server: ServerProcess = start_server(env=_env(twilio), log_name="before-kill.log")
        created = server.post("/v1/workflows", {
            "name": "reminders", "status": "active",
            "trigger": {"type": "event", "event": "go"},
            "steps": [{"id": "sms", "type": "send_sms",
                       "config": {"body": "Your code for {{ contact.id }}"}}]})
        assert created.status == 201, created.body
        events = [{"name": "go", "contact_id": f"c{i}",
                   "contact": {"phone": f"+1415555{i:04d}"}} for i in range(RUNS)]
        accepted = server.post("/v1/events", {"batch": events})
        assert accepted.status == 202, accepted.body

        wait_until(lambda: len(server.list_all("/v1/messages?status=sent")) == ANSWERED
                   and twilio.held >= 1, 20, f"{ANSWERED} sent and some held")
        server.kill9()

        with sqlite3.connect(server.db) as db:
            records = dict(db.execute("SELECT id, status FROM messages").fetchall())
        sent_at_kill = {m for m, status in records.items() if status == "sent"}
        assert len(sent_at_kill) == ANSWERED
        assert Counter(records.values())["sending"] >= 1
        delivered_at_kill = sum(twilio.delivered.values())
        assert delivered_at_kill == ANSWERED

        # A held request counts as delivered once released, as a provider that got it would
        # have delivered it; its record said `sending`, so the restart sends it again.
        twilio.release()
        restarted = start_server(admin_key=server.key, db=server.db, env=_env(twilio),
                                 log_name="after-restart.log")
        wait_until(lambda: len(restarted.list_all("/v1/runs?status=completed")) == RUNS, 60,
                   "every run completed")
        records = restarted.list_all("/v1/messages")
        assert len(records) == RUNS and all(r["status"] == "sent" for r in records)
        assert all(r["provider_message_id"].startswith("SM") for r in records)
        # None lost; none recorded `sent` at the kill sent again; only a message whose request
        # was in the air at the kill may go twice (the at-least-once window of every step).
        assert set(twilio.delivered) == {f"Your code for c{i}" for i in range(RUNS)}
        sent_bodies = {r["body"] for r in records if r["id"] in sent_at_kill}
        assert all(twilio.delivered[body] == 1 for body in sent_bodies)
        assert max(twilio.delivered.values()) <= 2
