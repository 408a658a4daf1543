"""The `Ai` effect of a server: each call asks the model of the call's project (its own
settings, else the server's `[ai]`: flowd.ai_settings) through the provider of
flowd.effects.ai_providers, with `[ai] timeout_seconds` on every call.

Two HTTP clients, both capped at MAX_ANSWER_BYTES: the operator's base URL is configuration
and is called as it is; a project's own base URL is an author's destination and goes through
the private-network guard (`[http] allow_private_networks`, `allowed_networks`), like a
webhook step's URL.

The project's settings are read from the store on each call: a call to a model takes far
longer than the read, and a key changed or deleted through the API applies to the next call.
"""

from __future__ import annotations

from typing import Sequence

from flowd.ai_settings import ResolvedAi, resolve
from flowd.clock import Clock
from flowd.config import AiConfig
from flowd.effects.ai_providers import AiProvider, OllamaProvider, OpenAiProvider
from flowd.effects.base import AI_UNAVAILABLE, AiAnswer, AiRequest, EffectFailed
from flowd.effects.http import HttpClient
from flowd.store import Store

MAX_ANSWER_BYTES = 1024 * 1024

NO_PROVIDER = ("no AI provider is configured: set [ai] provider in flowd.toml, or bring the "
               "project's own with PUT /v1/settings/ai")


class AiService:
    def __init__(self, store: Store, clock: Clock, config: AiConfig, *,
                 allow_private_networks: bool, allowed_networks: Sequence[str] = ()) -> None:
        self._store = store
        self._clock = clock
        self.config = config
        self._operators = HttpClient(allow_private_networks=True,
                                     max_body_bytes=MAX_ANSWER_BYTES)
        self._guarded = HttpClient(allow_private_networks=allow_private_networks,
                                   allowed_networks=allowed_networks,
                                   max_body_bytes=MAX_ANSWER_BYTES)

    async def start(self) -> None:
        await self._operators.start()
        await self._guarded.start()

    async def close(self) -> None:
        await self._operators.close()
        await self._guarded.close()

    async def resolved(self, project_id: str) -> ResolvedAi | None:
        own = await self._store.read(lambda tx: tx.secrets.ai_settings(project_id))
        return resolve(self.config, own)

    async def complete(self, project_id: str, request: AiRequest) -> AiAnswer:
        resolved = await self.resolved(project_id)
        if resolved is None:
            raise EffectFailed(AI_UNAVAILABLE, NO_PROVIDER, retryable=False)
        model = request.model or resolved.model
        if not model:
            raise EffectFailed(AI_UNAVAILABLE, f"no model is configured for {resolved.provider}: "
                               "set [ai] model, the project's model (PUT /v1/settings/ai) or "
                               "the step's `model`", retryable=False)
        return await self._provider(resolved).chat(request, model)

    def _provider(self, resolved: ResolvedAi) -> AiProvider:
        http = self._guarded if resolved.guarded else self._operators
        kind = OllamaProvider if resolved.provider == "ollama" else OpenAiProvider
        return kind(http, resolved.base_url, api_key=resolved.api_key,
                    timeout=self.config.timeout_seconds, now_ms=self._clock.now_ms)
