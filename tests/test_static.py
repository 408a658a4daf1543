"""The builder page's files: only what is inside static/, with the right types and the page's
security headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowd.api import meta
from tests.conftest import Api
from tests.raw_http import exchange, request_head

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


@pytest.fixture
def static(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "site" / "static"
    (root / "img").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>flowd</title>")
    (root / "app.js").write_text("export const x = 1;\n")
    (root / "app.css").write_text("body { margin: 0 }\n")
    (root / "img" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "img" / "dot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "data.json").write_text("{}")
    (root / ".env").write_text("SECRET=1")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("secret")
    (tmp_path / "site" / "outside.txt").write_text("outside")
    (root / "escape.js").symlink_to(tmp_path / "site" / "outside.txt")
    (root / "inside.js").symlink_to(root / "app.js")
    monkeypatch.setattr(meta, "STATIC_DIR", root)
    return root


def port(api: Api) -> int:
    return api.client.server.port


async def raw_get(api: Api, path: str):
    return await exchange(port(api), request_head("GET", path, "Connection: close"))


def assert_page_headers(headers) -> None:
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("path,content_type", [
    ("/static/app.js", "text/javascript"), ("/static/app.css", "text/css"),
    ("/static/img/logo.svg", "image/svg+xml"), ("/static/img/dot.png", "image/png"),
    ("/static/index.html", "text/html"), ("/static/data.json", "application/json"),
    ("/static/inside.js", "text/javascript"),
])
async def test_files_are_served_with_their_type_and_the_page_headers(api: Api, static: Path,
                                                                     path: str,
                                                                     content_type: str):
    async with api.client.get(path) as resp:
        assert resp.status == 200
        assert resp.content_type == content_type
        assert_page_headers(resp.headers)
        assert "ETag" in resp.headers and "Last-Modified" in resp.headers
        etag = resp.headers["ETag"]
        assert await resp.read() == (static / path.removeprefix("/static/")).read_bytes()
    async with api.client.get(path, headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304


async def test_the_page_at_the_root_has_the_security_headers(api: Api, static: Path):
    async with api.client.get("/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        assert_page_headers(resp.headers)


async def test_the_shipped_page_has_the_security_headers(api: Api):
    async with api.client.get("/") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Security-Policy"] == CSP


@pytest.mark.parametrize("path", [
    "/static/../flowd.toml", "/static/%2e%2e/flowd.toml", "/static/%2E%2E/%2E%2E/flowd.toml",
    "/static/img/../../outside.txt", "/static/..%2foutside.txt", "/static/..%2Foutside.txt",
    "/static/%2e%2e%2foutside.txt", "/static/img%2f..%2f..%2foutside.txt",
    "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/..\\outside.txt",
    "/static/..%5coutside.txt", "/static/.env", "/static/.git/config", "/static/escape.js",
    "/static/nope.js", "/static/img", "/static/img/", "/static/app.js%00.png",
    "/static/./app.js",
])
async def test_nothing_outside_the_folder_nor_hidden_is_served(api: Api, static: Path,
                                                                path: str):
    response = await raw_get(api, path)
    assert response.status in (400, 404), (path, response.status)
    assert b"outside" not in response.body and b"SECRET" not in response.body
    assert b"root:" not in response.body and b"[server]" not in response.body
    if response.status == 404 and response.headers.get("content-type", "").startswith(
            "application/json"):
        assert response.json()["error"]["code"] == "not_found"


async def test_traversal_through_the_client_library_finds_nothing(api: Api, static: Path):
    for path in ("/static/../flowd.toml", "/static/%2e%2e/outside.txt"):
        async with api.client.get(path) as resp:
            assert resp.status == 404
            assert "outside" not in await resp.text()


def test_static_file_refuses_what_leaves_the_folder(static: Path):
    assert meta.static_file("app.js") == static / "app.js"
    for bad in ("../outside.txt", "/etc/passwd", "img/../../outside.txt", ".env", "escape.js",
                "a\x00b", "img\\..\\app.js", "", "img//dot.png"):
        assert meta.static_file(bad) is None, bad
