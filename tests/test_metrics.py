"""GET /metrics: Prometheus text that Prometheus's own parser reads, whose counters move with
the work done; public unless [server] metrics_token is set."""

from __future__ import annotations

import dataclasses

from prometheus_client.parser import text_string_to_metric_families

from flowd.app import create_app
from flowd.config import ServerConfig
from tests.conftest import ADMIN_KEY, Api, make_config

TWO_STEPS = {"trigger": {"type": "event", "event": "signup"},
             "steps": [{"id": "a", "type": "set", "config": {"vars": {"x": 1}}},
                       {"id": "b", "type": "set", "config": {"vars": {"y": 2}}}]}
FAILS = {"trigger": {"type": "event", "event": "breaks"},
         "steps": [{"id": "call", "type": "http_request",
                    "config": {"url": "http://127.0.0.1:9/nothing", "timeout": "PT1S"}}]}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


async def scrape(api: Api, **kw) -> dict[tuple[str, tuple], float]:
    async with api.client.get("/metrics", **kw) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return samples(await resp.text())


async def test_counters_move_with_events_runs_and_steps(api: Api):
    before = await scrape(api)
    assert before[("flowd_events_ingested_total", ())] == 0
    ok = await api.workflow(TWO_STEPS)
    bad = await api.workflow(FAILS)
    started = []
    for i in range(3):
        started += (await api.send("signup", f"u{i}"))["runs_started"]
    started += (await api.send("breaks", "u9"))["runs_started"]
    for run_id in started:
        await api.run_until(run_id, "completed", "failed")

    after = await scrape(api)
    assert after[("flowd_events_ingested_total", ())] == 4
    wf = lambda w: (("workflow_id", w["id"]),)  # noqa: E731
    assert after[("flowd_runs_started_total", wf(ok))] == 3
    assert after[("flowd_runs_completed_total", wf(ok))] == 3
    assert after[("flowd_runs_failed_total", wf(bad))] == 1
    assert after[("flowd_steps_executed_total", ())] >= 7
    assert after[("flowd_commit_seconds_count", ())] > before[("flowd_commit_seconds_count", ())]
    assert after[("flowd_commit_seconds_bucket", (("le", "+Inf"),))] == \
        after[("flowd_commit_seconds_count", ())]
    assert after[("flowd_database_bytes", ())] > 0
    assert ("flowd_wal_bytes", ()) in after and ("flowd_writer_queue_depth", ()) in after
    assert ("flowd_scheduler_lag_seconds_count", ()) in after


async def test_messages_are_counted_by_channel_and_status(api: Api):
    await api.post("/v1/templates", json={"name": "hi", "channel": "email",
                                          "content": {"subject": "Hi", "text": "Hello"}})
    workflow = await api.workflow({
        "trigger": {"type": "event", "event": "signup"},
        "steps": [{"id": "m", "type": "send_email",
                   "config": {"to": "a@example.com", "subject": "Hi", "text": "Hello"}}]})
    [run_id] = (await api.send("signup", "u1"))["runs_started"]
    run = await api.run_until(run_id, "completed", "failed")
    assert run["status"] == "completed", (workflow, run)
    found = await scrape(api)
    assert found[("flowd_messages", (("channel", "email"), ("status", "sent")))] == 1


async def test_a_metrics_token_is_required_once_set(aiohttp_client, tmp_path):
    config = dataclasses.replace(make_config(tmp_path),
                                 server=ServerConfig(metrics_token="scrape-token-1234"))
    api = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {ADMIN_KEY}"}):
        async with api.client.get("/metrics", headers=headers) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "unauthorized"
    found = await scrape(api, headers={"Authorization": "Bearer scrape-token-1234"})
    assert ("flowd_events_ingested_total", ()) in found

