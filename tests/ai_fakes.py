"""Local fakes of Ollama (`POST /api/chat`) and an OpenAI-compatible server
(`POST /v1/chat/completions`): aiohttp apps for 127.0.0.1 that check what the real services
check (OpenAI's bearer key, Ollama's pulled models), answer in their real success and error
formats, and record every request body they get.

Each fake answers from its script, in order, then with `default` (an answer whose content is
"ok"). A script entry is one of:

    reply("text")                      # a successful answer with that content
    failure(429, headers={"Retry-After": "7"})   # the provider's real error body, that status
    HANG                               # never answers (until the test ends): a timeout
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

OPENAI_KEY = "sk-proj-T3stKeyF0rFlowdAbcdefghijklmnop7x9Q"
OLLAMA_MODEL = "llama3.2"


@dataclass
class Reply:
    content: str
    model: str | None = None


@dataclass
class Failure:
    status: int
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)


HANG = object()


def reply(content: Any, model: str | None = None) -> Reply:
    return Reply(content if isinstance(content, str) else json.dumps(content), model)


def failure(status: int, message: str = "", headers: dict[str, str] | None = None) -> Failure:
    return Failure(status, message, dict(headers or {}))


class _Fake:
    path = ""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []   # {"body", "headers"}
        self.script: list[Any] = []
        self.url = ""
        self._released = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.path, self.handle)
        return app

    def release(self) -> None:
        """Lets hanging handlers go (at the end of a test)."""
        self._released.set()

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        refused = self.refuse(request, body)
        if refused is not None:
            return refused
        step = self.script.pop(0) if self.script else reply("ok")
        if step is HANG:
            await self._released.wait()
            return web.json_response({})
        if isinstance(step, Failure):
            return self.error(step)
        return self.success(body, step)

    def refuse(self, request: web.Request, body: dict[str, Any]) -> web.Response | None:
        return None

    def error(self, step: Failure) -> web.Response:
        raise NotImplementedError

    def success(self, body: dict[str, Any], step: Reply) -> web.Response:
        raise NotImplementedError


class OllamaFake(_Fake):
    path = "/api/chat"

    def __init__(self, models: tuple[str, ...] = (OLLAMA_MODEL,)) -> None:
        super().__init__()
        self.models = models

    def refuse(self, request: web.Request, body: dict[str, Any]) -> web.Response | None:
        if body.get("model") not in self.models:
            return web.json_response(
                {"error": f"model \"{body.get('model')}\" not found, try pulling it first"},
                status=404)
        return None

    def error(self, step: Failure) -> web.Response:
        return web.json_response({"error": step.message or "something went wrong"},
                                 status=step.status, headers=step.headers)

    def success(self, body: dict[str, Any], step: Reply) -> web.Response:
        return web.json_response({
            "model": step.model or body["model"], "created_at": "2026-01-01T00:00:00.000Z",
            "message": {"role": "assistant", "content": step.content},
            "done_reason": "stop", "done": True, "total_duration": 5_000_000,
            "load_duration": 1_000_000, "prompt_eval_count": 26,
            "prompt_eval_duration": 1_000_000, "eval_count": 7, "eval_duration": 2_000_000})


class OpenAiFake(_Fake):
    path = "/v1/chat/completions"

    def __init__(self, key: str = OPENAI_KEY) -> None:
        super().__init__()
        self.key = key

    def refuse(self, request: web.Request, body: dict[str, Any]) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
            # What OpenAI answers: part of the refused key is in the message.
            shown = f"{sent[:8]}{'*' * max(0, len(sent) - 12)}{sent[-4:]}"
            return self._error(401, f"Incorrect API key provided: {shown}. You can find your "
                               "API key at https://platform.openai.com/account/api-keys.",
                               "invalid_request_error", "invalid_api_key")
        return None

    def error(self, step: Failure) -> web.Response:
        kind, code = {429: ("requests", "rate_limit_exceeded"),
                      404: ("invalid_request_error", "model_not_found"),
                      400: ("invalid_request_error", "context_length_exceeded")}.get(
                          step.status, ("server_error", None))
        return self._error(step.status, step.message or "The server had an error while "
                           "processing your request. Sorry about that!", kind, code,
                           step.headers)

    def _error(self, status: int, message: str, kind: str, code: str | None,
               headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response({"error": {"message": message, "type": kind, "param": None,
                                            "code": code}}, status=status, headers=headers)

    def success(self, body: dict[str, Any], step: Reply) -> web.Response:
        return web.json_response({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
            "created": 1_800_000_000, "model": step.model or f"{body['model']}-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": step.content,
                                                 "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
            "system_fingerprint": "fp_test"})


async def serve(aiohttp_server: Any, fake: _Fake) -> _Fake:
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    fake.url = str(server.make_url("")).rstrip("/")
    return fake
