"""Which language model a project's AI calls go to: its own settings (PUT /v1/settings/ai)
when it stored any, else the server's `[ai]`, else none — and how they are shown (the key
never; a masked hint of it).

A project's settings win as a whole: its key is the only key its calls carry. Its fields left
empty fall back as follows — `provider`: the server's, else `openai`; `base_url`: the server's
(the operator's URL, called without the private-network guard) when the provider is the
server's, else the provider's public default; `model`: the server's when the provider is the
server's. A `base_url` the project gave (or the default of a provider the operator did not
configure) is an author's destination and goes through the private-network guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowd.config import AiConfig
from flowd.store.records import AiProjectSettings

PROVIDERS = ("ollama", "openai")
DEFAULT_URLS = {"openai": "https://api.openai.com", "ollama": "http://127.0.0.1:11434"}
SHOWN_KEY_CHARS = 12   # shorter keys are shown as **** only


@dataclass(frozen=True)
class ResolvedAi:
    """Where a project's calls go. `guarded`: through the private-network guard."""

    provider: str
    base_url: str
    model: str
    source: str                         # "project" | "server"
    guarded: bool
    api_key: str = field(default="", repr=False)


def resolve(server: AiConfig, project: AiProjectSettings | None) -> ResolvedAi | None:
    """None when neither the project nor the server has a provider."""
    if project is not None:
        provider = project.provider or server.provider or "openai"
        operators = provider == server.provider
        if project.base_url:
            base_url, guarded = project.base_url, True
        elif operators:
            base_url, guarded = server.base_url or DEFAULT_URLS[provider], False
        else:
            base_url, guarded = DEFAULT_URLS[provider], True
        model = project.model or (server.model if operators else "")
        return ResolvedAi(provider, base_url, model, "project", guarded, project.api_key)
    if not server.provider:
        return None
    return ResolvedAi(server.provider, server.base_url or DEFAULT_URLS[server.provider],
                      server.model, "server", False, server.api_key)


def mask(key: str) -> str | None:
    """`sk-…wxyz` (its first 3 and last 4 characters) for a key of 12 characters or more,
    `****` for a shorter one, None for none."""
    if not key:
        return None
    if len(key) < SHOWN_KEY_CHARS:
        return "****"
    return f"{key[:3]}…{key[-4:]}"


def shown(server: AiConfig, project: AiProjectSettings | None) -> dict[str, Any]:
    """GET /v1/settings/ai: what the project's calls use. The server's own key is never even
    hinted at to a project (`****` when it has one)."""
    resolved = resolve(server, project)
    if resolved is None:
        return {"provider": None, "base_url": None, "model": None, "api_key": None,
                "source": "none"}
    key = mask(resolved.api_key) if resolved.source == "project" else (
        "****" if resolved.api_key else None)
    return {"provider": resolved.provider, "base_url": resolved.base_url,
            "model": resolved.model or None, "api_key": key, "source": resolved.source}
