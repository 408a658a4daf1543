"""Project settings: the webhook signing secret."""

from __future__ import annotations

from aiohttp import web

from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.effects.signing import new_secret
from flowd.validation import String

ROTATION_GRACE_MS = 24 * 3600 * 1000
SECRET = shape("WebhookSecret", {"secret": String(
    pattern=r"whsec_[A-Za-z0-9+/]{43}=", description="whsec_<base64 of 32 random bytes>")})


@route("GET", "/v1/settings/webhook-secret", access=Access.ADMIN, tag="settings",
       summary="The secret webhook deliveries are signed with (Standard Webhooks).",
       response=SECRET)
async def get_webhook_secret(call: Call) -> web.Response:
    now = call.services.clock.now_ms()
    secret = await call.services.store.write(
        lambda tx: tx.secrets.current(call.project, now, new_secret))
    return json_response({"secret": secret})


@route("POST", "/v1/settings/webhook-secret/rotate", access=Access.ADMIN, tag="settings",
       summary="Make a new secret; the old one also signs deliveries for 24 hours.",
       response=SECRET)
async def rotate_webhook_secret(call: Call) -> web.Response:
    now = call.services.clock.now_ms()
    secret = await call.services.store.write(
        lambda tx: tx.secrets.rotate(call.project, now, ROTATION_GRACE_MS, new_secret))
    call.services.signer.forget(call.project)
    return json_response({"secret": secret})
