"""The one timeout every step attempt runs under (`[engine] step_timeout_seconds`), against a
real HTTP server on 127.0.0.1 that never answers in time: the attempt fails with `step_timeout`,
is retried like any retryable failure, and the run goes on. Outcomes only, never timings."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiohttp import web

from flowd.config import EngineConfig
from tests.conftest import Api, make_config

RETRY_TWICE = {"max_attempts": 2, "backoff": "PT0.01S"}


def attempts(run: dict, step_id: str) -> list[dict]:
    return [s for s in run["steps"] if s["step_id"] == step_id]


class SlowServer:
    """A real HTTP server on 127.0.0.1 that takes each request and answers only when released
    (when the test ends), so a call to it outlasts any short timeout."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.requests = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        await self.released.wait()
        return web.json_response({})


@pytest.fixture
async def slow_server(aiohttp_server):
    slow = SlowServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    slow.url = str(server.make_url("/slow"))
    yield slow
    slow.released.set()   # before the server closes: its handlers finish at once


@pytest.fixture
def config(tmp_path):
    # Far below the http step's own timeout (10 s by default), so the engine's fires first.
    return dataclasses.replace(make_config(tmp_path),
                               engine=EngineConfig(step_timeout_seconds=0.2))


async def test_an_attempt_past_step_timeout_seconds_fails_with_step_timeout(api: Api, slow_server):
    await api.workflow({
        "trigger": {"type": "event", "event": "go"},
        "steps": [{"id": "call", "type": "webhook", "config": {"url": slow_server.url},
                   "retry": RETRY_TWICE}]})
    run = await api.run_until((await api.send("go", "u1"))["runs_started"][0], "failed")
    tried = attempts(run, "call")
    # Retryable: both attempts reached the server and both were cut off.
    assert [s["attempt"] for s in tried] == [1, 2]
    assert slow_server.requests == 2
    for attempt in tried:
        assert attempt["status"] == "failed"
        assert attempt["error"]["code"] == "step_timeout"
        assert "step_timeout_seconds" in attempt["error"]["message"]
    assert run["error"]["code"] == "step_timeout"


async def test_a_timed_out_attempt_is_a_failure_like_any_other(api: Api, slow_server):
    # The run is not stuck behind the slow call: on_error continue takes it to the next step.
    await api.workflow({
        "trigger": {"type": "event", "event": "go"},
        "steps": [{"id": "call", "type": "http_request", "config": {"url": slow_server.url},
                   "on_error": "continue"},
                  {"id": "after", "type": "set", "config": {"vars": {"went_on": True}}}]})
    run = await api.run_until((await api.send("go", "u1"))["runs_started"][0], "completed")
    assert [(s["step_id"], s["status"]) for s in run["steps"]] == [("call", "failed"),
                                                                    ("after", "ok")]
    assert run["steps"][0]["error"]["code"] == "step_timeout"
    assert run["vars"] == {"went_on": True}
