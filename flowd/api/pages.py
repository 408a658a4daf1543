"""The few HTML pages flowd shows people who follow a link (unsubscribe, approvals): one small
accessible layout, never cached or indexed, under a Content-Security-Policy that allows no
script and posts forms only back to this server."""

from __future__ import annotations

from aiohttp import web

PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
           "X-Robots-Tag": "noindex"}
PAGE_HEADERS = {**PRIVATE, "Content-Security-Policy":
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;
color:#222}}button{{font:inherit;padding:.5rem 1.25rem;border:0;border-radius:.375rem;
background:#2d5bd7;color:#fff;cursor:pointer;margin-right:.5rem}}
button.secondary{{background:#6b6b6b}}textarea{{width:100%;font:inherit}}
dt{{font-weight:600}}dd{{margin:0 0 .5rem}}</style></head>
<body><main><h1>{title}</h1>{body}</main></body></html>
"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    """`title` and `body` are HTML: escape what goes into them."""
    return web.Response(text=PAGE.format(title=title, body=body), status=status,
                        content_type="text/html", headers=PAGE_HEADERS)


def wants_html(request: web.Request) -> bool:
    """A browser: it asks for HTML (every browser's navigation and form post does). Anything
    else — curl, an API client, `Accept: */*` — gets JSON."""
    return "text/html" in request.headers.get("Accept", "")
