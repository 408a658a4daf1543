"""Browser sessions: signing in with a key, the cookie, its CSRF rule, and every way it ends."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import sqlite3
from pathlib import Path

import pytest

from flowd.app import create_app
from flowd.clock import Clock
from flowd.config import ServerConfig
from tests.conftest import ADMIN_KEY, Api, make_config

WORKFLOW = {"name": "w", "trigger": {"type": "manual"},
            "steps": [{"id": "a", "type": "wait", "config": {"duration": "PT1H"}}]}


class ShiftedClock(Clock):
    """Wall-clock time plus an offset a test may move forward."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
async def api(aiohttp_client, tmp_path, clock) -> Api:
    client = await aiohttp_client(create_app(make_config(tmp_path), clock=clock,
                                             admin_key=ADMIN_KEY))
    return Api(client)


async def sign_in(api: Api, key: str = ADMIN_KEY) -> tuple[str, dict, str]:
    """(the cookie's token, the body, the Set-Cookie header)."""
    async with api.client.post("/v1/session", json={"key": key}) as resp:
        body = await resp.json()
        assert resp.status == 201, body
        set_cookie = resp.headers["Set-Cookie"]
    # The test client keeps cookies; each test here sends the one it means explicitly.
    api.client.session.cookie_jar.clear()
    name, _, rest = set_cookie.partition("=")
    assert name == "flowd_session"
    return rest.split(";")[0], body, set_cookie


