"""The mailer's record of a message through failures, on a virtual clock and a real store: a
failure a retry may cure leaves it `sending` with the error; the last attempt's failure says
`failed`; a transactional message is tried again every minute for an hour; a failed message
is sent again when its step is."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from flowd.effects.base import EffectFailed, RecordingMailProvider
from flowd.effects.messages import EmailRequest
from flowd.mailer import GIVE_UP_MS, RETRY_INTERVAL_MS, Mailer, MailSettings
from flowd.store.records import Message, MessageStatus
from tests.core import Core, close_core, make_core

LATER = EffectFailed("smtp_temporary", "451 4.7.1 try later", retryable=True)


@pytest.fixture
async def core(tmp_path):
    core = await make_core(tmp_path)
    yield core
    await close_core(core)


@pytest.fixture
async def mail(core: Core):
    provider = RecordingMailProvider()
    mailer = Mailer(core.store, core.clock, provider, core.ingest, MailSettings(
        sender="news@acme.example", reply_to=None, track_opens=False, track_clicks=False),
        public_url=lambda: "https://flowd.example.com")
    await mailer.start()
    yield mailer, provider
    await mailer.close()


def _request(message_id: str, to: str = "a@example.com", **fields: Any) -> EmailRequest:
    """A step's message (with its run) unless `run_id=None` makes it transactional."""
    fields.setdefault("run_id", "run_1")
    return EmailRequest(project_id="default", message_id=message_id, to=(to,), subject="S",
                        text="T", html=None, **fields)


async def _record(core: Core, message_id: str) -> Message:
    message = await core.store.read(lambda tx: tx.messages.get("default", message_id))
    assert message is not None
    return message


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(1000):
        if await check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never happened")


async def test_a_step_attempt_that_may_be_retried_leaves_the_record_sending(core, mail):
    mailer, provider = mail
    provider.by_recipient["a@example.com"] = LATER
    with pytest.raises(EffectFailed):
        await mailer.send(_request("msg_1", final_attempt=False))
    record = await _record(core, "msg_1")
    assert record.status is MessageStatus.SENDING
    assert record.error == {"code": "smtp_temporary", "message": "451 4.7.1 try later"}

    with pytest.raises(EffectFailed):
        await mailer.send(_request("msg_1", final_attempt=True))
    assert (await _record(core, "msg_1")).status is MessageStatus.FAILED

    # The run is retried later: the failed message goes out, once, with the same id.
    del provider.by_recipient["a@example.com"]
    delivery = await mailer.send(_request("msg_1"))
    assert delivery.status is MessageStatus.SENT
    record = await _record(core, "msg_1")
    assert record.status is MessageStatus.SENT and record.error is None
    assert [e.message_id for e in provider.emails] == ["<msg_1@acme.example>"] * 3
    again = await mailer.send(_request("msg_1"))
    assert again.status is MessageStatus.SENT and len(provider.emails) == 3


async def test_a_failure_no_retry_can_cure_fails_the_record_at_once(core, mail):
    mailer, provider = mail
    provider.by_recipient["a@example.com"] = EffectFailed("smtp_auth_failed", "535 no",
                                                          retryable=False)
    with pytest.raises(EffectFailed):
        await mailer.send(_request("msg_1", final_attempt=False))
    assert (await _record(core, "msg_1")).status is MessageStatus.FAILED


async def test_a_transactional_message_is_retried_every_minute_until_it_goes(core, mail):
    mailer, provider = mail
    provider.by_recipient["a@example.com"] = LATER
    accepted = await mailer.accept(_request("msg_t", run_id=None))
    assert accepted.status is MessageStatus.SENDING
    await _until(lambda: _attempts(provider, 1))
    assert (await _record(core, "msg_t")).error["code"] == "smtp_temporary"

    core.clock.advance(RETRY_INTERVAL_MS)
    await _until(lambda: _attempts(provider, 2))
    del provider.by_recipient["a@example.com"]
    core.clock.advance(RETRY_INTERVAL_MS)
    await _until(lambda: _status(core, "msg_t", MessageStatus.SENT))
    core.clock.advance(RETRY_INTERVAL_MS * 3)
    await asyncio.sleep(0.01)
    assert len(provider.emails) == 3


async def test_a_transactional_message_gives_up_after_an_hour(core, mail):
    mailer, provider = mail
    provider.by_recipient["a@example.com"] = LATER
    await mailer.accept(_request("msg_t", run_id=None))
    await _until(lambda: _attempts(provider, 1))
    for attempt in range(2, GIVE_UP_MS // RETRY_INTERVAL_MS + 2):
        core.clock.advance(RETRY_INTERVAL_MS)
        await _until(lambda: _attempts(provider, attempt))
    await _until(lambda: _status(core, "msg_t", MessageStatus.FAILED))
    attempts = len(provider.emails)
    core.clock.advance(RETRY_INTERVAL_MS * 5)
    await asyncio.sleep(0.01)
    assert len(provider.emails) == attempts


async def _attempts(provider: RecordingMailProvider, count: int) -> bool:
    return len(provider.emails) >= count


async def _status(core: Core, message_id: str, status: MessageStatus) -> bool:
    return (await _record(core, message_id)).status is status
