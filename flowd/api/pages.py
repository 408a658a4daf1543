"""The few HTML pages flowd shows people (unsubscribe, approvals, a form's "received"): one small
accessible layout, never cached or indexed, under a Content-Security-Policy that allows no
script and posts forms only back to this server."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import FORM

MULTIPART = "multipart/form-data"

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
dt{{font-weight:600}}dd{{margin:0 0 .5rem}}li{{margin:.25rem 0}}</style></head>
<body><main><h1>{title}</h1>{body}</main></body></html>
"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    """`title` and `body` are HTML: escape what goes into them."""
    return web.Response(text=PAGE.format(title=title, body=body), status=status,
                        content_type="text/html", headers=PAGE_HEADERS)


def _quality(accept: str, media: str) -> float:
    """How much `accept` wants `media`: the q of its most specific matching range."""
    best, specificity = 0.0, -1
    group = media.split("/")[0] + "/*"
    for item in accept.split(","):
        kind, *params = (piece.strip() for piece in item.split(";"))
        kind = kind.lower()
        rank = {media: 2, group: 1, "*/*": 0}.get(kind)
        if rank is None or rank <= specificity:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best, specificity = quality, rank
    return best


def wants_html(accept: str, content_type: str) -> bool:
    """A browser: it prefers text/html to JSON, or it posts a form and prefers neither (a
    form's Accept rarely names JSON; a script that wants JSON says so)."""
    html, json = _quality(accept, "text/html"), _quality(accept, "application/json")
    return html > json or (html == json and content_type in (FORM, MULTIPART))
