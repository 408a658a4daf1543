"""The builder page's sign-in: an API key in, a session cookie out (never the key itself)."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.errors import BadRequest
from flowd.sessions import CSRF_HEADER, LIVE_SESSION, SESSION_COOKIE, LiveSession
from flowd.store.records import Role
from flowd.validation import Enum, Object, String, time_string

_CSRF_RULE = (f"A request authenticated by the `{SESSION_COOKIE}` cookie (one without an "
              f"`Authorization` header) must carry the header `{CSRF_HEADER}` with this "
              "session's `csrf_token` on every method but GET and HEAD, else 403 `forbidden`.")
SESSION = shape("Session", {
    "project": String(), "role": Enum(tuple(r.value for r in Role)),
    "expires_at": time_string(),
    "csrf_token": String(description=f"Send as the `{CSRF_HEADER}` header with every "
                                     "cookie-authenticated request but GET and HEAD; the same "
                                     "for the whole session."),
}, description="A browser session: its key's project and role, until it expires.")
SIGN_IN = Object({"key": String(min_len=1, max_len=500, description="An API key.")},
                 required=("key",)).named("SessionSignIn")
_COOKIE_ATTRIBUTES = "HttpOnly; SameSite=Strict; Path=/"


def _client(call: Call) -> str:
    # The peer address: behind a reverse proxy every client shares the proxy's.
    return call.request.remote or "unknown"


@route("POST", "/v1/session", access=Access.PUBLIC, tag="keys", body=SIGN_IN, status=201,
       errors=(401, 429), response=SESSION,
       summary="Sign a browser in with an API key: a session cookie with the key's project "
               "and role.",
       description=("The response sets the cookie `" + SESSION_COOKIE + "` (HttpOnly, "
                    "SameSite=Strict, Path=/, Secure when `[server] public_url` is https, "
                    "Max-Age `[server] session_ttl`). It holds a random token, never the key; "
                    "requests without an `Authorization` header are then authenticated by it, "
                    "with the key's role. " + _CSRF_RULE + " Revoking the key ends its "
                    "sessions at once. A bad key is a 401; after 20 in a minute from one client, "
                    "429 with Retry-After. The body must be `application/json`."),
       response_headers={"Set-Cookie": f"`{SESSION_COOKIE}=<token>; {_COOKIE_ATTRIBUTES}; "
                                       "Max-Age=<seconds>` (and `Secure` behind https)."})
async def create_session(call: Call) -> web.Response:
    # An HTML form cannot send application/json: no other site can sign a browser in with a
    # key of its choosing (login CSRF) through a form posted as text/plain.
    if call.request.content_type != "application/json":
        raise BadRequest("send the key as a JSON body with Content-Type: application/json")
    sessions = call.services.sessions
    token, live = await sessions.sign_in(call.body["key"], _client(call))
    response = json_response(live.to_json(), status=201)
    max_age = max(1, sessions.ttl_ms // 1000)
    secure = "; Secure" if call.services.public_url().startswith("https://") else ""
    response.headers["Set-Cookie"] = (f"{SESSION_COOKIE}={token}; {_COOKIE_ATTRIBUTES}; "
                                      f"Max-Age={max_age}{secure}")
    return response


def _live(call: Call) -> LiveSession:
    return call.request[LIVE_SESSION]


@route("GET", "/v1/session", access=Access.SESSION, tag="keys", response=SESSION,
       summary="The session of this browser's cookie: project, role, expiry and CSRF token.",
       description="Authenticated by the session cookie only; 401 without a live one. "
                   + _CSRF_RULE)
async def get_session(call: Call) -> web.Response:
    return json_response(_live(call).to_json())


@route("DELETE", "/v1/session", access=Access.SESSION, tag="keys", status=204,
       summary="Sign out: the session ends and its cookie is cleared.",
       description="Authenticated by the session cookie only, with its `" + CSRF_HEADER
                   + "` header (403 without it); 401 without a live session.",
       response_headers={"Set-Cookie": f"`{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; "
                                       "SameSite=Strict`: the browser drops the cookie."})
async def delete_session(call: Call) -> web.Response:
    await call.services.sessions.end(_live(call))
    response = web.Response(status=204)
    response.headers["Set-Cookie"] = (f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; "
                                      "SameSite=Strict")
    return response
