"""The `ai` step in the engine, on a virtual clock, against a local fake Ollama: generate,
decide (its choice is the branch; an answer outside the options is asked again once, then
`ai_bad_answer`), extract (typed fields, asked again once), `save_to` vars and contact traits,
the `unavailable` path (no provider; a provider still failing on the last attempt), and a
429's Retry-After pushing the retry back."""

from __future__ import annotations

import json

import pytest

from flowd.ai_service import AiService
from flowd.config import AiConfig
from flowd.runs import new_run
from flowd.store.records import RunStatus
from flowd.waits import WaitKind
from tests.ai_fakes import HANG, OLLAMA_MODEL, OllamaFake, failure, reply, serve
from tests.core import close_core, make_core

PROMPT = ("Write one line welcoming {{ contact.traits.first_name }} to the "
          "{{ event.properties.plan }} plan.")


@pytest.fixture
async def ollama(aiohttp_server):
    fake = await serve(aiohttp_server, OllamaFake())
    yield fake
    fake.release()


async def _core(tmp_path, ai_config: AiConfig):
    made: list[AiService] = []

    def with_effects(store, clock, ingest):
        made.append(AiService(store, clock, ai_config, allow_private_networks=True))
        return {"ai": made[0]}

    core = await make_core(tmp_path, with_effects=with_effects)
    await made[0].start()
    return core, made[0]


@pytest.fixture
async def core(tmp_path, ollama):
    core, ai = await _core(tmp_path, AiConfig(provider="ollama", base_url=ollama.url,
                                              model=OLLAMA_MODEL, timeout_seconds=5))
    yield core
    await ai.close()
    await close_core(core)


async def _contact(core, contact_id="u1", **traits):
    now = core.clock.now_ms()
    await core.store.write(lambda tx: tx.contacts.upsert("default", contact_id, {
        "email": "ada@example.com", "traits": traits}, now))


async def _run(core, steps, contact_id="u1", properties=None):
    workflow = await core.workflow(steps)
    run = new_run(core.registry.current(workflow.id), contact_id,
                  {"type": "api", "event": {"properties": properties or {}}},
                  core.clock.now_ms())
    await core.store.write(lambda tx: tx.runs.insert([run]))
    await core.execute(run)
    return await core.run(run.id), await core.trace(run.id)


async def test_generate_sends_only_what_the_prompt_names_and_saves_to_vars(core, ollama):
    await _contact(core, first_name="Ada", secret_note="never sent")
    ollama.script = [reply("Welcome aboard, Ada!")]
    run, trace = await _run(core, [
        {"id": "g", "type": "ai", "config": {"flavor": "generate", "prompt": PROMPT,
                                             "system": "You write friendly emails.",
                                             "save_to": "vars.greeting"}}],
        properties={"plan": "pro"})
    assert run.status is RunStatus.COMPLETED
    assert run.vars == {"greeting": "Welcome aboard, Ada!"}
    assert trace[0].outcome == "generated"
    assert trace[0].output == {"text": "Welcome aboard, Ada!", "model": OLLAMA_MODEL,
                               "usage": {"prompt_tokens": 26, "completion_tokens": 7,
                                         "total_tokens": 33}}
    [body] = ollama.bodies
    assert body["messages"] == [
        {"role": "system", "content": "You write friendly emails."},
        {"role": "user", "content": "Write one line welcoming Ada to the pro plan."}]
    assert "format" not in body and body["stream"] is False
    sent = json.dumps(body)
    assert "ada@example.com" not in sent and "never sent" not in sent


DECIDE = {"id": "d", "type": "ai", "config": {
    "flavor": "decide", "prompt": "The customer wrote: {{ event.properties.text }}",
    "options": ["refund", "question"], "save_to": "contact.traits.intent"},
    "next": {"refund": "r", "question": "q"}}
BRANCHES = [{"id": "r", "type": "set", "config": {"vars": {"went": "refund"}}, "next": None},
            {"id": "q", "type": "set", "config": {"vars": {"went": "question"}}, "next": None}]


