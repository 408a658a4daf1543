"""API keys of the caller's project (admin only)."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, json_response, page_response, route, shape
from flowd.auth import Access, generate_key, hash_key, key_prefix
from flowd.errors import Conflict, NotFound
from flowd.store import LastAdminKey
from flowd.store.records import Role
from flowd.validation import Enum, Object, String, text, time_string

ROLES = tuple(r.value for r in Role)
_KEY_FIELDS = {
    "id": String(), "project": String(), "role": Enum(ROLES), "name": String(),
    "prefix": String(description="The key's first characters, to recognise it."),
    "created_at": time_string(),
}
KEY = shape("ApiKey", _KEY_FIELDS)
CREATED_KEY = shape("CreatedApiKey", {**_KEY_FIELDS, "key": String(
    description="The key itself: shown in this response only, never again.")})
NEW_KEY = Object({"role": Enum(ROLES), "name": text(0, 100, description="A label.")},
                 required=("role",),
                 read_only={k: v for k, v in _KEY_FIELDS.items() if k not in ("role", "name")}
                 ).named("NewApiKey")


@route("GET", "/v1/keys", access=Access.ADMIN, tag="keys", paginated=True,
       summary="List the project's active API keys.", response=KEY)
async def list_keys(call: Call) -> web.Response:
    page = await call.services.store.list_keys(call.project, before=call.before,
                                               limit=call.limit)
    return page_response(page)


@route("POST", "/v1/keys", access=Access.ADMIN, tag="keys", body=NEW_KEY, status=201,
       summary="Create an API key; the key itself is in this response only.",
       links_to="/v1/keys/{id}",
       response=CREATED_KEY)
async def create_key(call: Call) -> web.Response:
    secret = generate_key()
    now = call.services.clock.now_ms()
    key = await call.services.store.write(lambda tx: tx.keys.create(
        project_id=call.project, role=Role(call.body["role"]), name=call.body.get("name", ""),
        key_hash=hash_key(secret), prefix=key_prefix(secret), now=now))
    return json_response({**key.to_json(), "key": secret}, status=201)


@route("DELETE", "/v1/keys/{id}", access=Access.ADMIN, tag="keys", status=204, errors=(404, 409),
       summary="Revoke an API key at once.")
async def revoke_key(call: Call) -> web.Response:
    now = call.services.clock.now_ms()
    try:
        revoked = await call.services.store.write(lambda tx: tx.keys.revoke(
            key_id=call.path("id"), project_id=call.project, now=now))
    except LastAdminKey as exc:
        raise Conflict(str(exc)) from None
    if not revoked:
        raise NotFound("no such key")
    call.services.auth.forget(call.path("id"))
    return web.Response(status=204)
