"""The send policy in real runs, over HTTP, on a virtual clock (never a sleep): quiet hours in
the contact's time zone defer a message to the window's end and the step then sends it in
place; `skip` goes on as `rate_limited`; frequency caps count every journey's messages; a
workflow's settings override `[policy]`; transactional sends and approval emails are exempt;
and a test run shows the deferral."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime
from typing import Any

from flowd.app import create_app
from flowd.clock import VirtualClock
from flowd.config import PolicyConfig
from flowd.effects.signing import delivery_id
from tests.conftest import ADMIN_KEY, Api, eventually, make_config

BERLIN = "Europe/Berlin"
MAIL = {"id": "mail", "type": "send_email",
        "config": {"subject": "Hello", "text": "Hi {{ contact.id }}"}}
DONE = {"id": "done", "type": "set", "config": {"vars": {"done": True}}}
HOUR = 3_600_000
DAY = 24 * HOUR


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


async def server(aiohttp_client: Any, tmp_path: Any, start: str, **policy: Any
                 ) -> tuple[Api, VirtualClock]:
    clock = VirtualClock(ms(start))
    config = dataclasses.replace(make_config(tmp_path), policy=PolicyConfig(**policy))
    return Api(await aiohttp_client(create_app(config, clock=clock, admin_key=ADMIN_KEY))), clock


async def contact(api: Api, contact_id: str, **fields: Any) -> None:
    status, body = await api.put(f"/v1/contacts/{contact_id}", json=fields)
    assert status in (200, 201), body


async def fire(api: Api, workflow: dict[str, Any], contact_id: str, *statuses: str
               ) -> dict[str, Any]:
    status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs",
                                 json={"contact_id": contact_id})
    assert status == 201, run
    return await api.run_until(run["id"], *(statuses or ("completed", "failed")))


async def messages(api: Api, **query: str) -> list[dict[str, Any]]:
    query_text = "&".join(f"{k}={v}" for k, v in query.items())
    status, page = await api.get(f"/v1/messages?{query_text}")
    assert status == 200, page
    return page["data"]


async def test_quiet_hours_defer_to_the_contacts_morning_and_the_step_then_sends_in_place(
        aiohttp_client, tmp_path):
    # 22:00 in Berlin, 16:00 in New York (the project's zone).
    api, clock = await server(aiohttp_client, tmp_path, "2027-01-15T21:00:00+00:00",
                              timezone="America/New_York", quiet_hours_start="21:00",
                              quiet_hours_end="08:00")
    await contact(api, "berlin", email="b@example.com", timezone=BERLIN)
    await contact(api, "nozone", email="n@example.com")
    workflow = await api.workflow({"trigger": {"type": "manual"}, "steps": [MAIL, DONE]})

    run = await fire(api, workflow, "berlin", "waiting")
    morning = "2027-01-16T07:00:00.000Z"      # 08:00 in Berlin
    assert run["wait"] == {"kind": "timer", "until": morning}
    [entry] = run["steps"]
    assert (entry["status"], entry["outcome"]) == ("waiting", "deferred")
    assert entry["output"] == {"status": "deferred", "reason": "quiet_hours", "until": morning}
    assert await messages(api, run_id=run["id"]) == []

    # Without a zone of its own, the contact's clock is the project's: 16:00, not quiet.
    other = await fire(api, workflow, "nozone")
    assert [e["outcome"] for e in other["steps"]] == ["sent", "set"]

    clock.set(ms(morning.replace("Z", "+00:00")))
    done = await api.run_until(run["id"], "completed", "failed")
    assert done["status"] == "completed" and done["wait"] is None
    mail, after = done["steps"]
    # The waiting entry became the real outcome: one entry for the visit, from its start.
    assert (mail["seq"], mail["status"], mail["outcome"]) == (1, "ok", "sent")
    assert (mail["started_at"], mail["finished_at"]) == ("2027-01-15T21:00:00.000Z", morning)
    assert mail["output"]["deferred"] == {"reason": "quiet_hours", "until": morning}
    assert mail["output"]["message_id"] == delivery_id(run["id"], "mail", 1)
    assert after["step_id"] == "done"
    [sent] = await messages(api, run_id=run["id"])
    assert (sent["id"], sent["status"], sent["created_at"]) == (
        mail["output"]["message_id"], "sent", morning)


async def test_skip_overrides_and_exemptions_at_night(aiohttp_client, tmp_path):
    api, clock = await server(aiohttp_client, tmp_path, "2027-01-15T21:00:00+00:00",
                              quiet_hours_start="21:00", quiet_hours_end="08:00")
    await contact(api, "u1", email="u1@example.com", timezone=BERLIN)
    night = {"trigger": {"type": "manual"}, "settings": {"reentry": "always"}}

    # mode skip: nothing is sent, the run goes on along the default path.
    skipping = await api.workflow({**night, "settings": {
        "reentry": "always", "quiet_hours": {"start": "21:00", "end": "08:00",
                                             "mode": "skip"}}, "steps": [MAIL, DONE]})
    run = await fire(api, skipping, "u1")
    assert [(e["outcome"], e["output"]) for e in run["steps"]] == [
        ("rate_limited", {"status": "rate_limited", "reason": "quiet_hours"}),
        ("set", {"done": True})]
    assert run["status"] == "completed" and await messages(api, run_id=run["id"]) == []

    # A workflow that turns quiet hours off, and a transactional step, send at once.
    unquiet = await api.workflow({**night, "settings": {"quiet_hours": None},
                                  "steps": [MAIL]})
    assert (await fire(api, unquiet, "u1"))["steps"][0]["outcome"] == "sent"
    receipt = await api.workflow({**night, "steps": [
        {**MAIL, "config": {**MAIL["config"], "transactional": True}}]})
    assert (await fire(api, receipt, "u1"))["steps"][0]["outcome"] == "sent"

    # Outside any messaging step: the transactional API and approval emails.
    status, accepted = await api.post("/v1/messages/email", json={
        "to": "u1@example.com", "subject": "Your reset link", "text": "…"})
    assert status == 202, accepted
    approval = await api.workflow({"trigger": {"type": "manual"}, "steps": [
        {"id": "ask", "type": "approval", "config": {"approvers": ["boss@example.com"],
                                                     "message": "OK?"}}]})
    waiting = await fire(api, approval, "u1", "waiting")
    assert waiting["wait"]["kind"] == "approval"

    async def all_sent() -> bool:
        found = await messages(api, channel="email")
        return {m["to"]: m["status"] for m in found if m["run_id"] in (None, waiting["id"])} \
            == {"u1@example.com": "sent", "boss@example.com": "sent"}
    await eventually(all_sent)


async def test_frequency_caps_count_every_journey_and_free_a_slot_exactly(
        aiohttp_client, tmp_path):
    t0 = ms("2027-01-15T08:00:00+00:00")
    api, clock = await server(aiohttp_client, tmp_path, "2027-01-15T08:00:00+00:00",
                              frequency_cap_email="3/P1D")
    await contact(api, "u1", email="u1@example.com", phone="+4915112345678")
    manual = {"trigger": {"type": "manual"}, "settings": {"reentry": "always"}}
    first = await api.workflow({**manual, "steps": [MAIL]})
    second = await api.workflow({**manual, "steps": [MAIL]})
    for hour, workflow in enumerate((first, second, first)):
        clock.set(t0 + hour * HOUR)
        assert (await fire(api, workflow, "u1"))["steps"][0]["outcome"] == "sent"

    clock.set(t0 + 3 * HOUR)
    fourth = await fire(api, second, "u1", "waiting")
    slot = "2027-01-16T08:00:00.000Z"          # when the first email leaves the window
    assert fourth["wait"] == {"kind": "timer", "until": slot}
    assert fourth["steps"][0]["output"] == {"status": "deferred", "reason": "frequency_cap",
                                            "until": slot}
    # Another channel has no cap.
    sms = await api.workflow({**manual, "steps": [{"id": "text", "type": "send_sms",
                                                   "config": {"body": "Hi"}}]})
    assert (await fire(api, sms, "u1"))["steps"][0]["outcome"] == "sent"
    # A workflow's own cap in mode skip.
    skipping = await api.workflow({**manual, "settings": {
        "reentry": "always", "frequency_cap": [{"channel": "email", "max": 3, "per": "P1D",
                                                "mode": "skip"}]}, "steps": [MAIL, DONE]})
    skipped = await fire(api, skipping, "u1")
    assert [e["outcome"] for e in skipped["steps"]] == ["rate_limited", "set"]

    clock.set(t0 + DAY)
    done = await api.run_until(fourth["id"], "completed", "failed")
    assert done["steps"][0]["outcome"] == "sent"
    assert done["steps"][0]["output"]["deferred"] == {"reason": "frequency_cap", "until": slot}
    emails = await messages(api, contact_id="u1", channel="email", status="sent")
    assert [m["created_at"] for m in emails][0] == slot and len(emails) == 4


async def test_suppressed_messages_do_not_count(aiohttp_client, tmp_path):
    api, _ = await server(aiohttp_client, tmp_path, "2027-01-15T08:00:00+00:00",
                          frequency_cap_email="1/P1D")
    await contact(api, "u1", email="u1@example.com", subscribed={"email": False})
    workflow = await api.workflow({"trigger": {"type": "manual"},
                                   "settings": {"reentry": "always"}, "steps": [MAIL]})
    for _ in range(2):
        assert (await fire(api, workflow, "u1"))["steps"][0]["outcome"] == "suppressed"
    await contact(api, "u1", subscribed={"email": True})
    assert (await fire(api, workflow, "u1"))["steps"][0]["outcome"] == "sent"
    assert (await fire(api, workflow, "u1", "waiting"))["steps"][0]["outcome"] == "deferred"


async def test_policy_settings_are_checked_with_paths(api: Api):
    async def problems(settings: Any) -> list[tuple[str, str | None]]:
        status, body = await api.post("/v1/workflows", json={
            "name": "bad", "settings": settings, "steps": [MAIL]})
        assert status == 422, body
        return [(p["path"], p.get("code")) for p in body["error"]["details"]]
    assert await problems({"quiet_hours": {"start": "9pm", "end": "24:00",
                                           "timezone": "Mars/Olympus", "mode": "later"}}) == [
        ("settings.quiet_hours.start", None), ("settings.quiet_hours.end", None),
        ("settings.quiet_hours.timezone", "unknown_time_zone"),
        ("settings.quiet_hours.mode", None)]
    assert await problems({"quiet_hours": {"start": "21:00"}}) == [
        ("settings.quiet_hours.end", None)]
    assert await problems({"frequency_cap": {"channel": "fax", "max": 0, "per": "PT0S"}}) == [
        ("settings.frequency_cap.channel", None), ("settings.frequency_cap.max", None),
        ("settings.frequency_cap.per", "invalid_duration")]
    assert await problems({"frequency_cap": [
        {"channel": "email", "max": 3, "per": "P1D"}, {"channel": "email", "max": None},
        {"channel": "sms", "max": 2}]}) == [
        ("settings.frequency_cap[2].per", "dependent_required"),
        ("settings.frequency_cap[1].channel", "duplicate_channel")]
    assert await problems({"frequency_cap": "3/P1D"}) == [("settings.frequency_cap", None)]

    good = {"quiet_hours": {"start": "22:00", "end": "07:30", "timezone": "contact"},
            "frequency_cap": [{"channel": "email", "max": 2, "per": "PT12H", "mode": "skip"},
                              {"channel": "push", "max": None}]}
    status, workflow = await api.post("/v1/workflows", json={"name": "ok", "settings": good,
                                                             "steps": [MAIL]})
    assert status == 201 and workflow["settings"] == {
        "reentry": "after_completion", "exit_on": [], **good}
    status, patched = await api.patch(f"/v1/workflows/{workflow['id']}",
                                      json={"settings": {"quiet_hours": None}})
    assert status == 200 and patched["settings"]["quiet_hours"] is None
    status, body = await api.patch(f"/v1/workflows/{workflow['id']}",
                                   json={"settings": {"frequency_cap": {"channel": "sms"}}})
    assert status == 422 and body["error"]["details"][0]["path"] == "settings.frequency_cap.max"


async def test_a_test_run_shows_the_deferral_across_the_dst_changes(aiohttp_client, tmp_path):
    # 22:00 in Berlin the evening before clocks spring forward (2026-03-29, 02:00 → 03:00).
    api, clock = await server(aiohttp_client, tmp_path, "2026-03-28T21:00:00+00:00",
                              quiet_hours_start="21:00", quiet_hours_end="08:00")

    async def dry(settings: dict[str, Any]) -> dict[str, Any]:
        status, result = await api.post("/v1/workflows/test-run", json={
            "definition": {"settings": settings, "steps": [MAIL]},
            "contact": {"email": "b@example.com", "timezone": BERLIN}})
        assert status == 200, result
        return result

    result = await dry({})
    [entry] = result["trace"]
    assert (entry["at"], entry["finished_at"], entry["outcome"]) == (
        "2026-03-28T21:00:00.000Z", "2026-03-29T06:00:00.000Z", "sent")    # 08:00 CEST
    assert entry["output"]["deferred"]["reason"] == "quiet_hours"
    assert [(e["kind"], e["at"]) for e in result["effects"]] == [
        ("email", "2026-03-29T06:00:00.000Z")]
    # An end the gap skips (02:30): the first instant after it, 03:00 CEST.
    gap = await dry({"quiet_hours": {"start": "21:00", "end": "02:30"}})
    assert gap["trace"][0]["finished_at"] == "2026-03-29T01:00:00.000Z"

    # 22:00 CEST the evening before clocks fall back (2026-10-25, 03:00 → 02:00).
    clock.set(ms("2026-10-24T20:00:00+00:00"))
    assert (await dry({}))["trace"][0]["finished_at"] == "2026-10-25T07:00:00.000Z"  # 08:00 CET
    # An end the overlap repeats (02:30): its first occurrence, still CEST.
    overlap = await dry({"quiet_hours": {"start": "21:00", "end": "02:30"}})
    assert overlap["trace"][0]["finished_at"] == "2026-10-25T00:30:00.000Z"


async def test_a_cross_channel_journey_keeps_each_contacts_own_night(aiohttp_client, tmp_path):
    """Push → wait 1 h → email → wait 3 d → SMS for three contacts in three time zones with
    different subscriptions, under quiet hours 21:00–08:00 in each contact's own zone."""
    # 12:00 UTC: 13:00 in Berlin, 04:00 in Los Angeles, 21:00 in Tokyo.
    api, clock = await server(aiohttp_client, tmp_path, "2027-01-15T12:00:00+00:00",
                              quiet_hours_start="21:00", quiet_hours_end="08:00")
    await contact(api, "ann", email="ann@example.com", phone="+4915112345678",
                  timezone="Europe/Berlin", push_tokens=["ann-phone"])
    await contact(api, "bo", email="bo@example.com", phone="+14155550123",
                  timezone="America/Los_Angeles", push_tokens=["bo-phone"],
                  subscribed={"sms": False})
    await contact(api, "cy", email="cy@example.com", phone="+819012345678",
                  timezone="Asia/Tokyo", subscribed={"push": False}, push_tokens=["cy-phone"])
    workflow = await api.workflow({"trigger": {"type": "manual"}, "steps": [
        {"id": "push", "type": "send_push", "config": {"title": "Your cart", "body": "Still there"}},
        {"id": "hour", "type": "wait", "config": {"duration": "PT1H"}},
        {"id": "email", "type": "send_email", "config": {"subject": "Still thinking?",
                                                        "text": "Hi"}},
        {"id": "days", "type": "wait", "config": {"duration": "P3D"}},
        {"id": "sms", "type": "send_sms", "config": {"body": "Last call"}}]})
    runs = {who: await fire(api, workflow, who, "waiting") for who in ("ann", "bo", "cy")}
    # Walk virtual time forward hour by hour until every run has ended (about four days).
    for _ in range(24 * 5):
        statuses = [(await api.run(run["id"]))["status"] for run in runs.values()]
        if all(status == "completed" for status in statuses):
            break
        clock.advance(HOUR)
        await eventually(lambda: _settled(api, runs), 5)
    got = {who: [(m["channel"], m["status"], m["created_at"])
                 for m in sorted(await messages(api, run_id=run["id"]),
                                 key=lambda m: (m["created_at"], m["channel"]))]
           for who, run in runs.items()}
    assert got["ann"] == [     # Berlin, day time: nothing waits
        ("push", "sent", "2027-01-15T12:00:00.000Z"),
        ("email", "sent", "2027-01-15T13:00:00.000Z"),
        ("sms", "sent", "2027-01-18T13:00:00.000Z")]
    assert got["bo"] == [      # Los Angeles, 04:00: the push waits for 08:00 there (16:00 UTC)
        ("push", "sent", "2027-01-15T16:00:00.000Z"),
        ("email", "sent", "2027-01-15T17:00:00.000Z"),
        ("sms", "suppressed", "2027-01-18T17:00:00.000Z")]
    # Tokyo, 21:00: unsubscribed from push, so it is suppressed at once rather than held till
    # morning; an hour later (22:00 there) the email waits for 08:00 (23:00 UTC).
    assert got["cy"] == [
        ("push", "suppressed", "2027-01-15T12:00:00.000Z"),
        ("email", "sent", "2027-01-15T23:00:00.000Z"),
        ("sms", "sent", "2027-01-18T23:00:00.000Z")]