async def test_decide_asks_again_once_after_an_answer_outside_the_options(core, ollama):
    await _contact(core)
    ollama.script = [reply({"choice": "complaint"}), reply({"choice": "refund"})]
    run, trace = await _run(core, [DECIDE, *BRANCHES], properties={"text": "money back!"})
    assert run.status is RunStatus.COMPLETED and run.vars == {"went": "refund"}
    assert (trace[0].outcome, trace[0].branch) == ("decided", "refund")
    assert trace[0].output["choice"] == "refund"
    assert trace[0].output["usage"]["total_tokens"] == 66     # both calls
    first, second = ollama.bodies
    assert first["format"]["properties"]["choice"]["enum"] == ["refund", "question"]
    assert second["messages"][:len(first["messages"])] == first["messages"]
    assert second["messages"][-2] == {"role": "assistant", "content": '{"choice": "complaint"}'}
    assert '"complaint" is not one of the options' in second["messages"][-1]["content"]
    contact = await core.store.get_contact("default", "u1")
    assert contact.traits["intent"] == "refund"


async def test_decide_twice_outside_the_options_fails_with_ai_bad_answer(core, ollama):
    await _contact(core)
    ollama.script = [reply({"choice": "complaint"}), reply("no idea")]
    run, trace = await _run(core, [{**DECIDE, "retry": {"max_attempts": 3}}, *BRANCHES])
    assert run.status is RunStatus.FAILED and run.error["code"] == "ai_bad_answer"
    assert len(ollama.requests) == 2                          # not retried
    assert trace[0].output["answer"] == "no idea"


EXTRACT = {"id": "x", "type": "ai", "config": {
    "flavor": "extract", "prompt": "{{ event.properties.text }}",
    "fields": {"age": "integer", "city": "string", "pets": "string[]", "vip": "boolean?"},
    "save_to": "contact.traits.profile"}}


async def test_extract_asks_again_after_a_wrong_type_and_saves_to_traits(core, ollama):
    await _contact(core)
    ollama.script = [reply({"age": "forty", "city": "Paris", "pets": ["cat"], "vip": None}),
                     reply({"age": 40, "city": "Paris", "pets": ["cat"], "vip": None,
                            "extra": 1})]
    run, trace = await _run(core, [EXTRACT], properties={"text": "I'm 40, in Paris, one cat"})
    assert run.status is RunStatus.COMPLETED
    fields = {"age": 40, "city": "Paris", "pets": ["cat"], "vip": None}
    assert trace[0].output["fields"] == fields               # extra fields dropped
    assert "age must be integer" in ollama.bodies[1]["messages"][-1]["content"]
    assert (await core.store.get_contact("default", "u1")).traits["profile"] == fields


async def test_malformed_json_twice_is_ai_bad_answer(core, ollama):
    await _contact(core)
    ollama.script = [reply('{"age": 40, "city": '), reply("Sure! Age 40, Paris.")]
    run, _ = await _run(core, [EXTRACT])
    assert run.status is RunStatus.FAILED and run.error["code"] == "ai_bad_answer"
    assert "not valid JSON" in run.error["message"]


async def test_a_429_pushes_the_retry_to_its_retry_after(core, ollama):
    ollama.script = [failure(429, "too many requests", {"Retry-After": "120"}), reply("Hello")]
    step = {"id": "g", "type": "ai", "config": {"flavor": "generate", "prompt": "Hi"},
            "retry": {"max_attempts": 2, "backoff": "PT1S"}}
    workflow = await core.workflow([step])
    run = await core.start(workflow)
    await core.execute(run)
    waiting = await core.run(run.id)
    assert waiting.wait is not None and waiting.wait.kind is WaitKind.RETRY
    assert waiting.due_at == core.clock.now_ms() + 120_000     # not the 1 s backoff
    [failed] = await core.trace(run.id)
    assert failed.error["code"] == "ai_rate_limited"
    core.clock.advance(120_000)
    [(claimed, _, _)] = await core.engine.claim([run.id])
    await core.execute(claimed)
    assert (await core.run(run.id)).status is RunStatus.COMPLETED
    assert (await core.trace(run.id))[-1].output["text"] == "Hello"


