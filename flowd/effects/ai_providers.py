"""Language model providers: one chat completion per call, on each provider's real wire format.

    provider = OpenAiProvider(http, "https://api.openai.com", api_key="sk-…", timeout=60,
                              now_ms=clock.now_ms)
    answer = await provider.chat(AiRequest(messages=({"role": "user", "content": "Hi"},)),
                                 model="gpt-4o-mini")
    answer.content, answer.model, answer.usage

- **ollama**: `POST {base_url}/api/chat` `{"model", "messages", "stream": false, "format"?,
  "options"?: {"temperature"}}`, where `format` is `"json"` for any JSON object or the JSON
  Schema the answer must follow; the answer is `{"model", "message": {"role", "content"},
  "done", "prompt_eval_count", "eval_count"}`; an error is `{"error": "<text>"}` (404 for a
  model that was never pulled). A key, when set, goes as `Authorization: Bearer` (a proxy in
  front of Ollama).
- **openai** (any OpenAI-compatible server): `POST {base_url}/v1/chat/completions` (a base URL
  that already ends in `/v1` is not given a second one) with `Authorization: Bearer <key>`,
  `{"model", "messages", "response_format"?: {"type": "json_object"}, "temperature"?}`; the
  answer is `{"model", "choices": [{"message": {"role", "content"}}], "usage":
  {"prompt_tokens", "completion_tokens", "total_tokens"}}`; an error is `{"error": {"message",
  "type", "code"}}`.

What an answer other than 2xx becomes (an `EffectFailed`, whatever the provider):

| answer                                      | code                 | retried            |
|---------------------------------------------|----------------------|--------------------|
| 401, 403                                    | `ai_unauthorized`    | no                 |
| 404 naming a model (not pulled, no access)  | `ai_model_not_found` | no                 |
| 429                                         | `ai_rate_limited`    | yes, after Retry-After |
| 5xx, 408, a timeout, no connection          | `ai_provider_error`  | yes (503: ditto)   |
| other 4xx (a wrong base URL's 404, a prompt too long) | `ai_bad_request` | no     |
| 2xx without an answer in it                 | `ai_provider_error`  | yes                |

A refused destination (a project's own base URL through the private-network guard) stays
`destination_not_allowed`, not retried. The provider's own message is kept in ours (it says
what went wrong) with anything that looks like the API key taken out: OpenAI's 401 names part
of the key it refused.
"""

from __future__ import annotations

import email.utils
import json
import re
from typing import Any, Callable, Protocol

from flowd.effects.base import AiAnswer, AiRequest, EffectFailed, Http, HttpResponse

__all__ = ["AiProvider", "OllamaProvider", "OpenAiProvider", "redact", "retry_after_ms"]

MAX_RETRY_AFTER_MS = 86_400_000   # a provider asking for more than a day is not waited for
_MESSAGE_CHARS = 300              # of a provider's error text kept in ours
_KEY_RUN = 4                      # the shortest run of a key's characters taken out of text
_KEYISH = re.compile(r"[A-Za-z0-9_-]+")


class AiProvider(Protocol):
    name: str

    async def chat(self, request: AiRequest, model: str) -> AiAnswer: ...


def redact(text: str, key: str) -> str:
    """`text` without the key: the key itself, and every word holding a run of four or more of
    its characters (what a provider shows of a key it refused: "sk-proj-*****wxyz")."""
    if len(key) < _KEY_RUN:
        return text   # too short to find without taking out ordinary words
    text = text.replace(key, "[redacted]")
    return " ".join("[redacted]" if _holds_part_of(word, key) else word
                    for word in text.split(" "))


def _holds_part_of(word: str, key: str) -> bool:
    return any(len(run) >= _KEY_RUN and run in key for run in _KEYISH.findall(word))


