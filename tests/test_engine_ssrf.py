"""The private-network guard as workflows meet it: refused destinations fail the step with
`destination_not_allowed`, are not retried, and the target receives nothing."""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.conftest import Api, Sink, make_config


@pytest.fixture
def config(tmp_path):
    # 127.0.0.2 is let through for the redirect test; every other private address is refused.
    return make_config(tmp_path, allow_private_networks=False, allowed_networks="127.0.0.2/32")


@pytest.mark.parametrize("url", [
    "{sink}",                                        # 127.0.0.1
    "{sink_localhost}",                              # a name that resolves to loopback
    "http://[::ffff:127.0.0.1]:{port}/hook",         # IPv4-mapped IPv6
    "http://169.254.169.254/latest/meta-data/",      # cloud metadata
    "http://10.0.0.1/internal",                      # RFC 1918
    "http://192.168.1.1/",
    "{{{{ vars.target }}}}",                         # decided when the step runs
])
async def test_private_destinations_are_refused_without_retry(api: Api, sink: Sink, url):
    port = sink.url.split(":")[2].split("/")[0]
    target = url.format(sink=sink.url, port=port,
                        sink_localhost=sink.url.replace("127.0.0.1", "localhost"))
    await api.workflow({
        "trigger": {"type": "event", "event": "go"},
        "steps": [{"id": "where", "type": "set", "config": {"vars": {"target": sink.url}}},
                  {"id": "call", "type": "webhook", "config": {"url": target, "timeout": "PT2S"},
                   "retry": {"max_attempts": 3, "backoff": "PT0.01S"}}]})
    run_id = (await api.send("go", "u1"))["runs_started"][0]
    run = await api.run_until(run_id, "failed")
    call = [s for s in run["steps"] if s["step_id"] == "call"]
    assert len(call) == 1, "a refused destination is not retried"
    assert call[0]["error"]["code"] == "destination_not_allowed"
    assert run["error"]["code"] == "destination_not_allowed"
    assert sink.requests == []


async def test_a_redirect_is_returned_not_followed(api: Api, aiohttp_server):
    # 127.0.0.2 is allowed (config above); its redirect to 127.0.0.1 must not be followed.
    hits = []

    async def target(request):
        hits.append(request.path)
        return web.json_response({})

    async def redirector(request):
        raise web.HTTPFound(f"http://127.0.0.1:{target_server.port}/secret")

    target_app = web.Application()
    target_app.router.add_get("/secret", target)
    target_server = await aiohttp_server(target_app, host="127.0.0.1")
    redirect_app = web.Application()
    redirect_app.router.add_route("*", "/go", redirector)
    redirect_server = await aiohttp_server(redirect_app, host="127.0.0.2")
    await api.workflow({
        "trigger": {"type": "event", "event": "go"},
        "steps": [{"id": "call", "type": "http_request",
                   "config": {"url": f"http://127.0.0.2:{redirect_server.port}/go"}}]})
    run_id = (await api.send("go", "u1"))["runs_started"][0]
    run = await api.run_until(run_id, "failed")
    assert run["steps"][0]["output"]["status"] == 302
    assert run["error"]["code"] == "http_status"
    assert hits == []
