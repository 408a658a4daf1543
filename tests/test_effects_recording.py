"""The recording effects a dry run gives the engine: they perform nothing, record what would
have been done, and answer from canned responses (per step, else per URL, else 200 {}). Also:
the http steps run on them unchanged, and leave an effect's failure to the engine."""

from __future__ import annotations

import json
import random
import time

import pytest
from standardwebhooks.webhooks import Webhook

from flowd.effects.base import (
    TEST_SECRET,
    EffectFailed,
    Effects,
    HttpCall,
    HttpResponse,
    RecordingEffects,
)
from flowd.effects.signing import delivery_id
from flowd.steps import STEP_TYPES
from flowd.steps.base import StepContext, StepFailed
from flowd.templates import Scope

URL = "https://crm.example/hook"


async def test_a_call_is_recorded_and_answered_200_with_an_empty_object():
    effects = RecordingEffects()
    response = await effects.http.request("POST", URL, headers={"X-A": "1"}, body=b'{"n":1}',
                                          timeout=2.5)
    assert (response.status, response.body, response.truncated) == (200, {}, False)
    assert effects.http_calls == [HttpCall("POST", URL, {"X-A": "1"}, b'{"n":1}', 2.5)]


async def test_an_answer_for_the_step_wins_over_one_for_the_url():
    by_url = HttpResponse(201, {}, {"from": "url"}, False)
    by_step = HttpResponse(202, {}, {"from": "step"}, False)
    effects = RecordingEffects(by_url={URL: by_url}, by_step={"charge": by_step})
    assert (await effects.for_step("charge").http.request("GET", URL, timeout=1)).status == 202
    assert (await effects.for_step("other").http.request("GET", URL, timeout=1)).status == 201
    assert (await effects.http.request("GET", URL, timeout=1)).status == 201
    elsewhere = await effects.for_step("other").http.request("GET", URL + "/x", timeout=1)
    assert (elsewhere.status, elsewhere.body) == (200, {})


async def test_recorders_bound_to_steps_share_one_log_in_call_order():
    effects = RecordingEffects()
    await effects.for_step("a").http.request("GET", URL, timeout=1)
    await effects.http.request("GET", URL, timeout=1)
    await effects.for_step("b").signer.signature("default", "msg_1", 10, b"{}")
    await effects.for_step("b").http.request("PUT", URL, timeout=1)
    assert [(c.step_id, c.method) for c in effects.http_calls] == [("a", "GET"), (None, "GET"),
                                                                   ("b", "PUT")]
    assert [c.step_id for c in effects.signing_calls] == ["b"]


async def test_a_canned_failure_is_raised_as_it_was_given():
    failure = EffectFailed("timeout", "GET https://crm.example/hook timed out", retryable=True)
    effects = RecordingEffects(by_url={URL: failure})
    with pytest.raises(EffectFailed) as raised:
        await effects.http.request("GET", URL, timeout=1)
    assert raised.value is failure
    assert len(effects.http_calls) == 1   # still recorded: the call would have been made


async def test_a_step_changing_its_answer_does_not_change_the_next_answer():
    effects = RecordingEffects(by_url={URL: HttpResponse(200, {}, {"items": [1]}, False)})
    first = await effects.http.request("GET", URL, timeout=1)
    first.body["items"].append(2)
    assert (await effects.http.request("GET", URL, timeout=1)).body == {"items": [1]}
    default = await effects.http.request("GET", URL + "/d", timeout=1)
    default.body["x"] = 1
    assert (await effects.http.request("GET", URL + "/d", timeout=1)).body == {}


async def test_signatures_are_deterministic_and_verify_under_the_test_secret():
    effects = RecordingEffects()
    body = b'{"hello":"world"}'
    # Receivers refuse timestamps far from their clock, so this one is now.
    timestamp = int(time.time())
    first = await effects.signer.signature("default", "msg_abc", timestamp, body)
    again = await RecordingEffects().signer.signature("other", "msg_abc", timestamp, body)
    assert first == again and first.startswith("v1,") and " " not in first
    # An independent implementation of Standard Webhooks accepts it.
    Webhook(TEST_SECRET).verify(body, {"webhook-id": "msg_abc",
                                       "webhook-timestamp": str(timestamp),
                                       "webhook-signature": first})
    call = effects.signing_calls[0]
    assert (call.project_id, call.msg_id, call.timestamp, call.body, call.signature) == (
        "default", "msg_abc", timestamp, body, first)


def test_recording_effects_are_effects():
    assert isinstance(RecordingEffects(), Effects)


# --- the http steps on recorded effects --------------------------------------------------------

def context(step_type: str, config: dict, effects: Effects) -> StepContext:
    return StepContext(run_id="run_1", project_id="default", workflow_id="wf_1", step_id="call",
                       visit=1, attempt=1, now_ms=1_700_000_000_000, config=config,
                       compiled=STEP_TYPES[step_type].compile(config, "steps[0].config"),
                       scope=Scope({}), effects=effects, random=random.Random(0))


async def test_a_webhook_step_is_recorded_signed_and_sends_nothing():
    effects = RecordingEffects()
    config = {"url": URL, "body": {"n": 1}}
    outcome = await STEP_TYPES["webhook"].run(context("webhook", config, effects.for_step("call")))
    assert (outcome.outcome, outcome.output) == ("http_200", {"status": 200, "body": {}})
    [call] = effects.http_calls
    assert (call.method, call.url, call.body, call.timeout, call.step_id) == (
        "POST", URL, b'{"n":1}', 10.0, "call")
    assert call.headers["webhook-id"] == delivery_id("run_1", "call", 1)
    assert call.headers["webhook-timestamp"] == "1700000000"
    assert call.headers["webhook-signature"] == effects.signing_calls[0].signature
    assert json.loads(call.body) == {"n": 1}


async def test_a_canned_non_2xx_answer_is_the_steps_own_failure():
    effects = RecordingEffects(by_step={"call": HttpResponse(503, {}, "busy", False)})
    with pytest.raises(StepFailed) as failed:
        await STEP_TYPES["http_request"].run(context("http_request", {"url": URL},
                                                     effects.for_step("call")))
    assert failed.value.code == "http_status"
    assert failed.value.output == {"status": 503, "body": "busy", "headers": {}}


@pytest.mark.parametrize("retryable", [True, False])
async def test_an_effects_failure_leaves_the_step_untranslated(retryable):
    failure = EffectFailed("destination_not_allowed", "refused", retryable=retryable)
    effects = RecordingEffects(by_url={URL: failure})
    with pytest.raises(EffectFailed) as raised:
        await STEP_TYPES["webhook"].run(context("webhook", {"url": URL}, effects))
    assert raised.value is failure   # the engine maps it, once for every step type