def retry_after_ms(headers: dict[str, str], now_ms: int) -> int | None:
    """How long the provider asked us to wait: `retry-after-ms` (Azure's), else `Retry-After`
    in seconds or as an HTTP date. None when it did not say (or said nonsense)."""
    raw_ms = headers.get("retry-after-ms", "").strip()
    if raw_ms:
        try:
            return _bounded(int(float(raw_ms)))
        except ValueError:
            pass
    raw = headers.get("retry-after", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return _bounded(int(raw) * 1000)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return _bounded(int(when.timestamp() * 1000) - now_ms)


def _bounded(ms: int) -> int:
    return max(0, min(ms, MAX_RETRY_AFTER_MS))


class _ChatProvider:
    """What both providers share: the call, its timeout, and turning failures into codes."""

    name = ""
    path = ""

    def __init__(self, http: Http, base_url: str, *, api_key: str = "", timeout: float,
                 now_ms: Callable[[], int]) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        self.url = _endpoint(base_url, self.path)
        self._http = http
        self._key = api_key
        self._timeout = timeout
        self._now_ms = now_ms

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    async def _post(self, body: dict[str, Any]) -> HttpResponse:
        payload = json.dumps(body, ensure_ascii=False).encode()
        try:
            response = await self._http.request("POST", self.url, headers=self._headers(),
                                                body=payload, timeout=self._timeout)
        except EffectFailed as exc:
            if exc.code == "destination_not_allowed":
                raise EffectFailed(exc.code, self._clean(exc.message), retryable=False) from None
            # A timeout or a refused connection may work next time; a URL that cannot be
            # called will not.
            retryable = exc.code in ("timeout", "connection_failed")
            raise EffectFailed("ai_provider_error", f"{self.name}: {self._clean(exc.message)}",
                               retryable=retryable) from None
        if response.truncated:
            raise EffectFailed("ai_provider_error", f"{self.name} answered more than this "
                               "server reads of an answer", retryable=False)
        if not response.ok:
            raise self._failure(response)
        if not isinstance(response.body, dict):
            raise EffectFailed("ai_provider_error", f"{self.name} answered HTTP "
                               f"{response.status} without a JSON object", retryable=True)
        return response

    def _failure(self, response: HttpResponse) -> EffectFailed:
        status = response.status
        said = self._clean(self._error_text(response.body))
        message = f"{self.name} answered HTTP {status}" + (f": {said}" if said else "")
        wait = retry_after_ms(response.headers, self._now_ms())
        if wait is not None:
            message += f" (Retry-After: {wait / 1000:g} s)"
        if status in (401, 403):
            return EffectFailed("ai_unauthorized", message, retryable=False)
        if status == 429:
            return EffectFailed("ai_rate_limited", message, retryable=True, retry_after_ms=wait)
        if status >= 500 or status == 408:
            return EffectFailed("ai_provider_error", message, retryable=True,
                                retry_after_ms=wait)
        if status == 404 and self._names_a_model(response.body, said):
            return EffectFailed("ai_model_not_found", message, retryable=False)
        return EffectFailed("ai_bad_request", message, retryable=False)

    def _error_text(self, body: Any) -> str:
        raise NotImplementedError

    def _names_a_model(self, body: Any, said: str) -> bool:
        return "model" in said.lower()

    def _clean(self, text: str) -> str:
        text = " ".join(str(text).split())[:_MESSAGE_CHARS]
        return redact(text, self._key)

    def _shape_error(self, what: str) -> EffectFailed:
        return EffectFailed("ai_provider_error", f"{self.name} answered without {what}",
                            retryable=True)


class OllamaProvider(_ChatProvider):
    name = "ollama"
    path = "/api/chat"

    async def chat(self, request: AiRequest, model: str) -> AiAnswer:
        body: dict[str, Any] = {"model": model, "messages": list(request.messages),
                                "stream": False}
        if request.json_schema is not None:
            body["format"] = request.json_schema or "json"
        if request.temperature is not None:
            body["options"] = {"temperature": request.temperature}
        answer = (await self._post(body)).body
        message = answer.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise self._shape_error("message.content")
        prompt, completion = _count(answer.get("prompt_eval_count")), _count(
            answer.get("eval_count"))
        return AiAnswer(content, str(answer.get("model") or model), {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion})

    def _error_text(self, body: Any) -> str:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return body["error"]
        return body if isinstance(body, str) else ""


class OpenAiProvider(_ChatProvider):
    name = "openai"
    path = "/v1/chat/completions"

    async def chat(self, request: AiRequest, model: str) -> AiAnswer:
        body: dict[str, Any] = {"model": model, "messages": list(request.messages)}
        if request.json_schema is not None:
            # JSON mode: any JSON object (the schema itself is in the prompt); the prompt must
            # say "JSON", which every JSON request of flowd's does.
            body["response_format"] = {"type": "json_object"}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        answer = (await self._post(body)).body
        choices = answer.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        if not isinstance(message, dict):
            raise self._shape_error("choices[0].message")
        content = message.get("content")
        if not isinstance(content, str):
            refusal = message.get("refusal")
            if isinstance(refusal, str):
                # A refusal is an answer, just not one in the shape asked: the step judges it.
                content = refusal
            else:
                raise self._shape_error("choices[0].message.content")
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        prompt, completion = _count(usage.get("prompt_tokens")), _count(
            usage.get("completion_tokens"))
        total = _count(usage.get("total_tokens")) or prompt + completion
        return AiAnswer(content, str(answer.get("model") or model), {
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total})

    def _error_text(self, body: Any) -> str:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            parts = [str(error[k]) for k in ("message",) if error.get(k)]
            code = error.get("code") or error.get("type")
            return " ".join(parts) + (f" ({code})" if code else "")
        if isinstance(error, str):
            return error
        return body if isinstance(body, str) else ""

    def _names_a_model(self, body: Any, said: str) -> bool:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("code") == "model_not_found":
            return True
        return super()._names_a_model(body, said)


def _endpoint(base_url: str, path: str) -> str:
    base = base_url.rstrip("/")
    if path.startswith("/v1/") and base.endswith("/v1"):
        base = base[:-3]   # "https://api.groq.com/openai/v1" is the usual way to write it
    return base + path


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
