"""The server itself: health, the API description, the page at `/`, and who-am-I."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from flowd.api.routes import Call, Param, json_response, route, shape
from flowd.auth import Access
from flowd.errors import NotFound
from flowd.store.records import Role
from flowd.validation import Enum, Json, String

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
# The builder page loads only its own files and talks only to this server: no inline script or
# style, no other origin, no framing (clickjacking), no form posted elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                # Revalidated on every use (cheap: ETag / Last-Modified), so an upgrade shows.
                "Cache-Control": "no-cache"}
_TEXT = "; charset=utf-8"
CONTENT_TYPES = {
    ".html": "text/html" + _TEXT, ".js": "text/javascript" + _TEXT, ".mjs": "text/javascript" + _TEXT,
    ".css": "text/css" + _TEXT, ".json": "application/json", ".map": "application/json",
    ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
    ".woff2": "font/woff2", ".txt": "text/plain" + _TEXT,
}
_DOCUMENTED_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache (revalidate with ETag / Last-Modified)."}


@route("GET", "/healthz", access=Access.PUBLIC, tag="operations",
       summary="Liveness: the server is up and its database is open.",
       response=shape("Health", {"status": Enum(("ok",))}))
async def healthz(call: Call) -> web.Response:
    return json_response({"status": "ok"})


@route("GET", "/v1/openapi.json", access=Access.PUBLIC, tag="operations",
       summary="This OpenAPI 3.1 document.", response=Json(object_only=True))
async def openapi(call: Call) -> web.Response:
    return json_response(call.services.openapi)


def _file_response(path: Path) -> web.FileResponse:
    content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": content_type})


@route("GET", "/", access=Access.PUBLIC, tag="operations", content_type="text/html",
       summary="The builder page.", response=String(), errors=(404,),
       response_headers=_DOCUMENTED_HEADERS)
async def index(call: Call) -> web.StreamResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise NotFound("the static/ folder is not installed beside this flowd")
    return _file_response(page)


def static_file(relative: str) -> Path | None:
    """The file `relative` names inside the static folder, or None: never a path that leaves
    it (`..`, an absolute path, a symlink pointing out), nor a hidden file or folder."""
    root = STATIC_DIR.resolve()
    parts = relative.split("/")
    if "\\" in relative or "\0" in relative or any(
            not part or part.startswith(".") for part in parts):
        return None
    try:
        found = root.joinpath(*parts).resolve()
    except (OSError, RuntimeError, ValueError):   # a symlink loop, an unusable name
        return None
    if not found.is_relative_to(root) or not found.is_file():
        return None
    return found


@route("GET", "/static/{path:.+}", access=Access.PUBLIC, tag="operations",
       # Documented as bytes: the real type follows the file's extension (text/javascript,
       # text/css, image/svg+xml, …), and `*/*` is no media type a client generator can use.
       content_type="application/octet-stream",
       path_params=(Param("path", String(min_len=1, description=(
           "A file of the builder page, e.g. js/app.js."))),),
       summary="The builder page's files (scripts, styles, images).",
       description="Only files inside the server's static folder: a path with `..`, a hidden "
                   "name (starting with `.`) or a link leading outside is a 404, as is a file "
                   "that does not exist. The Content-Type follows the file's extension.",
       errors=(404,), response=String(), response_headers=_DOCUMENTED_HEADERS)
async def static(call: Call) -> web.StreamResponse:
    found = static_file(call.path("path"))
    if found is None:
        raise NotFound("no such file")
    return _file_response(found)


@route("GET", "/v1/me", access=Access.ANY, tag="keys",
       summary="The calling key's project and role.",
       response=shape("Me", {"project": String(), "role": Enum(tuple(r.value for r in Role))}))
async def me(call: Call) -> web.Response:
    assert call.principal is not None
    return json_response({"project": call.principal.project, "role": call.principal.role.value})
