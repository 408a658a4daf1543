"""Request bodies that do not arrive as declared, over real sockets: a Content-Length over the
limit, bodies that stall, chunked bodies that grow past the limit or never end — each answered
with the contract's envelope instead of being waited for."""

from __future__ import annotations

import dataclasses
import json

import pytest

from flowd.config import Config
from tests.conftest import ADMIN_KEY, Api, make_config
from tests.raw_http import RawResponse, chunk, exchange, request_head

BODY_TIMEOUT = 1.0
AUTH = f"Authorization: Bearer {ADMIN_KEY}"
EVENT = json.dumps({"name": "signup", "contact_id": "u1"}).encode()


@pytest.fixture
def config(tmp_path) -> Config:
    config = make_config(tmp_path)
    return dataclasses.replace(
        config, server=dataclasses.replace(config.server, body_timeout=BODY_TIMEOUT))


def port(api: Api) -> int:
    return api.client.server.port


def assert_envelope(response: RawResponse, status: int, code: str) -> None:
    assert response.status == status, response
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"] and body["error"]["details"] == []


async def event_count(api: Api) -> int:
    status, body = await api.get("/v1/events?limit=100")
    assert status == 200
    return len(body["data"])


@pytest.mark.parametrize("method,path", [("POST", "/v1/events"), ("GET", "/healthz"),
                                         ("GET", "/v1/no-such-endpoint")])
async def test_a_declared_length_over_the_limit_is_413_before_any_body(api: Api, method, path):
    # Only two of the two million declared bytes are sent, and the connection stays open: the
    # answer must not wait for the rest (it would be a 408, or the route's own answer).
    response = await exchange(port(api), request_head(
        method, path, AUTH, "Content-Type: application/json", "Content-Length: 2000000") + b"{}")
    assert_envelope(response, 413, "payload_too_large")
    assert "2000000" in response.json()["error"]["message"]
    assert response.headers["connection"] == "close"
    assert await event_count(api) == 0


async def test_a_body_that_stalls_is_408_and_closes_the_connection(api: Api):
    response = await exchange(port(api), request_head(
        "POST", "/v1/events", AUTH, "Content-Type: application/json",
        f"Content-Length: {len(EVENT)}") + EVENT[:10])
    assert_envelope(response, 408, "request_timeout")
    assert "stalled" in response.json()["error"]["message"]
    assert response.headers["connection"] == "close"
    assert await event_count(api) == 0


async def test_a_chunked_body_that_stalls_is_408(api: Api):
    response = await exchange(port(api), request_head(
        "POST", "/v1/events", AUTH, "Content-Type: application/json",
        "Transfer-Encoding: chunked") + chunk(EVENT[:10]))
    assert_envelope(response, 408, "request_timeout")
    assert response.headers["connection"] == "close"
    assert await event_count(api) == 0


async def test_a_chunked_body_over_the_limit_is_413(api: Api):
    # No length is declared, so the limit is only known to be crossed once 1 MiB has arrived.
    piece = b" " * 65536
    response = await exchange(port(api), request_head(
        "POST", "/v1/events", AUTH, "Content-Type: application/json",
        "Transfer-Encoding: chunked") + chunk(EVENT) + chunk(piece) * 17 + b"0\r\n\r\n")
    assert_envelope(response, 413, "payload_too_large")
    assert response.headers["connection"] == "close"
    assert await event_count(api) == 0


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_slow_but_steady_body_is_accepted(api: Api, framing):
    # Arriving in pieces a tenth of body_timeout apart, the whole body takes longer than
    # body_timeout: the limit is on silence, not on the upload's duration.
    pieces = [EVENT[i:i + 3] for i in range(0, len(EVENT), 3)]
    assert len(pieces) * 0.1 > BODY_TIMEOUT
    if framing == "chunked":
        head = request_head("POST", "/v1/events", AUTH, "Content-Type: application/json",
                            "Transfer-Encoding: chunked")
        parts = [head] + [p for piece in pieces for p in (0.1, chunk(piece))] + [b"0\r\n\r\n"]
    else:
        head = request_head("POST", "/v1/events", AUTH, "Content-Type: application/json",
                            f"Content-Length: {len(EVENT)}")
        parts = [head] + [p for piece in pieces for p in (0.1, piece)]
    response = await exchange(port(api), *parts)
    assert response.status == 202, response
    assert await event_count(api) == 1
