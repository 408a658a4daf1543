"""GET /v1/health/delivery: messages per channel over rolling windows, failing workflows first."""

from __future__ import annotations

from flowd.api.middleware import SERVICES
from flowd.store.records import Message, MessageStatus
from tests.conftest import Api, Sink

DAY_MS = 86_400_000


async def _record(api: Api, message_id: str, channel: str, status: MessageStatus,
                  age_ms: int, project: str = "default") -> None:
    services = api.app[SERVICES]
    created = services.clock.now_ms() - age_ms
    message = Message(id=message_id, project_id=project, channel=channel, status=status,
                      recipients=["x"], subject=None, body="hi", content={}, created_at=created)
    await services.store.write(lambda tx: tx.messages.insert(message))


async def test_channels_count_by_status_over_the_last_day_and_week(api: Api) -> None:
    await _record(api, "msg_a", "email", MessageStatus.SENT, age_ms=1000)
    await _record(api, "msg_b", "email", MessageStatus.BOUNCED, age_ms=2 * DAY_MS)
    await _record(api, "msg_c", "sms", MessageStatus.FAILED, age_ms=3600_000)
    await _record(api, "msg_d", "push", MessageStatus.SUPPRESSED, age_ms=8 * DAY_MS)  # too old

    status, health = await api.get("/v1/health/delivery")
    assert status == 200, health
    channels = health["channels"]
    assert set(channels) == {"email", "sms", "push", "slack"}
    assert channels["email"]["24h"] == {"sending": 0, "sent": 1, "failed": 0, "bounced": 0,
                                        "suppressed": 0}
    assert channels["email"]["7d"]["sent"] == 1 and channels["email"]["7d"]["bounced"] == 1
    assert channels["sms"]["24h"]["failed"] == 1 and channels["sms"]["7d"]["failed"] == 1
    assert all(n == 0 for window in channels["push"].values() for n in window.values())
    assert health["workflows"] == []


async def test_workflows_are_listed_worst_first_with_their_failure_rate(api: Api,
                                                                       sink: Sink) -> None:
    sink.statuses = [500, 500, 500]
    sink.status = 200
    failing = await api.workflow({"name": "calls a broken hook", "trigger": {
        "type": "event", "event": "hook.*"}, "steps": [
        {"id": "call", "type": "http_request", "config": {"url": sink.url}}]})
    healthy = await api.workflow({"name": "sets a var", "trigger": {
        "type": "event", "event": "hook.*"}, "steps": [
        {"id": "set", "type": "set", "config": {"vars": {"ok": True}}}]})
    started = []
    for i in range(4):
        result = await api.send("hook.fired", f"u_{i}")
        started.extend(result["runs_started"])
    for run_id in started:
        await api.run_until(run_id, "completed", "failed")

    status, health = await api.get("/v1/health/delivery")
    assert status == 200, health
    rows = {row["workflow_id"]: row for row in health["workflows"]}
    assert [row["workflow_id"] for row in health["workflows"]] == [failing["id"], healthy["id"]]
    assert rows[failing["id"]] == {"workflow_id": failing["id"], "name": "calls a broken hook",
                                   "runs_24h": 4, "runs_failed_24h": 3,
                                   "failure_rate_24h": 0.75}
    assert rows[healthy["id"]]["failure_rate_24h"] == 0.0


async def test_another_projects_messages_and_runs_are_not_counted(api: Api) -> None:
    services = api.app[SERVICES]
    now = services.clock.now_ms()
    await services.store.write(lambda tx: tx.keys.ensure_project("other", now))
    await _record(api, "msg_other", "email", MessageStatus.SENT, age_ms=1000, project="other")
    status, health = await api.get("/v1/health/delivery")
    assert status == 200
    assert health["channels"]["email"]["24h"]["sent"] == 0


async def test_a_viewer_may_read_it_and_an_ingest_key_may_not(api: Api) -> None:
    viewer, ingest = await api.new_key("viewer"), await api.new_key("ingest")
    assert (await api.get("/v1/health/delivery", key=viewer))[0] == 200
    assert (await api.get("/v1/health/delivery", key=ingest))[0] == 403
