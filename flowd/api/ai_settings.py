"""A project's own language model: `PUT /v1/settings/ai` stores its provider, base URL, model
and API key; `GET` shows what the project's AI calls use, the key masked; `DELETE` forgets it
(the server's `[ai]` applies again). Resolution rules: flowd.ai_settings."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from flowd.ai_settings import PROVIDERS, shown
from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.store.records import AiProjectSettings
from flowd.validation import Enum, Nullable, Object, String


def _check_url(value: str) -> str | None:
    try:
        parts = urlsplit(value)
    except ValueError:
        return "must be an http:// or https:// URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "must have no user, password, query or fragment"
    return None


AI_SETTINGS_BODY = Object({
    "provider": Enum(PROVIDERS, description="Default: the server's [ai] provider, else openai."),
    "base_url": String(max_len=2000, check=_check_url, check_code="invalid_url", description=(
        "Default: the server's [ai] base_url when the provider is the server's, else the "
        "provider's public URL. The server checks that it is an http(s) URL without "
        "credentials; it is called through the private-network guard ([http] "
        "allow_private_networks), like a webhook step's URL.")),
    "model": String(min_len=1, max_len=200, description=(
        "Default: the server's [ai] model when the provider is the server's.")),
    "api_key": String(min_len=1, max_len=1000, pattern="[!-~]+", pattern_message=(
        "must be printable ASCII without spaces"), description=(
        "Sent as `Authorization: Bearer`; never shown again by any answer, log line or "
        "trace.")),
}, required=("api_key",), read_only={"source": String()}).named("AiSettingsUpdate")
AI_SETTINGS = shape("AiSettings", {
    "provider": Nullable(Enum(PROVIDERS)),
    "base_url": Nullable(String()),
    "model": Nullable(String(description="Null: none configured (ai steps must name one).")),
    "api_key": Nullable(String(description=(
        "Masked: the project's key as its first 3 and last 4 characters (`sk-…wxyz`; `****` "
        "for a key shorter than 12); the server's as `****`; null when there is none."))),
    "source": Enum(("project", "server", "none"), description=(
        "project: the project's own settings (they win); server: the server's [ai]; none: "
        "no provider (ai steps take their unavailable path).")),
}, description="What the project's AI calls use.")


@route("GET", "/v1/settings/ai", access=Access.ADMIN, tag="settings", response=AI_SETTINGS,
       summary="The language model the project's ai steps and prompt composing use, the key "
               "masked.")
async def get_ai_settings(call: Call) -> web.Response:
    return json_response(await _shown(call))


@route("PUT", "/v1/settings/ai", access=Access.ADMIN, tag="settings", body=AI_SETTINGS_BODY,
       response=AI_SETTINGS,
       summary="Bring the project's own model and key (it wins over the server's [ai]).",
       description="Replaces what the project stored before (fields left out take their "
                   "defaults, not their old values). The answer shows the key masked.")
async def put_ai_settings(call: Call) -> web.Response:
    body = call.body
    settings = AiProjectSettings(call.project, body.get("provider", ""), body.get("base_url", ""),
                                 body.get("model", ""), body["api_key"],
                                 call.services.clock.now_ms())
    await call.services.store.write(lambda tx: tx.secrets.set_ai_settings(settings))
    return json_response(await _shown(call))


@route("DELETE", "/v1/settings/ai", access=Access.ADMIN, tag="settings", status=204,
       summary="Forget the project's own model and key (the server's [ai] applies again); "
               "204 also when there were none.")
async def delete_ai_settings(call: Call) -> web.Response:
    await call.services.store.write(lambda tx: tx.secrets.delete_ai_settings(call.project))
    return web.Response(status=204)


async def _shown(call: Call) -> dict[str, object]:
    own = await call.services.store.read(lambda tx: tx.secrets.ai_settings(call.project))
    return shown(call.services.config.ai, own)
