"""The bench's HTTP client: one aiohttp session per scenario, talking only to 127.0.0.1.

Every answer is checked: an unexpected status raises `BenchError` with the response body, so a
server error is never counted as a measurement.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from flowd.bench.loadgen import check_loopback
from flowd.bench.server import BenchError

REQUEST_TIMEOUT_S = 30.0
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class Api:
    def __init__(self, url: str, key: str, *, connections: int = 64) -> None:
        check_loopback(url)
        self.url = url.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))

    async def __aenter__(self) -> "Api":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def call(self, method: str, path: str, body: Any = None, *,
                   expect: tuple[int, ...] = (200, 201, 202)) -> Any:
        """One request; returns the parsed JSON body. `body` may be pre-serialised bytes."""
        data = body if isinstance(body, (bytes, type(None))) else _dumps(body).encode()
        try:
            async with self._session.request(method, self.url + path, data=data) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise BenchError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if status not in expect:
            raise BenchError(f"{method} {path}: HTTP {status}: "
                             f"{raw[:1000].decode(errors='replace')}")
        return json.loads(raw) if raw else None

    async def timed(self, method: str, path: str, body: Any = None, *,
                    expect: tuple[int, ...] = (200, 201, 202)) -> tuple[float, Any]:
        """(latency in ms, parsed body) of one request."""
        t0 = time.perf_counter()
        result = await self.call(method, path, body, expect=expect)
        return (time.perf_counter() - t0) * 1000, result

    async def create_workflow(self, name: str, trigger: dict[str, Any],
                              steps: list[dict[str, Any]], *, reentry: str = "always") -> dict:
        workflow = await self.call("POST", "/v1/workflows", {
            "name": name, "status": "active", "trigger": trigger,
            "settings": {"reentry": reentry}, "steps": steps}, expect=(201,))
        if workflow.get("status") != "active":
            raise BenchError(f"workflow {name!r} was not activated: {workflow.get('issues')}")
        return workflow

    async def post_events(self, events: list[dict[str, Any]], *, batch: int = 100,
                          concurrency: int = 4) -> list[dict[str, Any]]:
        """Post events in batches, `concurrency` requests at a time; returns every event's
        result (id, runs_started, …) in order. Any non-202 raises."""
        chunks = [events[i:i + batch] for i in range(0, len(events), batch)]
        results: list[list[dict[str, Any]]] = [[] for _ in chunks]
        next_chunk = iter(range(len(chunks)))

        async def worker() -> None:
            for n in next_chunk:
                body = _dumps({"batch": chunks[n]}).encode()
                answer = await self.call("POST", "/v1/events", body, expect=(202,))
                results[n] = answer["data"]

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(chunks))))))
        return [item for chunk in results for item in chunk]