def cookie(token: str, csrf: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"flowd_session={token}"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return headers


async def test_a_good_key_gets_an_httponly_strict_cookie_that_is_not_the_key(api: Api):
    token, body, set_cookie = await sign_in(api)
    assert set(body) == {"project", "role", "expires_at", "csrf_token"}
    assert (body["project"], body["role"]) == ("default", "admin")
    assert body["expires_at"].endswith("Z")
    attributes = [part.strip() for part in set_cookie.split(";")]
    assert attributes == [f"flowd_session={token}", "HttpOnly", "SameSite=Strict", "Path=/",
                          "Max-Age=43200"]
    assert ADMIN_KEY not in set_cookie and len(token) >= 43
    assert body["csrf_token"] != token and token not in body["csrf_token"]


async def test_the_cookie_is_secure_behind_https(aiohttp_client, tmp_path):
    config = make_config(tmp_path)
    config = dataclasses.replace(config, server=ServerConfig(
        public_url="https://flowd.example.com", session_ttl="PT30M"))
    api = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
    _, _, set_cookie = await sign_in(api)
    attributes = [part.strip() for part in set_cookie.split(";")]
    assert attributes[1:] == ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=1800", "Secure"]


async def test_a_bad_key_is_401_and_too_many_are_429(api: Api):
    status, body = await api.post("/v1/session", key=None, json={"key": "flowd_nope"})
    assert status == 401 and body["error"]["code"] == "unauthorized"
    for _ in range(19):
        status, _ = await api.post("/v1/session", key=None, json={"key": "flowd_nope"})
        assert status == 401
    async with api.client.post("/v1/session", json={"key": ADMIN_KEY}) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert "Set-Cookie" not in resp.headers
        assert (await resp.json())["error"]["code"] == "rate_limited"


async def test_a_sign_in_takes_a_json_body_with_the_key_only(api: Api):
    status, body = await api.post("/v1/session", key=None, json={"key": ADMIN_KEY, "x": 1})
    assert status == 422
    status, body = await api.post("/v1/session", key=None, data=f'{{"key": "{ADMIN_KEY}"}}',
                                  headers={"Content-Type": "text/plain"})
    assert status == 400 and "application/json" in body["error"]["message"]


async def test_the_cookie_authenticates_reads_and_get_session_repeats_the_body(api: Api):
    token, body, _ = await sign_in(api)
    status, again = await api.get("/v1/session", key=None, headers=cookie(token))
    assert (status, again) == (200, body)
    status, me = await api.get("/v1/me", key=None, headers=cookie(token))
    assert status == 200 and me == {"project": "default", "role": "admin"}
    status, _ = await api.get("/v1/workflows", key=None, headers=cookie(token))
    assert status == 200
    status, body = await api.get("/v1/session", key=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    # An API key is no session.
    status, _ = await api.get("/v1/session")
    assert status == 401


async def test_a_change_by_cookie_needs_the_csrf_token(api: Api):
    token, body, _ = await sign_in(api)
    other_token, other, _ = await sign_in(api)
    forged = secrets.token_urlsafe(32)
    for csrf in (None, "", "wrong", forged, other["csrf_token"], body["csrf_token"] + "x"):
        status, error = await api.post("/v1/workflows", key=None, json=WORKFLOW,
                                       headers=cookie(token, csrf))
        assert status == 403, csrf
        assert error["error"]["code"] == "forbidden"
        assert "X-CSRF-Token" in error["error"]["message"]
    _, listed = await api.get("/v1/workflows")
    assert listed["data"] == []
    status, created = await api.post("/v1/workflows", key=None, json=WORKFLOW,
                                     headers=cookie(token, body["csrf_token"]))
    assert status == 201, created
    status, _ = await api.delete(f"/v1/workflows/{created['id']}", key=None,
                                 headers=cookie(token, other["csrf_token"]))
    assert status == 403
    _, listed = await api.get("/v1/workflows")
    assert [w["id"] for w in listed["data"]] == [created["id"]]


async def test_a_viewer_session_reads_and_cannot_write(api: Api):
    viewer = await api.new_key("viewer")
    token, body, _ = await sign_in(api, viewer)
    assert body["role"] == "viewer"
    status, _ = await api.get("/v1/workflows", key=None, headers=cookie(token))
    assert status == 200
    status, error = await api.post("/v1/workflows", key=None, json=WORKFLOW,
                                   headers=cookie(token, body["csrf_token"]))
    assert status == 403 and error["error"]["code"] == "forbidden"
    status, _ = await api.get("/v1/keys", key=None, headers=cookie(token))
    assert status == 403


async def test_an_authorization_header_wins_over_the_cookie(api: Api):
    token, body, _ = await sign_in(api)
    status, _ = await api.get("/v1/me", key="flowd_unknown", headers=cookie(token))
    assert status == 401
    viewer = await api.new_key("viewer")
    status, _ = await api.post("/v1/workflows", key=viewer, json=WORKFLOW,
                               headers=cookie(token, body["csrf_token"]))
    assert status == 403


async def test_signing_out_ends_the_session_and_clears_the_cookie(api: Api):
    token, body, _ = await sign_in(api)
    status, _ = await api.delete("/v1/session", key=None, headers=cookie(token))
    assert status == 403
    async with api.client.delete("/v1/session", headers=cookie(token, body["csrf_token"])) as resp:
        assert resp.status == 204
        assert resp.headers["Set-Cookie"] == (
            "flowd_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict")
    for path in ("/v1/session", "/v1/me", "/v1/workflows"):
        status, _ = await api.get(path, key=None, headers=cookie(token))
        assert status == 401, path
    status, _ = await api.delete("/v1/session", key=None, headers=cookie(token, body["csrf_token"]))
    assert status == 401


async def test_an_expired_session_is_401(api: Api, clock: ShiftedClock):
    token, _, _ = await sign_in(api)
    clock.offset_ms = 12 * 3600 * 1000 - 1000
    status, _ = await api.get("/v1/session", key=None, headers=cookie(token))
    assert status == 200
    clock.offset_ms = 12 * 3600 * 1000
    status, body = await api.get("/v1/session", key=None, headers=cookie(token))
    assert status == 401 and "sign in again" in body["error"]["message"]
    status, _ = await api.get("/v1/workflows", key=None, headers=cookie(token))
    assert status == 401


async def test_expired_sessions_are_deleted_by_later_sign_ins(api: Api, clock: ShiftedClock):
    token, _, _ = await sign_in(api)
    clock.offset_ms = 13 * 3600 * 1000
    await sign_in(api)
    digest = hashlib.sha256(token.encode()).hexdigest()
    found = await _session_rows(api)
    assert digest not in found and len(found) == 1


async def _session_rows(api: Api) -> list[str]:
    from flowd.api.middleware import SERVICES
    path = api.app[SERVICES].config.storage.path
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT token_hash FROM sessions")]
    finally:
        conn.close()


async def test_revoking_the_key_ends_its_sessions_at_once(api: Api):
    status, created = await api.post("/v1/keys", json={"role": "editor"})
    assert status == 201
    token, _, _ = await sign_in(api, created["key"])
    status, _ = await api.get("/v1/workflows", key=None, headers=cookie(token))
    assert status == 200
    status, _ = await api.delete(f"/v1/keys/{created['id']}")
    assert status == 204
    status, _ = await api.get("/v1/workflows", key=None, headers=cookie(token))
    assert status == 401
    status, _ = await api.get("/v1/session", key=None, headers=cookie(token))
    assert status == 401


# A token of the right shape that no session has (fixed: xdist workers must collect the same
# parameters), and shapes no token has.
@pytest.mark.parametrize("forged", ["DtPK_kd99nwB66wUyNPiaCG87SL2xcQ4KGtOBEajeGM", "", "x" * 5000,
                                    "ä-ü"], ids=["well-formed", "empty", "huge", "non-ascii"])
async def test_a_forged_cookie_is_401(api: Api, forged: str):
    await sign_in(api)
    status, body = await api.get("/v1/workflows", key=None,
                                 headers={"Cookie": f'flowd_session="{forged}"'})
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_only_the_tokens_hash_is_stored(api: Api):
    token, body, _ = await sign_in(api)
    from flowd.api.middleware import SERVICES
    path = Path(api.app[SERVICES].config.storage.path)
    stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert token.encode() not in stored
    assert body["csrf_token"].encode() not in stored
    assert await _session_rows(api) == [hashlib.sha256(token.encode()).hexdigest()]


async def test_the_openapi_document_names_the_cookie_and_the_csrf_rule(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    scheme = doc["components"]["securitySchemes"]["sessionCookie"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "cookie", "flowd_session")
    assert "X-CSRF-Token" in scheme["description"]
    assert doc["paths"]["/v1/workflows"]["post"]["security"] == [{"bearer": []},
                                                                 {"sessionCookie": []}]
    assert doc["paths"]["/v1/session"]["post"]["security"] == []
    assert doc["paths"]["/v1/session"]["get"]["security"] == [{"sessionCookie": []}]
    for method in ("post", "get", "delete"):
        assert "X-CSRF-Token" in doc["paths"]["/v1/session"][method]["description"]
