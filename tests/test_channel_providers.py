"""The SMS, push and Slack providers against local fakes that speak Twilio's, FCM's (with
Google's OAuth token endpoint) and Slack's wire formats: the exact requests they send, and what
each success and error answer becomes."""

from __future__ import annotations

import json

import pytest

from flowd.clock import VirtualClock
from flowd.effects.base import EffectFailed
from flowd.effects.google_oauth import FCM_SCOPE, load_service_account
from flowd.effects.http import HttpClient
from flowd.effects.outgoing import (
    OutgoingPush,
    OutgoingSlack,
    OutgoingSms,
    RecipientOptedOut,
)
from flowd.effects.push import FcmProvider
from flowd.effects.slack import SlackProvider
from flowd.effects.sms import TwilioProvider
from tests.channel_fakes import (
    CLIENT_EMAIL,
    FCM_PROJECT,
    INVALID_ARGUMENT,
    INVALID_NUMBER,
    SENDER_MISMATCH,
    SLACK_PATH,
    TOO_MANY,
    TWILIO_SID,
    TWILIO_TOKEN,
    UNAVAILABLE,
    UNREGISTERED,
    UNSUBSCRIBED,
    FcmFake,
    SlackFake,
    TwilioFake,
    service_account_file,
    service_account_key,
    twilio_error,
)

START_MS = 1_800_000_000_000


@pytest.fixture(scope="module")
def rsa_key():
    return service_account_key()


# --- Twilio -------------------------------------------------------------------------------------

@pytest.fixture
async def twilio(aiohttp_server):
    fake = TwilioFake()
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


async def _twilio(fake: TwilioFake, **options) -> TwilioProvider:
    provider = TwilioProvider(TWILIO_SID, TWILIO_TOKEN, base_url=fake.url, timeout=5,
                              **({"sender": "+15005550006"} | options))
    await provider.start()
    return provider


async def test_twilio_request_format_and_sid(twilio):
    provider = await _twilio(twilio)
    try:
        result = await provider.send(OutgoingSms("msg_1", "+4915112345678", "Grüße, Ada & co"))
    finally:
        await provider.close()
    [request] = twilio.requests
    assert request["path"] == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {"To": "+4915112345678", "From": "+15005550006",
                               "Body": "Grüße, Ada & co"}
    assert result.provider_message_id == f"SM{1:032x}"
    assert result.accepted == ("+4915112345678",) and result.rejected == {}


async def test_twilio_messaging_service_replaces_from(twilio):
    provider = await _twilio(twilio, sender="", messaging_service_sid="MG" + "1" * 32)
    try:
        await provider.send(OutgoingSms("msg_1", "+4915112345678", "Hi"))
    finally:
        await provider.close()
    assert twilio.requests[0]["form"] == {"To": "+4915112345678",
                                          "MessagingServiceSid": "MG" + "1" * 32, "Body": "Hi"}


@pytest.mark.parametrize("answer, expect", [
    (INVALID_NUMBER, "rejected"),
    (UNSUBSCRIBED, RecipientOptedOut),
    (TOO_MANY, ("sms_unavailable", True)),
    (twilio_error(20500, "Internal Server Error", 500), ("sms_unavailable", True)),
    (twilio_error(21408, "Permission to send an SMS has not been enabled for the region "
                  "indicated by the 'To' number"), ("sms_refused", False)),
])
async def test_twilio_errors_map_to_outcomes(twilio, answer, expect):
    twilio.queue.append(answer)
    provider = await _twilio(twilio)
    try:
        if expect == "rejected":
            result = await provider.send(OutgoingSms("msg_1", "+15005550001", "Hi"))
            assert result.accepted == ()
            assert "21211" in result.rejected["+15005550001"]
            return
        with pytest.raises(EffectFailed) as failed:
            await provider.send(OutgoingSms("msg_1", "+15005550001", "Hi"))
    finally:
        await provider.close()
    if expect is RecipientOptedOut:
        assert isinstance(failed.value, RecipientOptedOut) and not failed.value.retryable
    else:
        assert (failed.value.code, failed.value.retryable) == expect
        assert str(answer[1]["code"]) in failed.value.message


