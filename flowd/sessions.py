"""Browser sessions for the builder page: signing in with an API key, the cookie that then
stands for that key, and the CSRF token a cookie-authenticated change must carry.

The cookie holds a 256-bit random token, never the key; the database keeps only its SHA-256.
A session has its key's project and role, and ends when it expires, when it is deleted, or
when its key is revoked (the lookup joins the key, and nothing is cached, so each of these
takes effect on the next request).

The CSRF token is HMAC-SHA256 of the session's token under the server key `sessions`: the same
for the whole session, so nothing more is stored, and nobody without the cookie's token (which
page scripts of other sites never see) can compute it. Browsers attach cookies to cross-site
requests (SameSite=Strict aside); they never attach this header, so a cookie-authenticated
request that changes something must carry it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web

from flowd.auth import Authenticator, Principal, hash_key
from flowd.clock import Clock
from flowd.errors import Forbidden, Unauthorized
from flowd.store import Store
from flowd.store.records import Session
from flowd.throttle import FailureThrottle
from flowd.timeutil import format_ms

SESSION_COOKIE = "flowd_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
# Expired rows deleted by each sign-in: the table stays about as big as its live sessions
# without a background task, and no sign-in pays for a large backlog at once.
EXPIRED_PER_SIGN_IN = 50
# Far longer than any token this server hands out: longer cookies are not looked up at all.
MAX_TOKEN_LENGTH = 100
LIVE_SESSION: web.RequestKey["LiveSession"] = web.RequestKey("session", object)


@dataclass(frozen=True)
class LiveSession:
    principal: Principal
    token_hash: str
    expires_at: int
    csrf_token: str

    def to_json(self) -> dict[str, str]:
        return {"project": self.principal.project, "role": self.principal.role.value,
                "expires_at": format_ms(self.expires_at) or "", "csrf_token": self.csrf_token}


class SessionDesk:
    def __init__(self, store: Store, clock: Clock, auth: Authenticator, ttl_ms: int,
                 throttle: FailureThrottle | None = None) -> None:
        self._store = store
        self._clock = clock
        self._auth = auth
        self.ttl_ms = ttl_ms
        self._key = b""
        # Too many bad keys from one client: it is guessing (429).
        self.throttle = throttle or FailureThrottle(
            clock, limit=20, window_ms=60_000,
            message="too many unknown API keys from this client; try again later")

    async def start(self) -> None:
        now = self._clock.now_ms()
        self._key = await self._store.write(lambda tx: tx.secrets.server_key(
            "sessions", now, lambda: secrets.token_bytes(32)))

    def csrf_token(self, token: str) -> str:
        assert self._key, "SessionDesk.start() loads the key"
        mac = hmac.new(self._key, token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    async def sign_in(self, api_key: str, client: str) -> tuple[str, LiveSession]:
        """A new session for a valid key: (the cookie's token, the session)."""
        self.throttle.check(client)
        try:
            principal = await self._auth.authenticate_key(api_key)
        except Unauthorized:
            self.throttle.failed(client)
            raise
        token = secrets.token_urlsafe(32)
        now = self._clock.now_ms()
        session = Session(hash_key(token), principal.key_id, principal.project, principal.role,
                          created_at=now, expires_at=now + self.ttl_ms)

        def unit(tx) -> None:  # type: ignore[no-untyped-def]
            tx.sessions.delete_expired(now, EXPIRED_PER_SIGN_IN)
            tx.sessions.create(session)

        await self._store.write(unit)
        return token, LiveSession(principal, session.token_hash, session.expires_at,
                                  self.csrf_token(token))

    async def authenticate(self, request: web.Request) -> LiveSession:
        """The live session of the request's cookie (401 without one); a request that may
        change something must also carry its CSRF token (403). Kept in the request for the
        handler."""
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            raise Unauthorized("no session: sign in with POST /v1/session, or send "
                               "'Authorization: Bearer <key>'")
        live = await self._find(token)
        if live is None:
            raise Unauthorized("the session has ended (expired, signed out, or its API key "
                               "was revoked): sign in again with POST /v1/session")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode("utf-8", "surrogatepass"),
                                       live.csrf_token.encode()):
                raise Forbidden(f"a request authenticated by the session cookie must carry the "
                                f"header {CSRF_HEADER} with the csrf_token of GET /v1/session "
                                f"(on every method but GET and HEAD)")
        request[LIVE_SESSION] = live
        return live

    async def _find(self, token: str) -> LiveSession | None:
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        digest = hash_key(token)
        now = self._clock.now_ms()
        # The primary key is the full hash: a token that is not the session's finds nothing,
        # so there is no partial match whose timing could say anything.
        session = await self._store.read(lambda tx: tx.sessions.find(digest, now))
        if session is None:
            return None
        return LiveSession(Principal(session.key_id, session.project_id, session.role),
                           session.token_hash, session.expires_at, self.csrf_token(token))

    async def end(self, live: LiveSession) -> None:
        await self._store.write(lambda tx: tx.sessions.delete(live.token_hash))
