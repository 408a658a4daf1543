"""API keys of the caller's project (admin only)."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, json_response, page_response, route
from flowd.auth import Access, generate_key, hash_key, key_prefix
from flowd.errors import Conflict, NotFound
from flowd.schema import Enum, Object, String
from flowd.store import keys as key_store
from flowd.store.records import Role

KEY_SCHEMA = {"type": "object", "title": "ApiKey", "properties": {
    "id": {"type": "string"}, "project": {"type": "string"},
    "role": {"type": "string", "enum": [r.value for r in Role]}, "name": {"type": "string"},
    "prefix": {"type": "string", "description": "The key's first characters."},
    "created_at": {"type": "string", "format": "date-time"},
    "key": {"type": "string", "description": "Only in the response to POST: shown once."}}}

NEW_KEY = Object({"role": Enum(tuple(r.value for r in Role)), "name": String(max_len=100)},
                 required=("role",), read_only=("id", "created_at", "project", "prefix"),
                 title="NewKey")


@route("GET", "/v1/keys", access=Access.ADMIN, tag="keys", paginated=True,
       summary="List the project's active API keys.", response=KEY_SCHEMA)
async def list_keys(call: Call) -> web.Response:
    page = await call.services.db.read(key_store.list_keys, project_id=call.project,
                                       before=call.before, limit=call.limit)
    return page_response(page)


@route("POST", "/v1/keys", access=Access.ADMIN, tag="keys", body=NEW_KEY, status=201,
       summary="Create an API key; the key itself is in this response only.", response=KEY_SCHEMA)
async def create_key(call: Call) -> web.Response:
    secret = generate_key()
    key = await call.services.db.write(
        key_store.create_key, project_id=call.project, role=Role(call.body["role"]),
        name=call.body.get("name", ""), key_hash=hash_key(secret), prefix=key_prefix(secret),
        now=call.services.clock.now_ms())
    return json_response({**key.to_json(), "key": secret}, status=201)


@route("DELETE", "/v1/keys/{id}", access=Access.ADMIN, tag="keys", status=204, errors=(404, 409),
       summary="Revoke an API key at once.")
async def revoke_key(call: Call) -> web.Response:
    try:
        revoked = await call.services.db.write(key_store.revoke_key, key_id=call.path("id"),
                                               project_id=call.project,
                                               now=call.services.clock.now_ms())
    except key_store.LastAdminKey as exc:
        raise Conflict(str(exc)) from None
    if not revoked:
        raise NotFound("no such key")
    call.services.auth.forget(call.path("id"))
    return web.Response(status=204)