async def test_twilio_bad_credentials_are_not_retried(twilio):
    provider = TwilioProvider(TWILIO_SID, "wrong", sender="+15005550006", base_url=twilio.url)
    await provider.start()
    try:
        with pytest.raises(EffectFailed) as failed:
            await provider.send(OutgoingSms("msg_1", "+4915112345678", "Hi"))
    finally:
        await provider.close()
    assert failed.value.code == "sms_auth_failed" and not failed.value.retryable


# --- FCM ----------------------------------------------------------------------------------------

@pytest.fixture
async def fcm(aiohttp_server, rsa_key):
    fake = FcmFake(rsa_key[0].public_key())
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    fake.base_url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
async def fcm_provider(fcm, rsa_key, tmp_path):
    clock = VirtualClock(START_MS)
    account = load_service_account(service_account_file(tmp_path / "sa.json", rsa_key[1],
                                                         fcm.token_url))
    provider = FcmProvider(account, clock, base_url=fcm.base_url, timeout=5)
    await provider.start()
    yield provider, clock
    await provider.close()


def _push(token: str = "device-token-1") -> OutgoingPush:
    return OutgoingPush("msg_1", token, "Your order", "It shipped", {"order": "42"})


async def test_fcm_token_exchange_signs_the_grant_and_sends_with_the_bearer(fcm, fcm_provider):
    provider, _ = fcm_provider
    result = await provider.send(_push())
    [grant] = fcm.token_requests                   # the fake verified its RS256 signature
    assert grant["content_type"] == "application/x-www-form-urlencoded"
    assert grant["header"] == {"alg": "RS256", "typ": "JWT", "kid": "k1d"}
    assert grant["claims"] == {"iss": CLIENT_EMAIL, "scope": FCM_SCOPE, "aud": fcm.token_url,
                               "iat": START_MS // 1000, "exp": START_MS // 1000 + 3600}
    [send] = fcm.sends
    assert send["path"] == f"/v1/projects/{FCM_PROJECT}/messages:send"
    assert send["bearer"] == "ya29.test-token-1"
    assert send["content_type"].startswith("application/json")
    assert send["body"] == {"message": {
        "token": "device-token-1", "notification": {"title": "Your order", "body": "It shipped"},
        "data": {"order": "42"}}}
    assert result.provider_message_id == f"projects/{FCM_PROJECT}/messages/0:1"


async def test_fcm_token_is_cached_until_shortly_before_it_expires(fcm, fcm_provider):
    provider, clock = fcm_provider
    await provider.send(_push())
    clock.advance(3000 * 1000)                       # 50 min: still good
    await provider.send(_push())
    assert len(fcm.token_requests) == 1
    clock.advance(559 * 1000)                        # within a minute of its 3,599 s
    await provider.send(_push())
    assert len(fcm.token_requests) == 2
    assert [s["bearer"] for s in fcm.sends] == ["ya29.test-token-1"] * 2 + ["ya29.test-token-2"]


async def test_fcm_a_revoked_token_is_replaced_once(fcm, fcm_provider):
    provider, _ = fcm_provider
    await provider.send(_push())
    fcm.revoked.add("ya29.test-token-1")
    result = await provider.send(_push())
    assert result.accepted and len(fcm.token_requests) == 2
    assert [s["bearer"] for s in fcm.sends][-2:] == ["ya29.test-token-1", "ya29.test-token-2"]


@pytest.mark.parametrize("answer, expect", [
    (UNREGISTERED, "rejected"),
    ((404, {"error": {"code": 404, "message": "Requested entity was not found.",
                      "status": "NOT_FOUND"}}), "rejected"),
    (UNAVAILABLE, ("push_unavailable", True)),
    ((500, {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}),
     ("push_unavailable", True)),
    (INVALID_ARGUMENT, ("push_refused", False)),
    (SENDER_MISMATCH, ("push_auth_failed", False)),
])
async def test_fcm_errors_map_to_outcomes(fcm, fcm_provider, answer, expect):
    provider, _ = fcm_provider
    fcm.by_token["dead"] = answer
    if expect == "rejected":
        result = await provider.send(_push("dead"))
        assert result.accepted == () and "dead" in result.rejected
        return
    with pytest.raises(EffectFailed) as failed:
        await provider.send(_push("dead"))
    assert (failed.value.code, failed.value.retryable) == expect


async def test_fcm_a_refused_grant_is_a_failure_not_retried(fcm, rsa_key, tmp_path):
    pem = service_account_key()[1]                     # a key the fake does not know
    account = load_service_account(service_account_file(tmp_path / "sa.json", pem,
                                                         fcm.token_url))
    provider = FcmProvider(account, VirtualClock(START_MS), base_url=fcm.base_url)
    await provider.start()
    try:
        with pytest.raises(EffectFailed) as failed:
            await provider.send(_push())
    finally:
        await provider.close()
    assert failed.value.code == "push_auth_failed" and not failed.value.retryable
    assert "invalid_grant" in failed.value.message and fcm.sends == []


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("not json", "is not JSON"),
    (json.dumps({"client_email": "x@y", "project_id": "p"}), "has no private_key"),
    (json.dumps({"client_email": "x@y", "project_id": "p", "private_key": "-----BEGIN"}),
     "not a PEM private key"),
])
def test_service_account_files_that_cannot_work_say_why(tmp_path, content, message):
    path = tmp_path / "sa.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_service_account(str(path))