async def test_a_provider_still_failing_on_the_last_attempt_is_unavailable(core, ollama):
    ollama.script = [failure(500), failure(500)]
    steps = [{"id": "g", "type": "ai", "config": {"flavor": "generate", "prompt": "Hi"},
              "retry": {"max_attempts": 2, "backoff": "PT1S"},
              "next": {"unavailable": "fallback"}},
             {"id": "fallback", "type": "set", "config": {"vars": {"fallback": True}}}]
    workflow = await core.workflow(steps)
    run = await core.start(workflow)
    await core.execute(run)
    core.clock.advance(1000)
    [(claimed, _, _)] = await core.engine.claim([run.id])
    await core.execute(claimed)
    done = await core.run(run.id)
    assert done.status is RunStatus.COMPLETED and done.vars == {"fallback": True}
    first, last, _ = await core.trace(run.id)
    assert (first.status, first.error["code"]) == ("failed", "ai_provider_error")
    assert (last.status, last.outcome, last.branch) == ("ok", "ai_unavailable", "unavailable")
    assert last.output["reason"] == "ai_provider_error"


async def test_a_timeout_on_the_only_attempt_is_unavailable(tmp_path, ollama):
    core, ai = await _core(tmp_path, AiConfig(provider="ollama", base_url=ollama.url,
                                              model=OLLAMA_MODEL, timeout_seconds=0.2))
    try:
        ollama.script = [HANG]
        run, trace = await _run(core, [
            {"id": "g", "type": "ai", "config": {"flavor": "generate", "prompt": "Hi"}},
            {"id": "next", "type": "set", "config": {"vars": {"went_on": True}}}])
        assert run.status is RunStatus.COMPLETED and run.vars == {"went_on": True}
        assert trace[0].outcome == "ai_unavailable" and "timed out" in trace[0].output["message"]
    finally:
        await ai.close()
        await close_core(core)


async def test_a_model_that_was_never_pulled_fails_without_retry(core, ollama):
    run, _ = await _run(core, [{"id": "g", "type": "ai", "retry": {"max_attempts": 3},
                                "config": {"flavor": "generate", "prompt": "Hi",
                                           "model": "mistral"}}])
    assert run.status is RunStatus.FAILED and run.error["code"] == "ai_model_not_found"
    assert len(ollama.requests) == 1


@pytest.mark.parametrize("mapped", [True, False])
async def test_no_provider_takes_the_unavailable_path_and_says_why(tmp_path, mapped):
    core, ai = await _core(tmp_path, AiConfig())
    try:
        decide = {**DECIDE, "next": {**DECIDE["next"], **({"unavailable": "u"} if mapped else {})}}
        run, trace = await _run(core, [decide,
                                       {"id": "u", "type": "set", "next": None,
                                        "config": {"vars": {"went": "default path"}}},
                                       *BRANCHES])
        assert run.status is RunStatus.COMPLETED and run.vars == {"went": "default path"}
        assert (trace[0].status, trace[0].outcome, trace[0].branch) == (
            "ok", "ai_unavailable", "unavailable")
        assert trace[0].output["reason"] == "ai_unavailable"
        assert "no AI provider is configured" in trace[0].output["message"]
        assert (await core.store.get_contact("default", "u1")) is None   # nothing saved
    finally:
        await ai.close()
        await close_core(core)


async def test_generate_with_fields_answers_json_checked_like_extract(core, ollama):
    ollama.script = [reply({"subject": "Welcome!", "lines": 3})]
    run, trace = await _run(core, [{"id": "g", "type": "ai", "config": {
        "flavor": "generate", "prompt": "Draft a welcome email",
        "fields": {"subject": "string", "lines": "integer"}, "save_to": "vars.draft"}}])
    assert run.vars == {"draft": {"subject": "Welcome!", "lines": 3}}
    assert trace[0].output["fields"] == {"subject": "Welcome!", "lines": 3}
    [body] = ollama.bodies
    assert body["format"] == {"type": "object", "required": ["subject", "lines"], "properties": {
        "subject": {"type": "string"}, "lines": {"type": "integer"}}}
    assert "JSON object with exactly these fields" in body["messages"][0]["content"]
