"""The Ollama and OpenAI-compatible providers against local fakes speaking their wire formats:
the exact request bodies (model, messages, JSON mode, bearer key), the answers they parse, and
what each error becomes — 401, 404, 429 with Retry-After (seconds and HTTP date), 500, a
timeout — with the key never in a message."""

from __future__ import annotations

import email.utils

import pytest

from flowd.effects.ai_providers import (
    OllamaProvider,
    OpenAiProvider,
    redact,
    retry_after_ms,
)
from flowd.effects.base import AiRequest, EffectFailed
from flowd.effects.http import HttpClient
from tests.ai_fakes import (
    HANG,
    OLLAMA_MODEL,
    OPENAI_KEY,
    OllamaFake,
    OpenAiFake,
    failure,
    reply,
    serve,
)

NOW_MS = 1_800_000_000_000
ASK = AiRequest(({"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "Say hi to Ada"}))
ASK_JSON = AiRequest(({"role": "user", "content": "Answer in JSON"},),
                     json_schema={"type": "object", "properties": {"choice": {"type": "string"}}},
                     temperature=0.2)


@pytest.fixture
async def http():
    client = HttpClient(allow_private_networks=True)
    await client.start()
    yield client
    await client.close()


@pytest.fixture
async def ollama(aiohttp_server):
    fake = await serve(aiohttp_server, OllamaFake())
    yield fake
    fake.release()


@pytest.fixture
async def openai(aiohttp_server):
    fake = await serve(aiohttp_server, OpenAiFake())
    yield fake
    fake.release()


def _ollama(http, fake, timeout=5.0) -> OllamaProvider:
    return OllamaProvider(http, fake.url, timeout=timeout, now_ms=lambda: NOW_MS)


def _openai(http, fake, key=OPENAI_KEY, timeout=5.0, base_url=None) -> OpenAiProvider:
    return OpenAiProvider(http, base_url or fake.url, api_key=key, timeout=timeout,
                          now_ms=lambda: NOW_MS)


async def test_ollama_request_and_answer(http, ollama):
    ollama.script = [reply("Hi Ada!"), reply('{"choice": "yes"}')]
    answer = await _ollama(http, ollama).chat(ASK, OLLAMA_MODEL)
    assert (answer.content, answer.model) == ("Hi Ada!", OLLAMA_MODEL)
    assert answer.usage == {"prompt_tokens": 26, "completion_tokens": 7, "total_tokens": 33}
    assert ollama.bodies[0] == {"model": OLLAMA_MODEL, "stream": False,
                                "messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "Say hi to Ada"}]}
    assert "Authorization" not in ollama.requests[0]["headers"]   # no key, none sent
    await _ollama(http, ollama).chat(ASK_JSON, OLLAMA_MODEL)
    assert ollama.bodies[1]["format"] == ASK_JSON.json_schema     # the schema itself
    assert ollama.bodies[1]["options"] == {"temperature": 0.2}
    await _ollama(http, ollama).chat(AiRequest(ASK.messages, json_schema={}), OLLAMA_MODEL)
    assert ollama.bodies[2]["format"] == "json"                   # any JSON object


async def test_openai_request_and_answer(http, openai):
    openai.script = [reply("Hi Ada!")]
    answer = await _openai(http, openai).chat(ASK, "gpt-4o-mini")
    assert (answer.content, answer.model) == ("Hi Ada!", "gpt-4o-mini-2024-07-18")
    assert answer.usage == {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}
    [request] = openai.requests
    assert request["headers"]["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert request["body"] == {"model": "gpt-4o-mini", "messages": list(ASK.messages)}
    await _openai(http, openai).chat(ASK_JSON, "gpt-4o-mini")
    assert openai.bodies[1]["response_format"] == {"type": "json_object"}
    assert openai.bodies[1]["temperature"] == 0.2
    # A base URL written with its /v1 (the usual way for compatible servers) gets no second.
    await _openai(http, openai, base_url=openai.url + "/v1/").chat(ASK, "gpt-4o-mini")
    assert len(openai.requests) == 3


@pytest.mark.parametrize("script, code, retryable", [
    (failure(500), "ai_provider_error", True),
    (failure(503, headers={"Retry-After": "3"}), "ai_provider_error", True),
    (failure(429, "Rate limit reached for gpt-4o-mini", {"Retry-After": "7"}),
     "ai_rate_limited", True),
    (failure(404, "The model `gpt-9` does not exist or you do not have access to it."),
     "ai_model_not_found", False),
    (failure(400, "This model's maximum context length is 128000 tokens."),
     "ai_bad_request", False),
])
async def test_openai_errors(http, openai, script, code, retryable):
    openai.script = [script]
    with pytest.raises(EffectFailed) as failed:
        await _openai(http, openai).chat(ASK, "gpt-4o-mini")
    assert (failed.value.code, failed.value.retryable) == (code, retryable)
    assert f"HTTP {script.status}" in failed.value.message
    expected_wait = {"3": 3000, "7": 7000}.get(script.headers.get("Retry-After", ""))
    assert failed.value.retry_after_ms == expected_wait


async def test_openai_401_is_not_retried_and_never_shows_the_key(http, openai):
    wrong = "sk-proj-WrongKeyForFlowdTests0123456789abcd"
    with pytest.raises(EffectFailed) as failed:
        await _openai(http, openai, key=wrong).chat(ASK, "gpt-4o-mini")
    assert (failed.value.code, failed.value.retryable) == ("ai_unauthorized", False)
    assert "Incorrect API key provided" in failed.value.message
    for part in (wrong, wrong[:8], wrong[-4:]):
        assert part not in failed.value.message


async def test_retry_after_as_an_http_date(http, openai):
    at = email.utils.formatdate((NOW_MS + 90_000) / 1000, usegmt=True)
    openai.script = [failure(429, headers={"Retry-After": at})]
    with pytest.raises(EffectFailed) as failed:
        await _openai(http, openai).chat(ASK, "gpt-4o-mini")
    assert failed.value.code == "ai_rate_limited" and failed.value.retry_after_ms == 90_000


def test_retry_after_forms():
    assert retry_after_ms({"retry-after": "12"}, NOW_MS) == 12_000
    assert retry_after_ms({"retry-after-ms": "1500"}, NOW_MS) == 1500
    assert retry_after_ms({"retry-after": "soon"}, NOW_MS) is None
    assert retry_after_ms({}, NOW_MS) is None
    assert retry_after_ms({"retry-after": "999999999"}, NOW_MS) == 86_400_000   # capped


@pytest.mark.parametrize("provider", ["ollama", "openai"])
async def test_a_timeout_is_a_retryable_provider_error(http, ollama, openai, provider):
    fake = ollama if provider == "ollama" else openai
    fake.script = [HANG]
    make = _ollama if provider == "ollama" else _openai
    with pytest.raises(EffectFailed) as failed:
        await make(http, fake, timeout=0.2).chat(ASK, OLLAMA_MODEL)
    assert (failed.value.code, failed.value.retryable) == ("ai_provider_error", True)
    assert "timed out after 0.2 s" in failed.value.message


async def test_ollama_errors(http, ollama):
    with pytest.raises(EffectFailed) as failed:
        await _ollama(http, ollama).chat(ASK, "mistral")
    assert (failed.value.code, failed.value.retryable) == ("ai_model_not_found", False)
    assert 'model "mistral" not found' in failed.value.message
    ollama.script = [failure(500, "llama runner process has terminated")]
    with pytest.raises(EffectFailed) as failed:
        await _ollama(http, ollama).chat(ASK, OLLAMA_MODEL)
    assert (failed.value.code, failed.value.retryable) == ("ai_provider_error", True)
    assert "llama runner process has terminated" in failed.value.message


async def test_nothing_listening_is_a_retryable_provider_error(http, unused_tcp_port):
    provider = OllamaProvider(http, f"http://127.0.0.1:{unused_tcp_port}", timeout=2,
                              now_ms=lambda: NOW_MS)
    with pytest.raises(EffectFailed) as failed:
        await provider.chat(ASK, OLLAMA_MODEL)
    assert (failed.value.code, failed.value.retryable) == ("ai_provider_error", True)


async def test_a_guarded_client_refuses_a_private_base_url(ollama):
    async with HttpClient(allow_private_networks=False) as guarded:
        with pytest.raises(EffectFailed) as failed:
            await _ollama(guarded, ollama).chat(ASK, OLLAMA_MODEL)
    assert (failed.value.code, failed.value.retryable) == ("destination_not_allowed", False)
    assert ollama.requests == []


def test_redact_takes_out_the_key_and_what_a_provider_shows_of_it():
    key = OPENAI_KEY
    shown = f"{key[:8]}{'*' * 20}{key[-4:]}"
    text = redact(f"Incorrect API key provided: {shown}. Also {key} here.", key)
    assert key not in text and key[:8] not in text and key[-4:] not in text
    assert text.startswith("Incorrect API key provided: [redacted]")
