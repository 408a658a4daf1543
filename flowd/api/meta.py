"""The server itself: health, the API description, the page at `/`, and who-am-I."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.errors import NotFound
from flowd.store.records import Role
from flowd.validation import Enum, Json, String

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"


@route("GET", "/healthz", access=Access.PUBLIC, tag="operations",
       summary="Liveness: the server is up and its database is open.",
       response=shape("Health", {"status": Enum(("ok",))}))
async def healthz(call: Call) -> web.Response:
    return json_response({"status": "ok"})


@route("GET", "/v1/openapi.json", access=Access.PUBLIC, tag="operations",
       summary="This OpenAPI 3.1 document.", response=Json(object_only=True))
async def openapi(call: Call) -> web.Response:
    return json_response(call.services.openapi)


@route("GET", "/", access=Access.PUBLIC, tag="operations", content_type="text/html",
       summary="The builder page.", response=String())
async def index(call: Call) -> web.StreamResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise NotFound("the static/ folder is not installed beside this flowd")
    return web.FileResponse(page, headers={"Cache-Control": "no-cache"})


@route("GET", "/v1/me", access=Access.ANY, tag="keys",
       summary="The calling key's project and role.",
       response=shape("Me", {"project": String(), "role": Enum(tuple(r.value for r in Role))}))
async def me(call: Call) -> web.Response:
    assert call.principal is not None
    return json_response({"project": call.principal.project, "role": call.principal.role.value})