async def _settled(api: Api, runs: dict[str, dict[str, Any]]) -> bool:
    """No run is mid-step: each waits or has ended."""
    for run in runs.values():
        if (await api.run(run["id"]))["status"] not in ("waiting", "completed"):
            return False
    return True


async def test_a_cap_holds_for_sends_at_the_same_moment_from_different_journeys(
        aiohttp_client, tmp_path):
    """One event starts five journeys that each email the contact at once: with a cap of one
    email a day, exactly one goes (the cap's count and the message's record are one step per
    contact and channel, not a read that concurrent sends all pass)."""
    api, _ = await server(aiohttp_client, tmp_path, "2027-01-15T12:00:00+00:00",
                          frequency_cap_email="1/P1D", frequency_cap_mode="skip")
    await contact(api, "u1", email="u1@example.com")
    for _ in range(5):
        await api.workflow({"trigger": {"type": "event", "event": "signed_up"},
                            "steps": [MAIL]})
    started = (await api.send("signed_up", "u1"))["runs_started"]
    assert len(started) == 5
    outcomes = Counter()
    for run_id in started:
        run = await api.run_until(run_id, "completed", "failed")
        outcomes[run["steps"][0]["outcome"]] += 1
    assert outcomes == {"sent": 1, "rate_limited": 4}
    assert len(await messages(api, contact_id="u1", channel="email")) == 1