# --- Slack --------------------------------------------------------------------------------------

@pytest.fixture
async def slack(aiohttp_server):
    fake = SlackFake()
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    fake.base_url = str(server.make_url("")).rstrip("/")
    return fake


async def test_slack_posts_text_and_blocks_and_ok_is_sent(slack):
    async with HttpClient(allow_private_networks=True) as http:
        provider = SlackProvider(guarded=http, timeout=5)
        await provider.start()
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Deploy* done"}}]
        result = await provider.send(OutgoingSlack("msg_1", slack.url, "Deploy done", blocks))
        await provider.close()
    [post] = slack.posts
    assert post["path"] == SLACK_PATH
    assert post["headers"]["Content-Type"].startswith("application/json")
    assert post["body"] == {"text": "Deploy done", "blocks": blocks}
    assert result.provider_message_id == "req-1"
    assert result.accepted == (f"{slack.base_url}/services/T0001/B0001/…",)


@pytest.mark.parametrize("answer, expect", [
    ((400, "invalid_payload"), ("slack_refused", False)),
    ((404, "no_service"), ("slack_refused", False)),
    ((410, "channel_is_archived"), ("slack_refused", False)),
    ((429, "rate_limited"), ("slack_unavailable", True)),
    ((500, "internal_error"), ("slack_unavailable", True)),
])
async def test_slack_errors_map_to_outcomes(slack, answer, expect):
    slack.by_path[SLACK_PATH] = answer
    async with HttpClient(allow_private_networks=True) as http:
        provider = SlackProvider(guarded=http)
        with pytest.raises(EffectFailed) as failed:
            await provider.send(OutgoingSlack("msg_1", slack.url, "Hi"))
    assert (failed.value.code, failed.value.retryable) == expect
    assert answer[1] in failed.value.message


async def test_slack_step_urls_are_guarded_and_the_operators_is_not(slack):
    async with HttpClient(allow_private_networks=False) as guarded:
        provider = SlackProvider(guarded=guarded, default_url=slack.url, timeout=5)
        await provider.start()
        try:
            with pytest.raises(EffectFailed) as refused:
                await provider.send(OutgoingSlack("msg_1", slack.url, "from a step"))
            result = await provider.send(OutgoingSlack("msg_2", None, "from the operator"))
        finally:
            await provider.close()
    assert refused.value.code == "destination_not_allowed"
    assert result.accepted and [p["body"]["text"] for p in slack.posts] == ["from the operator"]
