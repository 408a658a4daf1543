"""Shared fixtures: a real server (aiohttp test server on 127.0.0.1) on a real SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from flowd.app import create_app
from flowd.config import Config, HttpConfig, StorageConfig

ADMIN_KEY = "test-admin-key-0123456789"


def make_config(tmp_path, *, allow_private_networks: bool = True, allowed_networks: str = "",
                **storage: Any) -> Config:
    # Tests call webhook sinks on 127.0.0.1, so private networks are allowed unless a test
    # is about the guard itself.
    return Config(storage=dataclasses.replace(StorageConfig(path=str(tmp_path / "flowd.db")), **storage),
                  http=HttpConfig(allow_private_networks=allow_private_networks,
                                  allowed_networks=allowed_networks))


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0,
                     interval: float = 0.02) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last result: {result!r}")
        await asyncio.sleep(interval)


class Sink:
    """A real HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.statuses: list[int] = []   # consumed one per request before `status` applies
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"path": request.path, "method": request.method,
                              "headers": dict(request.headers), "body": body})
        status = self.statuses.pop(0) if self.statuses else self.status
        return web.json_response({"received": len(self.requests)}, status=status)

    def bodies(self) -> list[Any]:
        import json
        return [json.loads(r["body"]) if r["body"] else None for r in self.requests]


class Api:
    """A thin client: `await api.post("/v1/events", json=..., key=...)` → (status, body)."""

    def __init__(self, client: TestClient, key: str = ADMIN_KEY) -> None:
        self.client = client
        self.key = key
        self.app = client.server.app

    async def request(self, method: str, path: str, *, key: str | None = "", json: Any = None,
                      data: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        headers = dict(headers or {})
        key = self.key if key == "" else key
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        async with self.client.request(method, path, json=json, data=data, headers=headers) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("DELETE", path, **kw)

    async def patch(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("PATCH", path, **kw)

    async def workflow(self, definition: dict[str, Any], *, activate: bool = True) -> dict[str, Any]:
        body = {"name": "test", **definition}
        if activate:
            body["status"] = "active"
        status, workflow = await self.post("/v1/workflows", json=body)
        assert status == 201, workflow
        return workflow

    async def run(self, run_id: str) -> dict[str, Any]:
        status, run = await self.get(f"/v1/runs/{run_id}")
        assert status == 200, run
        return run

    async def run_until(self, run_id: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            run = await self.run(run_id)
            return run if run["status"] in statuses else None
        return await eventually(check, timeout)

    async def send(self, name: str, contact_id: str | None = None, **fields: Any) -> dict[str, Any]:
        status, result = await self.post("/v1/events", json={"name": name, "contact_id": contact_id,
                                                             **fields})
        assert status == 202, result
        return result

    async def new_key(self, role: str) -> str:
        status, body = await self.post("/v1/keys", json={"role": role, "name": f"test {role}"})
        assert status == 201, body
        return body["key"]


@pytest.fixture
def config(tmp_path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
async def api(aiohttp_client, config) -> Api:
    client = await aiohttp_client(create_app(config, admin_key=ADMIN_KEY))
    return Api(client)


@pytest.fixture
async def sink(aiohttp_server) -> Sink:
    recorder = Sink()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    recorder.url = str(server.make_url("/hook"))
    return recorder
