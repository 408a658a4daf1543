"""Retention on a real server: old ended runs, events and messages go in small batches while
events keep arriving; waiting runs and the events an open wait may still match stay; the freed
pages go back to the disk. Timing is printed (run with -s), never asserted."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time

import pytest

from flowd.api.middleware import SERVICES
from flowd.app import Services, db_settings
from flowd.bench.seed import ended_runs
from flowd.config import RetentionConfig
from flowd.durations import MS_PER_DAY
from flowd.ids import new_id
from flowd.retention import Retention, RetentionSettings
from flowd.store import SyncStore
from flowd.store.records import Event, RunStatus
from tests.conftest import Api, make_config

WAITS_WITH_LOOKBACK = {
    "trigger": {"type": "event", "event": "signup"},
    "steps": [{"id": "w", "type": "wait_for_event",
               "config": {"event": "paid", "timeout": "P90D", "lookback": "P40D"}}]}
ONE_STEP = {"trigger": {"type": "event", "event": "never"},
            "steps": [{"id": "s", "type": "set", "config": {"vars": {"x": 1}}}]}


@pytest.fixture
def config(tmp_path):
    return dataclasses.replace(make_config(tmp_path), retention=RetentionConfig(
        runs="P30D", events="P30D", messages="P30D"))


def _services(api: Api) -> Services:
    return api.app[SERVICES]


def _old_events(store: SyncStore, ages_days: list[float]) -> None:
    now = int(time.time() * 1000)
    with store.transaction() as tx:
        tx.events.insert([
            Event(id=new_id("evt", now), project_id="default", name="page.viewed",
                  contact_id="u1", properties={}, timestamp=now - int(d * MS_PER_DAY),
                  received_at=now - int(d * MS_PER_DAY), message_id=None)
            for d in ages_days])


def _counts(store: SyncStore) -> dict[str, int]:
    tx = store.read()
    return tx.runs.status_counts("default") | {"events": tx.events.page(
        "default", name="page.viewed", contact_id=None, before=None, limit=100).items.__len__()}


async def _waiting_run(api: Api) -> str:
    await api.workflow(WAITS_WITH_LOOKBACK)
    result = await api.send("signup", "u1")
    [run_id] = result["runs_started"]
    await api.run_until(run_id, "waiting")
    return run_id


async def test_a_pass_deletes_old_ended_runs_and_events_but_keeps_what_a_wait_needs(api: Api):
    waiting = await _waiting_run(api)   # its lookback reaches 40 days back
    workflow = await api.workflow(ONE_STEP)
    path = _services(api).config.storage.path
    ended_runs(path, workflow_id=workflow["id"], version=1, step_id="s", count=300,
               ended_ms_ago=31 * MS_PER_DAY)
    ended_runs(path, workflow_id=workflow["id"], version=1, step_id="s", count=7,
               ended_ms_ago=1 * MS_PER_DAY)
    store = SyncStore(db_settings(_services(api).config))
    try:
        _old_events(store, [45] * 5 + [35] * 4 + [1] * 3)
        size_before = store.read().retention.size()

        report = await _services(api).retention.purge()

        assert (report.runs, report.events) == (300, 5)   # the 35-day-old ones may still match
        counts = _counts(store)
        assert counts["waiting"] == 1 and counts["events"] == 7
        assert counts["completed"] + counts["failed"] + counts["cancelled"] == 7
        assert (await api.run(waiting))["status"] == "waiting"
        assert store.read().runs.trace(waiting)   # its trace is still there
        size_after = store.read().retention.size()
        assert size_after.file_bytes < size_before.file_bytes and report.pages_freed > 0
        assert size_after.freelist_count == 0
        # A second pass finds nothing more.
        again = await _services(api).retention.purge()
        assert again.rows == 0
    finally:
        store.close()


async def test_the_size_cap_deletes_the_oldest_beyond_their_ages(api: Api, tmp_path):
    workflow = await api.workflow(ONE_STEP)
    waiting = await _waiting_run(api)
    path = _services(api).config.storage.path
    ended_runs(path, workflow_id=workflow["id"], version=1, step_id="s", count=3000,
               ended_ms_ago=2 * MS_PER_DAY)   # younger than runs = P30D
    services = _services(api)
    store = SyncStore(db_settings(services.config))
    try:
        used = store.read().retention.size().used_bytes
        cap = used // 2
        retention = Retention(services.store, services.clock, RetentionSettings.of(
            RetentionConfig(runs="P30D", events="", messages="", max_db_size=str(cap))),
            batch=200)
        report = await retention.purge()
        assert report.over_cap and 0 < report.runs < 3000
        assert store.read().retention.size().used_bytes <= cap
        assert (await api.run(waiting))["status"] == "waiting"
    finally:
        store.close()


def _p(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def test_200k_ended_runs_purged_while_events_arrive(api: Api, capsys):
    waiting = await _waiting_run(api)
    workflow = await api.workflow(ONE_STEP)
    services = _services(api)
    seeded = ended_runs(services.config.storage.path, workflow_id=workflow["id"], version=1,
                        step_id="s", count=200_000, ended_ms_ago=40 * MS_PER_DAY)
    store = SyncStore(db_settings(services.config))
    size_before = store.read().retention.size()
    latencies: list[float] = []
    stop = asyncio.Event()

    async def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            status, _ = await api.post("/v1/events", json={"name": "page.viewed",
                                                           "contact_id": f"c{n}-{i % 50}"})
            latencies.append(time.perf_counter() - t0)
            assert status == 202
            i += 1

    async def measure(seconds: float | None, work=None) -> list[float]:
        latencies.clear()
        stop.clear()
        clients = [asyncio.create_task(client(n)) for n in range(8)]
        if work is None:
            await asyncio.sleep(seconds)
            result = None
        else:
            result = await work
        stop.set()
        await asyncio.gather(*clients)
        return list(latencies), result

    baseline, _ = await measure(3.0)
    t0 = time.perf_counter()
    # A hundred times the default batch: the same deletes in a hundredth of the units, so the
    # suite stays short; `python -m flowd bench purge` measures the default pacing's latency.
    purger = Retention(services.store, services.clock,
                       RetentionSettings.of(services.config.retention), batch=1000)
    during, report = await measure(None, purger.purge())
    elapsed = time.perf_counter() - t0
    try:
        assert report.runs == 200_000
        assert (await api.run(waiting))["status"] == "waiting"
        counts = store.read().runs.status_counts("default")
        assert counts["waiting"] == 1 and counts[RunStatus.COMPLETED.value] == 0
        size_after = store.read().retention.size()
        assert size_after.file_bytes < size_before.file_bytes / 2
    finally:
        store.close()
    with capsys.disabled():
        print(f"\nseeded 200,000 ended runs in {seeded:.1f} s; purged in {elapsed:.1f} s "
              f"({200_000 / elapsed:,.0f} runs/s), {report.pages_freed} pages freed, file "
              f"{size_before.file_bytes / 1e6:.1f} → {size_after.file_bytes / 1e6:.1f} MB")
        print(f"event POSTs (8 clients): without purge n={len(baseline)} "
              f"p50={_p(baseline, .5):.1f} ms p99={_p(baseline, .99):.1f} ms; during purge "
              f"n={len(during)} p50={_p(during, .5):.1f} ms p99={_p(during, .99):.1f} ms "
              f"max={max(during) * 1000:.1f} ms mean={statistics.mean(during) * 1000:.1f} ms")
