"""Shared fixtures: a real server (aiohttp test server on 127.0.0.1) on a real SQLite file."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from flowd.app import create_app
from flowd.config import Config, StorageConfig

ADMIN_KEY = "test-admin-key-0123456789"


def make_config(tmp_path, **storage: Any) -> Config:
    return Config(storage=dataclasses.replace(StorageConfig(path=str(tmp_path / "flowd.db")), **storage))


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
