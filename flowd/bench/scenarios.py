"""One function per scenario: each starts its own flowd server on a fresh database, drives it
from this process, and returns its figures as report rows.

Where the time of a figure comes from is part of the figure:
  * "server clock" figures come from the run records and their trace (epoch ms written by the
    server): `runs.created_at`, `runs.completed_at`, `run_steps.started_at/finished_at`, read
    from the database file read-only (see probe.py).
  * "bench clock" figures are taken in this process (`time.perf_counter`, or `time.time` where
    they are compared with the server's epoch ms; both processes share the machine's clock).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import shutil
import statistics
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from flowd.bench import mailsink, seed
from flowd.bench.client import Api
from flowd.bench.cron import cron
from flowd.bench.loadgen import bodies, percentile, run_load
from flowd.bench.mailsink import MailSink
from flowd.bench.report import NOT_INSTALLED, Row
from flowd.bench.server import BenchError, FlowdServer, free_port
from flowd.config import EmailConfig
from flowd.store import Probe
from flowd.store.records import Run
from flowd.timeutil import format_ms, parse_time

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    ingest_s: float            # closed-loop measured seconds (ingest and ingest-batch)
    ingest_warmup_s: float
    open_loop_s: float         # seconds of sends at 1,000/s
    fanout_runs: int
    steps_runs: int
    chain_repeats: int
    timer_runs: int
    wait_runs: int
    wait_queries: int
    recovery_load_s: float     # fanout load before the kill -9
    webhook_runs: int
    email_runs: int            # per provider: SMTP, then the outbox
    bulk_contacts: int         # contacts of one bulk job
    child_runs: int            # parents that each run a child workflow and wait for it
    loop_items: int            # items of the one loop
    loop_repeats: int          # loop runs measured (after one cold run)
    approval_runs: int         # runs waiting at an approval, then decided
    test_runs: int             # time-travel test runs of one 90-day journey
    purge_runs: int            # ended runs retention deletes while events arrive
    audience_contacts: int     # contacts an audience is evaluated over
    audience_calls: int        # measured calls of count, and of the first page
    peer_workflows: int
    peer_repeats: int
    settle_s: float            # the longest any wait for runs to finish may take
    scenario_s: float          # the longest one scenario may take, all in
    cross_channel_runs: int = 2000   # runs of push → email → SMS (three messages each)
    code_runs: int = 10_000          # runs of one trivial code step


QUICK = Sizes(ingest_s=2.0, ingest_warmup_s=0.5, open_loop_s=2.0, fanout_runs=1000,
              steps_runs=100, chain_repeats=3, timer_runs=1000, wait_runs=20_000,
              wait_queries=50, recovery_load_s=1.0, webhook_runs=500, email_runs=300,
              bulk_contacts=10_000, child_runs=500, loop_items=1000, loop_repeats=2,
              approval_runs=500, test_runs=50, purge_runs=20_000,
              audience_contacts=10_000, audience_calls=5,
              peer_workflows=50, peer_repeats=3, settle_s=30.0, scenario_s=90.0,
              cross_channel_runs=300, code_runs=1000)
FULL = Sizes(ingest_s=10.0, ingest_warmup_s=2.0, open_loop_s=5.0, fanout_runs=20_000,
             steps_runs=1000, chain_repeats=10, timer_runs=10_000, wait_runs=1_000_000,
             wait_queries=200, recovery_load_s=3.0, webhook_runs=10_000, email_runs=5000,
             bulk_contacts=100_000, child_runs=1000, loop_items=1000, loop_repeats=5,
             approval_runs=1000, test_runs=200, purge_runs=200_000,
             audience_contacts=100_000, audience_calls=30,
             peer_workflows=1000,
             peer_repeats=5, settle_s=180.0, scenario_s=1200.0)

INGEST_CONNECTIONS = 64
BATCH_CONNECTIONS = 16
OPEN_LOOP_RATE = 1000          # events/s offered by the open-loop latency run
STEPS_PER_RUN = 20
CHAIN_STEPS = 40
TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class Context:
    sizes: Sizes
    synchronous: str
    tmp: Path
    shared: dict[str, Any] = field(default_factory=dict)   # figures one scenario gives another
    other_load: dict[str, float] = field(default_factory=dict)   # cores others used, by scenario

    def say(self, text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ helpers


@asynccontextmanager
async def flowd(ctx: Context, name: str, env: dict[str, str] | None = None
                ) -> AsyncIterator[FlowdServer]:
    """A fresh server for one scenario, always stopped (and its files removed) afterwards;
    `env`: settings of the scenario's own (FLOWD_*), over those this process passes on."""
    workdir = ctx.tmp / name
    workdir.mkdir(parents=True, exist_ok=True)
    server = FlowdServer(workdir, synchronous=ctx.synchronous, env=env)
    try:
        await server.start()
        yield server
        code = await server.stop()
        if code != 0:
            raise BenchError(f"the flowd server exited with status {code} on SIGTERM; its log "
                             f"ends:\n{server.log_tail()}")
    except BaseException:
        text = server.log_tail(8000)
        if "Traceback" in text or " ERROR " in text:
            ctx.say(f"{name}: the server logged errors; its log ends:\n{text}")
        raise
    finally:
        await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def wait_for(condition: Callable[[], T], what: str, timeout_s: float,
                   server: FlowdServer | None = None, interval_s: float = 0.02) -> T:
    deadline = time.perf_counter() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if server is not None:
            server.check_alive()
        if time.perf_counter() > deadline:
            raise BenchError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval_s)


async def settle(probe: Probe, server: FlowdServer, expected: int, timeout_s: float,
                 interval_s: float = 0.1) -> dict[str, int]:
    """Wait until no run is active (all `expected` runs, already stored, have ended); returns
    the status counts. Failed runs raise. The poll interval does not change any figure (their
    times come from the database), only how soon the bench notices."""
    try:
        await wait_for(lambda: probe.active() == 0, f"{expected} runs to end", timeout_s,
                       server, interval_s)
    except BenchError as exc:
        raise BenchError(f"{exc}; runs by status: {probe.status_counts()}") from None
    counts = probe.status_counts()
    if sum(counts[s] for s in TERMINAL) < expected:
        raise BenchError(f"{expected} runs should have ended; runs by status: {counts}")
    if counts["failed"] or counts["cancelled"]:
        raise BenchError(f"runs did not complete: {counts} (see GET /v1/runs?status=failed)")
    return counts


def cpu_note(server: FlowdServer, cpu0: float | None, units: int, unit: str) -> str:
    """"; server CPU N µs per <unit>": the server's CPU time (all its threads) since `cpu0`,
    per unit of work. Steadier than throughput on a machine shared with other work."""
    cpu1 = server.cpu_seconds()
    if cpu0 is None or cpu1 is None or units <= 0:
        return ""
    return f"; server CPU {(cpu1 - cpu0) / units * 1e6:,.0f} µs per {unit}"


async def start_runs(api: Api, batch: list[dict[str, Any]], *, concurrency: int = 4) -> list[str]:
    """POST `batch` (events that each start one run) in requests of 100; the runs started."""
    results = await api.post_events(batch, batch=100, concurrency=concurrency)
    runs = [run_id for result in results for run_id in result["runs_started"]]
    expected = len(batch)
    if len(runs) != expected:
        raise BenchError(f"{expected} events should have started {expected} runs; "
                         f"they started {len(runs)}")
    return runs


def events(name: str, count: int, prefix: str) -> list[dict[str, Any]]:
    return [{"name": name, "contact_id": f"{prefix}-{i}", "properties": {"n": i}}
            for i in range(count)]


def set_steps(count: int) -> list[dict[str, Any]]:
    return [{"id": f"s{i}", "type": "set", "config": {"vars": {f"v{i}": i}}} for i in range(count)]


FANOUT_STEPS = [
    {"id": "profile", "type": "update_contact",
     "config": {"traits": {"last_n": "{{ event.properties.n }}"}, "add_tags": ["bench"]}},
    {"id": "mark", "type": "set", "config": {"vars": {"seen": True}}},
    {"id": "check", "type": "condition",
     "config": {"if": {"field": "vars.seen", "op": "eq", "value": True}}},
]


def ended_run(probe: Probe, run_id: str) -> Run | None:
    run = probe.get_run(run_id)
    return run if run is not None and run.status.value in TERMINAL else None


def _ended_light(probe: Probe, run_id: str) -> tuple[str, int, int | None, str | None] | None:
    found = probe.run_end(run_id)
    return found if found is not None and found[0] in TERMINAL else None


def pct(values: list[float], p: float) -> float:
    return percentile(sorted(values), p)


# ------------------------------------------------------------------ ingest


async def open_loop(url: str, key: str, rate: float, duration_s: float,
                    connections: int) -> dict[str, Any]:
    """Sends on a fixed grid of intended times, whatever the answers do; each latency runs from
    the INTENDED send time to the answer, so a stall counts for every send it delayed."""
    pool = bodies(1, 1000, seed=7)
    count = int(rate * duration_s)
    latencies: list[float] = []
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections), headers=headers,
            timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def send(i: int, intended: float) -> None:
            try:
                async with session.post(url + "/v1/events", data=pool[i % len(pool)]) as resp:
                    raw = await resp.read()
                    if resp.status != 202:
                        failures.append(f"HTTP {resp.status}: {raw[:500].decode(errors='replace')}")
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return
            latencies.append((time.perf_counter() - intended) * 1000)

        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(count):
            intended = start + i / rate
            delay = intended - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i, intended)))
        sent_s = time.perf_counter() - start
        await asyncio.gather(*tasks)
    if failures:
        raise BenchError(f"open-loop ingest: {len(failures)} of {count} requests failed; "
                         f"first: {failures[0]}")
    return {"sent": count, "offered_per_s": count / max(sent_s, 1e-9),
            "p50": pct(latencies, 50), "p99": pct(latencies, 99), "max": max(latencies),
            "latencies": latencies}


async def closed_loop(ctx: Context, server: Any, scenario: str, *, connections: int,
                      batch: int) -> dict[str, Any]:
    """The load generator against `server`; any failed request stops the scenario."""
    result = await run_load(server.url, server.key, connections=connections, batch=batch,
                            duration=ctx.sizes.ingest_s, warmup=ctx.sizes.ingest_warmup_s,
                            server_pid=server.pid)
    if result["errors"]:
        raise BenchError(f"{scenario}: {result['errors']} requests failed; first: "
                         f"{result['first_error']}")
    return result


async def ingest(ctx: Context) -> list[Row]:
    s = ctx.sizes
    async with flowd(ctx, "ingest") as server:
        closed = await closed_loop(ctx, server, "ingest", connections=INGEST_CONNECTIONS, batch=1)
        await asyncio.sleep(0.5)
        opened = await open_loop(server.url, server.key, OPEN_LOOP_RATE, s.open_loop_s,
                                 INGEST_CONNECTIONS)
    cpu = closed["cpu"]
    return [
        Row("ingest", f"events/s, single-event POSTs, {INGEST_CONNECTIONS} connections",
            closed["events_per_s"], "events/s", ">=", 3000,
            note=f"closed loop, {s.ingest_s:g} s after {s.ingest_warmup_s:g} s warm-up; CPU: "
                 f"server {cpu.get('server_cores', '?')} cores, bench {cpu['client_cores']} cores"),
        Row("ingest", "closed-loop latency p99", closed["latency_ms"]["p99"], "ms"),
        Row("ingest", f"open-loop p99 at {OPEN_LOOP_RATE:,}/s offered", opened["p99"], "ms",
            "<=", 25,
            note=f"{opened['sent']} sends on a fixed grid over {s.open_loop_s:g} s "
                 f"({opened['offered_per_s']:.0f}/s achieved); latency from the intended send "
                 f"time; p50 {opened['p50']:.2f} ms, max {opened['max']:.1f} ms"),
    ]


async def ingest_batch(ctx: Context) -> list[Row]:
    async with flowd(ctx, "ingest-batch") as server:
        result = await closed_loop(ctx, server, "ingest-batch", connections=BATCH_CONNECTIONS,
                                   batch=100)
    return [
        Row("ingest-batch", f"events/s, batches of 100, {BATCH_CONNECTIONS} connections",
            result["events_per_s"], "events/s", ">=", 25_000,
            note=f"request p99 {result['latency_ms']['p99']:.1f} ms; server CPU "
                 f"{result['cpu'].get('server_cores', '?')} cores"),
    ]


# ------------------------------------------------------------------ runs


async def fanout(ctx: Context) -> list[Row]:
    n = ctx.sizes.fanout_runs
    async with flowd(ctx, "fanout") as server, Api(server.url, server.key) as api:
        workflow = await api.create_workflow(
            "bench fanout", {"type": "event", "event": "bench.fanout"}, FANOUT_STEPS)
        with Probe(server.db_path) as probe:
            cpu0 = server.cpu_seconds()
            t0_ms = time.time() * 1000
            await start_runs(api, events("bench.fanout", n, "fan"))
            posted_s = (time.time() * 1000 - t0_ms) / 1000
            await settle(probe, server, n, ctx.sizes.settle_s)
            cpu = cpu_note(server, cpu0, n, "run (event, run and its 3 steps)")
            runs, _, last_completed, completed = probe.run_window(workflow["id"])
    window_s = (last_completed - t0_ms) / 1000
    return [
        Row("fanout", "runs/s started and completed (3 steps each)", n / window_s, "runs/s",
            ">=", 2000,
            note=f"{n:,} events in batches of 100, 4 at a time; from the first POST (bench clock) "
                 f"to the last run's completed_at (server clock): {window_s:.2f} s; the events "
                 f"were all acknowledged after {posted_s:.2f} s{cpu}"),
    ]


async def steps(ctx: Context) -> list[Row]:
    n = ctx.sizes.steps_runs
    async with flowd(ctx, "steps") as server, Api(server.url, server.key) as api:
        workflow = await api.create_workflow(
            "bench steps", {"type": "event", "event": "bench.steps"}, set_steps(STEPS_PER_RUN))
        with Probe(server.db_path) as probe:
            cpu0 = server.cpu_seconds()
            t0 = time.perf_counter()
            await start_runs(api, events("bench.steps", n, "steps"), concurrency=10)
            await settle(probe, server, n, ctx.sizes.settle_s, interval_s=0.01)
            client_s = time.perf_counter() - t0
            cpu = cpu_note(server, cpu0, n * STEPS_PER_RUN, "step (events and runs included)")
            runs, first_created, last_completed, completed = probe.run_window(workflow["id"])
            committed = probe.committed_steps(workflow["id"])
    if committed != n * STEPS_PER_RUN:
        raise BenchError(f"expected {n * STEPS_PER_RUN} committed steps, the trace has {committed}")
    window_s = (last_completed - first_created) / 1000
    rate = committed / window_s
    ctx.shared["steps_per_s"] = rate
    return [
        Row("steps", f"steps/s, {n:,} concurrent runs × {STEPS_PER_RUN} set steps", rate,
            "steps/s", ">=", 10_000,
            note=f"{committed:,} committed trace entries over first created_at → last "
                 f"completed_at (server clock) = {window_s:.3f} s; bench clock, first POST → "
                 f"all seen completed: {committed / client_s:,.0f} steps/s{cpu}"),
    ]


async def chain(ctx: Context) -> list[Row]:
    repeats = ctx.sizes.chain_repeats
    server_ms: list[float] = []
    client_ms: list[float] = []
    async with flowd(ctx, "chain") as server, Api(server.url, server.key) as api:
        workflow = await api.create_workflow("bench chain", {"type": "manual"},
                                             set_steps(CHAIN_STEPS))
        with Probe(server.db_path) as probe:
            for i in range(repeats + 1):   # the first is a cold start, reported apart
                t0 = time.perf_counter()
                run = await api.call("POST", f"/v1/workflows/{workflow['id']}/runs",
                                     {"contact_id": f"chain-{i}"}, expect=(201,))
                done = await wait_for(partial(ended_run, probe, run["id"]),
                                      "the chain run to end", 30, server, interval_s=0.0005)
                client_ms.append((time.perf_counter() - t0) * 1000)
                if done.status.value != "completed" or done.completed_at is None:
                    raise BenchError(f"the chain run ended {done.status.value}: {done.error}")
                server_ms.append(done.completed_at - done.created_at)
    median = statistics.median(server_ms[1:])
    ctx.shared["chain_ms"] = median
    ctx.shared["chain_client_ms"] = statistics.median(client_ms[1:])
    return [
        Row("chain", f"one run of {CHAIN_STEPS} set steps, wall (server clock)", median, "ms",
            "<=", 40,
            note=f"median of {repeats} runs fired with POST /v1/workflows/{{id}}/runs, "
                 f"created_at → completed_at; min {min(server_ms[1:]):.0f} ms; the first (cold) "
                 f"run {server_ms[0]:.0f} ms"),
        Row("chain", "same, client-observed (POST → seen completed)",
            ctx.shared["chain_client_ms"], "ms"),
    ]


async def timers(ctx: Context) -> list[Row]:
    n = ctx.sizes.timer_runs
    # "Due in the same second": run i's wait ends i/n of a second after `second_ms`, which is
    # far enough ahead that every run is waiting before it (at ≥ 1,000 runs/s of setup).
    second_ms = int(time.time() * 1000 + 2000 + n)
    batch = [{"name": "bench.timer", "contact_id": f"timer-{i}",
              "properties": {"due": format_ms(second_ms + i * 1000 // n)}} for i in range(n)]
    async with flowd(ctx, "timers") as server, Api(server.url, server.key) as api:
        workflow = await api.create_workflow(
            "bench timers", {"type": "event", "event": "bench.timer"},
            [{"id": "wait", "type": "wait", "config": {"until": "{{ event.properties.due }}"}},
             {"id": "done", "type": "set", "config": {"vars": {"done": True}}}])
        with Probe(server.db_path) as probe:
            await start_runs(api, batch)
            margin_s = (second_ms - time.time() * 1000) / 1000 - 0.05
            if margin_s <= 0:
                raise BenchError("setup too slow: the runs were not all started before they "
                                 "came due")
            await wait_for(lambda: probe.status_counts()["waiting"] >= n,
                           f"{n} runs to be waiting", margin_s, server)
            ahead_ms = second_ms - time.time() * 1000
            if ahead_ms <= 0:
                raise BenchError("setup too slow: the runs were not all waiting before they "
                                 "came due")
            # Stay off the machine while they fire.
            cpu0 = server.cpu_seconds()
            await asyncio.sleep(ahead_ms / 1000 + 1.5)
            await settle(probe, server, n, ctx.sizes.settle_s)
            cpu = cpu_note(server, cpu0, n, "run (the wait's end, the set step, the run's end)")
            lateness = [finished - parse_time(step_input["until"])
                        for finished, step_input in probe.step_ends(workflow["id"], "wait")]
            _, _, last_completed, _ = probe.run_window(workflow["id"])
    if len(lateness) != n:
        raise BenchError(f"{n} waits should have ended; the trace has {len(lateness)}")
    return [
        Row("timers", f"lateness p50, {n:,} runs due across one second", pct(lateness, 50), "ms",
            "<=", 5,
            note=f"run i of n is due i/n s into the second; lateness = the wait step's "
                 f"finished_at (trace) − the run's due time; all runs were waiting "
                 f"{ahead_ms / 1000:.1f} s before the second; min {min(lateness):,.0f} ms, "
                 f"max {max(lateness):,.0f} ms"),
        Row("timers", "lateness p99", pct(lateness, 99), "ms", "<=", 50),
        Row("timers", "last run completed, from the start of the second",
            (last_completed - second_ms) / 1000, "s", "<=", 1.5,
            note=f"completed = its next step (a set) committed and the run ended{cpu}"),
    ]


async def wait_scale(ctx: Context) -> list[Row]:
    s = ctx.sizes
    n = s.wait_runs
    wait_config = {"duration": "P1D"}
    async with flowd(ctx, "wait-scale") as server:
        async with Api(server.url, server.key) as api:
            workflow = await api.create_workflow(
                "bench wait-scale", {"type": "event", "event": "bench.never"},
                [{"id": "wait", "type": "wait", "config": wait_config},
                 {"id": "done", "type": "set", "config": {"vars": {"done": True}}}])
        code = await server.stop()
        if code != 0:
            raise BenchError(f"the server exited with status {code} on SIGTERM")
        ctx.say(f"wait-scale: inserting {n:,} waiting runs through the store's bulk path")
        insert_s = await asyncio.to_thread(
            seed.waiting_runs, server.db_path, workflow_id=workflow["id"],
            version=workflow["version"], wait_step="wait", wait_config=wait_config, count=n,
            due_in_ms=86_400_000, synchronous=ctx.synchronous)
        serving_s = await server.start()
        rss_serving = server.rss_mb()
        latencies: list[float] = []
        async with Api(server.url, server.key) as api:
            cursor = None
            base = f"/v1/runs?workflow_id={workflow['id']}&limit=50"
            for i in range(s.wait_queries):
                if i % 10 == 0:
                    cursor = None   # walk ten pages from the newest, then start again
                path = base + (f"&cursor={cursor}" if cursor else "")
                ms, page = await api.timed("GET", path, expect=(200,))
                if len(page["data"]) != 50:
                    raise BenchError(f"GET {path} returned {len(page['data'])} runs, not 50")
                latencies.append(ms)
                cursor = page["next_cursor"]
        rss_after = server.rss_mb()
        peak = server.peak_rss_mb()
        with Probe(server.db_path) as probe:
            waiting = probe.status_counts()["waiting"]
    if waiting != n:
        raise BenchError(f"{n} runs should be waiting; {waiting} are")
    rss_note = (f"VmHWM (peak) of the restarted server; VmRSS {rss_serving:.0f} MB when serving, "
                f"{rss_after:.0f} MB after the list queries" if rss_serving and rss_after else "")
    return [
        Row("wait-scale", f"server RSS (peak) with {n:,} runs waiting", peak, "MB", "<=", 300,
            note=rss_note),
        Row("wait-scale", "restart to serving (spawn → first 200 /healthz)", serving_s, "s",
            "<=", 2, note=f"seeding {n:,} runs + trace rows took {insert_s:.1f} s (not counted)"),
        Row("wait-scale", "GET /v1/runs?workflow_id=…&limit=50 p99", pct(latencies, 99), "ms",
            "<=", 50, note=f"{len(latencies)} sequential requests, ten cursor pages per walk; "
                           f"p50 {pct(latencies, 50):.1f} ms"),
    ]


async def recovery(ctx: Context) -> list[Row]:
    s = ctx.sizes
    acked_events: list[str] = []
    acked_runs: list[str] = []
    killing = False
    async with flowd(ctx, "recovery") as server:
        async with Api(server.url, server.key) as api:
            await api.create_workflow("bench recovery", {"type": "event", "event": "bench.fanout"},
                                      FANOUT_STEPS)
            deadline = time.perf_counter() + s.recovery_load_s + 30

            async def load(worker: int) -> None:
                for i in range(1_000_000):
                    if killing or time.perf_counter() > deadline:
                        return
                    batch = [{"name": "bench.fanout", "contact_id": f"rec-{worker}-{i}-{k}"}
                             for k in range(100)]
                    try:
                        answer = await api.call("POST", "/v1/events", {"batch": batch},
                                                expect=(202,))
                    except BenchError:
                        if killing:
                            return   # the kill cut it off: it was never acknowledged
                        raise
                    for result in answer["data"]:   # a 202: acknowledged, must survive
                        acked_events.append(result["id"])
                        acked_runs.extend(result["runs_started"])

            loaders = [asyncio.create_task(load(w)) for w in range(4)]
            try:
                await asyncio.sleep(s.recovery_load_s)
                for task in loaders:
                    if task.done():
                        task.result()   # a loader that failed before the kill
                killing = True
                await server.kill9()
                await asyncio.gather(*loaders)
            finally:
                killing = True
                for task in loaders:
                    task.cancel()
                await asyncio.gather(*loaders, return_exceptions=True)
        with Probe(server.db_path) as probe:
            in_flight = probe.active()
        ctx.say(f"recovery: killed with {len(acked_events):,} events acknowledged and "
                f"{in_flight:,} runs in flight; restarting")
        serving_s = await server.start()
        with Probe(server.db_path) as probe:
            first_ms = None
            if in_flight:
                first = await wait_for(lambda: probe.first_step_started_since(server.spawned_at_ms),
                                       "a step after the restart", 30, server, interval_s=0.005)
                first_ms = first - server.spawned_at_ms
            stuck_deadline = time.perf_counter() + s.settle_s
            while probe.active() and time.perf_counter() < stuck_deadline:
                server.check_alive()
                await asyncio.sleep(0.1)
            stuck = probe.active()
            counts = probe.status_counts()
            lost_events = probe.missing_ids("events", acked_events)
            lost_runs = probe.missing_ids("runs", acked_runs)
    if first_ms is None:
        raise BenchError("no run was in flight at the kill: the load was too light to measure "
                         "recovery")
    failed = counts["failed"]
    return [
        Row("recovery", "first step dispatched after restart (from spawn)", first_ms, "ms",
            "<=", 1000,
            note=f"kill -9 after {s.recovery_load_s:g} s of fanout load with {in_flight:,} runs "
                 f"in flight; spawn → serving {serving_s * 1000:.0f} ms; first run_steps."
                 f"started_at after the spawn (both wall clock)"),
        Row("recovery", "acknowledged events lost", len(lost_events), "events", "<=", 0,
            note=f"of {len(acked_events):,} acknowledged (202); acknowledged runs missing: "
                 f"{len(lost_runs)}; runs failed: {failed}"),
        Row("recovery", "runs stuck (not ended within the settle time)", stuck, "runs", "<=", 0,
            note=f"after up to {s.settle_s:g} s; final counts {counts}"),
    ]


# ------------------------------------------------------------------ webhooks


class Sink:
    """A keep-alive HTTP receiver on 127.0.0.1 that checks every delivery's Standard Webhooks
    signature and counts distinct webhook-ids."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.ids: set[str] = set()
        self.deliveries = 0
        self.bad: list[str] = []
        self.last_at = 0.0
        self.all_in = asyncio.Event()
        self.secrets: list[bytes] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}/hook"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _verify(self, request: web.Request, body: bytes) -> bool:
        msg_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "")
        given = {part.split(",", 1)[1] for part in
                 request.headers.get("webhook-signature", "").split() if part.startswith("v1,")}
        signed = f"{msg_id}.{stamp}.".encode() + body
        return any(base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
                   in given for key in self.secrets)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.deliveries += 1
        if not self._verify(request, body):
            self.bad.append(request.headers.get("webhook-id", "?"))
        self.ids.add(request.headers.get("webhook-id", ""))
        self.last_at = time.perf_counter()
        if len(self.ids) >= self.expected:
            self.all_in.set()
        return web.json_response({"ok": True})


async def webhooks(ctx: Context) -> list[Row]:
    n = ctx.sizes.webhook_runs
    sink = Sink(n)
    try:
        url = await sink.start()
        async with flowd(ctx, "webhooks") as server, Api(server.url, server.key) as api:
            secret = (await api.call("GET", "/v1/settings/webhook-secret"))["secret"]
            sink.secrets = [base64.b64decode(s.removeprefix("whsec_")) for s in secret.split()]
            await api.create_workflow(
                "bench webhooks", {"type": "event", "event": "bench.hook"},
                [{"id": "hook", "type": "webhook",
                  "config": {"url": url, "body": {"run": "{{ run.id }}", "n": "{{ event.properties.n }}"}}}])
            with Probe(server.db_path) as probe:
                cpu0 = server.cpu_seconds()
                t0 = time.perf_counter()
                await start_runs(api, events("bench.hook", n, "hook"))
                try:
                    await asyncio.wait_for(sink.all_in.wait(), ctx.sizes.settle_s)
                except asyncio.TimeoutError:
                    raise BenchError(f"only {len(sink.ids)} of {n} webhooks arrived within "
                                     f"{ctx.sizes.settle_s:g} s") from None
                window_s = sink.last_at - t0
                await settle(probe, server, n, ctx.sizes.settle_s)
                cpu = cpu_note(server, cpu0, n, "delivery (event, run, signed call, commit)")
    finally:
        await sink.close()
    if sink.bad:
        raise BenchError(f"{len(sink.bad)} webhook deliveries had no valid signature, e.g. "
                         f"{sink.bad[0]}")
    return [
        Row("webhooks", "signed webhook deliveries/s to a keep-alive sink", len(sink.ids) / window_s,
            "deliveries/s", ">=", 1500,
            note=f"{n:,} runs of one webhook step; first event POST → last delivery (bench "
                 f"clock) {window_s:.2f} s; every signature verified; {sink.deliveries - len(sink.ids)} "
                 f"repeated deliveries{cpu}"),
    ]


# ------------------------------------------------------------------ bulk runs


async def bulk_job(api: Api, workflow_id: str, n: int, timeout_s: float
                   ) -> tuple[float, list[float], dict[str, Any]]:
    """Create a job over `n` contacts awaiting approval, approve it, and follow it to its end:
    (seconds from the approval (bench clock) to finished_at (server clock), GET latencies in
    ms while it ran, the finished job)."""
    ids = [f"b{i}" for i in range(n)]   # ≤ 10 bytes of JSON each: 100,000 fit in 1 MiB
    job = await api.call("POST", f"/v1/workflows/{workflow_id}/bulk-runs",
                         {"contact_ids": ids, "require_approval": True}, expect=(201,))
    t0_ms = time.time() * 1000
    await api.call("PATCH", f"/v1/bulk-jobs/{job['id']}", {"action": "approve"})
    latencies: list[float] = []
    deadline = time.perf_counter() + timeout_s
    while True:
        latency, job = await api.timed("GET", f"/v1/bulk-jobs/{job['id']}")
        latencies.append(latency)
        if job["status"] != "running":
            break
        if time.perf_counter() > deadline:
            raise BenchError(f"the bulk job did not finish within {timeout_s:g} s: {job}")
        await asyncio.sleep(0.02)
    if (job["status"], job["started"], job["skipped"]) != ("finished", n, 0):
        raise BenchError(f"the bulk job should have started all {n} contacts: {job}")
    return (parse_time(job["finished_at"]) - t0_ms) / 1000, latencies, job


async def bulk(ctx: Context) -> list[Row]:
    n = ctx.sizes.bulk_contacts
    rows = []
    async with flowd(ctx, "bulk") as server, Api(server.url, server.key) as api:
        for paused in (True, False):
            workflow = await api.create_workflow(
                f"bench bulk {paused}", {"type": "manual"},
                [{"id": "w", "type": "wait", "config": {"duration": "P1D"}}])
            if paused:
                await api.call("POST", f"/v1/workflows/{workflow['id']}/pause")
            cpu0 = server.cpu_seconds()
            window_s, latencies, _ = await bulk_job(api, workflow["id"], n, ctx.sizes.settle_s)
            cpu = cpu_note(server, cpu0, n, "contact")
            what = ("into a paused workflow (the job alone: reentry check, run insert, cursor)"
                    if paused else "while the runs execute (each takes one wait step)")
            rows.append(Row(
                "bulk", f"contacts/s enrolled by a bulk job {what}", n / window_s,
                "contacts/s", ">=", 10_000 if paused else 3000,
                note=f"{n:,} contacts, chunks of 500; approval (bench clock) → finished_at "
                     f"(server clock) {window_s:.2f} s; GET /v1/bulk-jobs meanwhile p50 "
                     f"{pct(latencies, 50):.1f} ms, max {max(latencies):.1f} ms{cpu}"))
    return rows


# ------------------------------------------------------------------ orchestration

CHILD_STEPS = 3
APPROVAL_CONNECTIONS = 32


async def children(ctx: Context) -> list[Row]:
    """Parents started by events (batches of 100, 4 requests at a time), each running a child
    workflow of three set steps and waiting for it: the child's end wakes the parent."""
    n = ctx.sizes.child_runs
    async with flowd(ctx, "children") as server, Api(server.url, server.key) as api:
        child = await api.create_workflow("bench child", {"type": "manual"},
                                          set_steps(CHILD_STEPS))
        parent = await api.create_workflow(
            "bench parent", {"type": "event", "event": "bench.parent"},
            [{"id": "call", "type": "run_workflow",
              "config": {"workflow": child["id"], "input": {"n": "{{ event.properties.n }}"},
                         "wait": True},
              "next": {"completed": "after", "failed": None}},
             {"id": "after", "type": "set",
              "config": {"vars": {"child_done": True}}, "next": None}])
        with Probe(server.db_path) as probe:
            cpu0 = server.cpu_seconds()
            t0_ms = time.time() * 1000
            await start_runs(api, events("bench.parent", n, "parent"))
            posted_s = (time.time() * 1000 - t0_ms) / 1000
            await settle(probe, server, 2 * n, ctx.sizes.settle_s, interval_s=0.02)
            cpu = cpu_note(server, cpu0, n, "pair (event, parent run with 2 steps, child run "
                                            "with 3 steps, the wake)")
            parents, first_created, last_completed, parents_done = probe.run_window(parent["id"])
            kids, _, kids_last, kids_done = probe.run_window(child["id"])
            afters = len(probe.step_ends(parent["id"], "after"))
    if (parents, parents_done, kids, kids_done, afters) != (n, n, n, n, n):
        raise BenchError(f"{n} parents and {n} children should have completed, each parent "
                         f"along `completed`: parents {parents_done}/{parents}, children "
                         f"{kids_done}/{kids}, parents past the child {afters}")
    window_s = (last_completed - t0_ms) / 1000
    server_s = (last_completed - first_created) / 1000
    return [
        Row("children", f"parent+child pairs/s, {n:,} parents each waiting for a "
                        f"{CHILD_STEPS}-step child", n / window_s, "pairs/s", ">=", 1000,
            note=f"parents fired by {n:,} events in batches of 100, 4 requests at a time "
                 f"(acknowledged after {posted_s:.2f} s); first POST (bench clock) → last "
                 f"parent's completed_at (server clock) {window_s:.2f} s; first parent "
                 f"created_at → last completed_at {server_s:.2f} s (server clock); all "
                 f"{n:,} children completed and every parent went on along `completed`{cpu}"),
    ]


LOOP_ITEM = {"sku": "sku-00000", "qty": 1}


async def loop(ctx: Context) -> list[Row]:
    """One run whose loop takes 1,000 items from its fire payload, a set step as the body: the
    whole loop is 2n+1 committed steps (n visits `each`, n bodies, one `done`)."""
    s = ctx.sizes
    n = s.loop_items
    items = [{**LOOP_ITEM, "sku": f"sku-{i:05d}", "qty": i % 5 + 1} for i in range(n)]
    server_ms: list[float] = []
    client_ms: list[float] = []
    cpu_us: list[float] = []
    async with flowd(ctx, "loop") as server, Api(server.url, server.key) as api:
        workflow = await api.create_workflow("bench loop", {"type": "manual"}, [
            {"id": "each", "type": "loop",
             "config": {"items": "{{ event.properties.items }}", "max_items": n},
             "next": {"each": "body", "done": None}},
            {"id": "body", "type": "set",
             "config": {"vars": {"last_sku": "{{ loop.item.sku }}",
                                 "last_index": "{{ loop.index }}"}}, "next": "each"}])
        with Probe(server.db_path) as probe:
            for i in range(s.loop_repeats + 1):   # the first is a cold start, reported apart
                cpu0 = server.cpu_seconds()
                t0 = time.perf_counter()
                run = await api.call("POST", f"/v1/workflows/{workflow['id']}/runs",
                                     {"contact_id": f"loop-{i}", "payload": {"items": items}},
                                     expect=(201,))
                # The light poll: decoding the run's whole row (its 1,000 items) every few ms
                # would take a core from the server being measured.
                status, created_at, completed_at, error = await wait_for(
                    partial(_ended_light, probe, run["id"]), "the loop run to end", s.settle_s,
                    server, interval_s=0.002)
                client_ms.append((time.perf_counter() - t0) * 1000)
                cpu1 = server.cpu_seconds()
                if status != "completed" or completed_at is None:
                    raise BenchError(f"the loop run ended {status}: {error}")
                server_ms.append(completed_at - created_at)
                if cpu0 is not None and cpu1 is not None:
                    cpu_us.append((cpu1 - cpu0) / n * 1e6)
            committed = probe.committed_steps(workflow["id"])
    expected = (s.loop_repeats + 1) * (2 * n + 1)
    if committed != expected:
        raise BenchError(f"expected {expected} committed steps ({2 * n + 1} a run), the trace "
                         f"has {committed}")
    measured = server_ms[1:]
    median = statistics.median(measured)
    cpu = (f"; server CPU {statistics.median(cpu_us[1:]):,.0f} µs per iteration (median; fire "
           f"→ seen completed, the run's POST included)" if len(cpu_us) > 1 else "")
    return [
        Row("loop", f"one run, a loop of {n:,} items with a set step body, wall (server clock)",
            median, "ms", "<=", 250,
            note=f"median of {len(measured)} runs fired with POST /v1/workflows/{{id}}/runs, the "
                 f"items (objects of 2 fields) in the payload; created_at → completed_at, "
                 f"{2 * n + 1:,} committed steps each; min {min(measured):.0f} ms, max "
                 f"{max(measured):.0f} ms; the first (cold) run {server_ms[0]:.0f} ms; "
                 f"{median / n * 1000:,.0f} µs per iteration; client-observed (POST → seen "
                 f"completed) median {statistics.median(client_ms[1:]):.0f} ms{cpu}"),
    ]


async def approval_urls(api: Api, workflow_id: str, n: int) -> list[str]:
    """The approval link of each of the workflow's `n` waiting runs, from their traces (one
    streamed export)."""
    document = await api.call("GET", f"/v1/workflows/{workflow_id}/runs/export?status=waiting",
                              expect=(200,))
    urls = [entry["output"]["approval_url"] for run in document["runs"]
            for entry in run["steps"] if entry["step_id"] == "ask" and entry["status"] == "waiting"]
    if len(urls) != n:
        raise BenchError(f"{n} runs should be waiting at their approval; the export has "
                         f"{len(urls)} approval links")
    return urls


async def decide_all(base_url: str, paths: list[str], connections: int
                     ) -> tuple[float, float, list[float]]:
    """POST an approving decision to every path, `connections` at a time, without an API key
    (the token is the capability): (first sent, last answered) on the bench's epoch clock,
    each request's latency in ms."""
    latencies: list[float] = []
    pending = iter(paths)
    body = b'{"decision":"approved","comment":"bench"}'
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker() -> None:
            for path in pending:
                t0 = time.perf_counter()
                try:
                    async with session.post(base_url + path, data=body) as resp:
                        raw = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    raise BenchError(f"POST {path}: {type(exc).__name__}: {exc}") from None
                if status != 200:
                    raise BenchError(f"POST {path}: HTTP {status}: "
                                     f"{raw[:500].decode(errors='replace')}")
                latencies.append((time.perf_counter() - t0) * 1000)

        start = time.time()
        await asyncio.gather(*(worker() for _ in range(connections)))
        end = time.time()
    return start, end, latencies


async def approvals(ctx: Context) -> list[Row]:
    """Runs waiting at an approval step (no approvers: no email), then every one decided by a
    POST to its link, 32 connections at a time."""
    n = ctx.sizes.approval_runs
    async with flowd(ctx, "approvals") as server, Api(server.url, server.key) as api:
        workflow = await api.create_workflow(
            "bench approvals", {"type": "event", "event": "bench.approval"},
            [{"id": "ask", "type": "approval",
              "config": {"message": "Ship order {{ event.properties.n }}?", "expires": "P7D"},
              "next": {"approved": "ship", "rejected": None, "expired": None}},
             {"id": "ship", "type": "set", "config": {"vars": {"shipped": True}}, "next": None}])
        with Probe(server.db_path) as probe:
            await start_runs(api, events("bench.approval", n, "apv"))
            await wait_for(lambda: probe.status_counts()["waiting"] >= n,
                           f"{n} runs to wait at their approval", ctx.sizes.settle_s, server)
            urls = await approval_urls(api, workflow["id"], n)
            paths = [urlsplit(url).path for url in urls]
            cpu0 = server.cpu_seconds()
            first_s, last_s, latencies = await decide_all(server.url, paths,
                                                            APPROVAL_CONNECTIONS)
            cpu_posts = cpu_note(server, cpu0, n, "decision (the POST phase)")
            await settle(probe, server, n, ctx.sizes.settle_s, interval_s=0.02)
            cpu_all = cpu_note(server, cpu0, n, "decision with the run's rest (POST → run "
                                                "completed)")
            _, _, last_completed, completed = probe.run_window(workflow["id"])
            shipped = len(probe.step_ends(workflow["id"], "ship"))
    if (completed, shipped) != (n, n):
        raise BenchError(f"{n} runs should have completed along `approved`: {completed} "
                         f"completed, {shipped} shipped")
    window_s = last_s - first_s
    after_ms = last_completed - last_s * 1000
    return [
        Row("approvals", f"approval decisions/s, POSTs to {n:,} links, "
                         f"{APPROVAL_CONNECTIONS} connections", n / window_s, "decisions/s",
            ">=", 1000,
            note=f"{n:,} runs waiting at an approval step (no approvers, no email), each "
                 f"link POSTed once with {{\"decision\": \"approved\"}} and no API key; first "
                 f"POST sent → last answered (bench clock) {window_s:.2f} s; POST p50 "
                 f"{pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms{cpu_posts}"),
        Row("approvals", "last run completed, after the last decision answered",
            after_ms, "ms",
            note=f"the last run's completed_at (server clock) − the last POST's answer (bench "
                 f"clock); each decided run goes on through one set step and ends{cpu_all}"),
    ]


# ------------------------------------------------------------------ email

# What a journey's email looks like: a subject and both parts from the contact's traits, one
# link; with the default settings its html gets a tracked link and an open pixel, and every
# message a List-Unsubscribe header (an unsubscribe token stored with the message record).
EMAIL_STEP = {"id": "mail", "type": "send_email", "config": {
    "subject": "Hi {{ contact.traits.first_name }}",
    "html": "<p>Hello {{ contact.traits.first_name }}, your order is on its way. "
            "<a href=\"https://example.com/orders\">Follow it</a></p>",
    "text": "Hello {{ contact.traits.first_name }}, your order is on its way: "
            "https://example.com/orders"}}
EMAIL_UNIT = "email (event with its contact, run, message record, send, outcome, run's end)"


def email_events(count: int, prefix: str) -> list[dict[str, Any]]:
    """Events that each start one run, for a contact (upserted by the event) with an email."""
    return [{"name": "bench.email", "contact_id": f"{prefix}-{i}",
             "contact": {"email": f"{prefix}-{i}@example.com",
                         "traits": {"first_name": f"Ada{i}"}}} for i in range(count)]


async def sent_times(api: Api) -> list[int]:
    """sent_at (server clock, epoch ms) of every message recorded sent, from GET /v1/messages:
    the record is what says an email went out, whatever the provider."""
    times: list[int] = []
    cursor = None
    while True:
        page = await api.call("GET", "/v1/messages?status=sent&limit=100"
                              + (f"&cursor={cursor}" if cursor else ""), expect=(200,))
        times.extend(parse_time(m["sent_at"]) for m in page["data"])
        cursor = page["next_cursor"]
        if not cursor or not page["data"]:
            return times


async def send_emails(ctx: Context, name: str, env: dict[str, str],
                      sink: MailSink | None = None) -> dict[str, Any]:
    """`email_runs` runs of one send_email step on a fresh server with `env`'s provider; checks
    that every message was recorded sent (and, with a sink, arrived there once)."""
    n = ctx.sizes.email_runs
    async with flowd(ctx, name, env) as server, Api(server.url, server.key) as api:
        workflow = await api.create_workflow(
            "bench email", {"type": "event", "event": "bench.email"}, [EMAIL_STEP])
        batch = email_events(n, name)
        with Probe(server.db_path) as probe:
            cpu0 = server.cpu_seconds()
            sink_cpu0 = None if sink is None else sink.cpu_seconds()
            t0_ms = time.time() * 1000
            await start_runs(api, batch)
            posted_s = (time.time() * 1000 - t0_ms) / 1000
            await settle(probe, server, n, ctx.sizes.settle_s, interval_s=0.05)
            cpu = cpu_note(server, cpu0, n, EMAIL_UNIT)
            sink_cpu1 = None if sink is None else sink.cpu_seconds()
            _, _, last_completed, _ = probe.run_window(workflow["id"])
        sent = await sent_times(api)
        received = None if sink is None else await sink.stats()
    if len(sent) != n:
        raise BenchError(f"{n} messages should have been recorded sent; {len(sent)} were "
                         f"(see GET /v1/messages?status=…)")
    if received is not None and received["distinct"] != n:
        raise BenchError(f"the SMTP server received {received['distinct']} distinct messages "
                         f"of the {n} recorded sent ({received['messages']} in all)")
    sink_note = ""
    if received is not None and sink_cpu0 is not None and sink_cpu1 is not None:
        sink_note = (f"; the SMTP server (aiosmtpd, its own process, on the same cores) used "
                     f"{(sink_cpu1 - sink_cpu0) / n * 1e6:,.0f} µs CPU per message, "
                     f"{received['sessions']} sessions, "
                     f"{received['messages'] - received['distinct']} repeated messages")
    window_s = (max(sent) - t0_ms) / 1000
    return {"rate": n / window_s, "window_s": window_s, "posted_s": posted_s,
            "runs_s": (last_completed - t0_ms) / 1000, "cpu": cpu, "sink": sink_note}


async def email(ctx: Context) -> list[Row]:
    """The same journey twice, each on a fresh server: through SMTP to an aiosmtpd in a process
    of its own (its CPU is not flowd's, and is reported apart), then to the outbox, which sends
    nothing — the difference between the two is what delivery over SMTP costs flowd."""
    n = ctx.sizes.email_runs
    # The pool size the server gets: FLOWD_EMAIL_CONNECTIONS passes through, so it can be varied.
    connections = os.environ.get("FLOWD_EMAIL_CONNECTIONS") or EmailConfig().connections
    smtp_figure = f"emails/s through SMTP (aiosmtpd), {connections} connections"
    how = (f"{n:,} runs of one send_email step (subject, text and html from the contact's "
           f"traits; tracked link, open pixel, unsubscribe header), events in batches of 100, "
           f"4 at a time; from the first POST (bench clock) to the last message's sent_at "
           f"(server clock)")
    rows: list[Row] = []
    version = mailsink.installed_version()
    if version is None:
        rows.append(Row("email", smtp_figure, None, "emails/s", ">=", 1000,
                        status=NOT_INSTALLED, note=mailsink.INSTALL_HINT))
    else:
        workdir = ctx.tmp / "email-sink"
        workdir.mkdir(parents=True, exist_ok=True)
        sink = MailSink(workdir)
        try:
            port = await sink.start()
            smtp = await send_emails(ctx, "email-smtp", {
                "FLOWD_EMAIL_PROVIDER": "smtp", "FLOWD_EMAIL_HOST": "127.0.0.1",
                "FLOWD_EMAIL_PORT": str(port)}, sink)
        finally:
            await sink.close()
        rows.append(Row(
            "email", smtp_figure, smtp["rate"], "emails/s", ">=", 1000,
            note=f"{how}: {smtp['window_s']:.2f} s, every one recorded sent and received once "
                 f"by the SMTP server (aiosmtpd {sink.version}, offering PIPELINING); events "
                 f"acknowledged after {smtp['posted_s']:.2f} s, last run completed after "
                 f"{smtp['runs_s']:.2f} s{smtp['cpu']}{smtp['sink']}"))
    outbox = await send_emails(ctx, "email-outbox", {"FLOWD_EMAIL_PROVIDER": "outbox"})
    rows.append(Row(
        "email", "emails/s to the outbox (recorded, nothing sent)", outbox["rate"], "emails/s",
        ">=", 3000,
        note=f"{how}: {outbox['window_s']:.2f} s, every one recorded sent; events acknowledged "
             f"after {outbox['posted_s']:.2f} s, last run completed after "
             f"{outbox['runs_s']:.2f} s{outbox['cpu']}"))
    return rows



def test_run_journey() -> list[dict[str, Any]]:
    """30 steps over 90 days: ten rounds of an email, a nine-day wait and a webhook, the
    fifth wait being for a click (which the test run's events deliver)."""
    steps: list[dict[str, Any]] = []
    for i in range(10):
        wait: dict[str, Any] = {"id": f"wait{i}", "type": "wait", "config": {"duration": "P9D"}}
        if i == 4:
            wait = {"id": f"wait{i}", "type": "wait_for_event",
                    "config": {"event": "email.clicked", "timeout": "P9D"}}
        steps += [{"id": f"mail{i}", "type": "send_email",
                   "config": {"subject": f"Week {i}", "text": "Hi {{ contact.traits.name }}"}},
                  wait,
                  {"id": f"hook{i}", "type": "webhook",
                   "config": {"url": "https://hooks.example.com/journey",
                              "body": {"round": i, "contact": "{{ contact.id }}"}}}]
    return steps


async def test_run(ctx: Context) -> list[Row]:
    """Dry runs of one 90-day, 30-step journey through POST /v1/workflows/{id}/test-run, one
    after another: the engine, the steps and the mailer on a throwaway in-memory store."""
    n = ctx.sizes.test_runs
    body = {"contact": {"id": "dry", "email": "dry@example.com", "traits": {"name": "Ada"}},
            "events": [{"after": "P40D", "name": "email.clicked"}],
            "responses": {"hook3": {"status": 201, "body": {"ok": True}}}, "horizon": "P120D"}
    async with flowd(ctx, "test-run") as server, Api(server.url, server.key) as api:
        workflow = await api.create_workflow("bench test-run", {"type": "manual"},
                                             test_run_journey())
        path = f"/v1/workflows/{workflow['id']}/test-run"
        first = await api.call("POST", path, body, expect=(200,))   # warm: schema template
        if first["status"] != "completed" or len(first["trace"]) != 30:
            raise BenchError(f"the test run should complete 30 steps: {first['status']}, "
                             f"{len(first['trace'])} steps")
        cpu0 = server.cpu_seconds()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            await api.call("POST", path, body, expect=(200,))
            times.append((time.perf_counter() - t0) * 1000)
        cpu = cpu_note(server, cpu0, n, "test run")
    return [Row("test-run", "one dry run of a 90-day, 30-step journey (POST → answer, median)",
                statistics.median(times), "ms", "<=", 50,
                note=f"{n} test runs one after another, each 10 emails, 10 webhooks and 10 "
                     f"waits (one for a click, delivered on day 40) over 90 virtual days; p99 "
                     f"{pct(times, 99):.1f} ms{cpu}")]
# ------------------------------------------------------------------ cross-channel

# One message of each channel per run, each from the contact's traits, to the outbox providers
# (recorded, nothing sent): the cost of the journey itself — three messaging steps, each a
# message record written before and its outcome after the send — not of a provider.
CROSS_CHANNEL_STEPS = [
    {"id": "push", "type": "send_push", "config": {
        "title": "Order {{ event.properties.order }}",
        "body": "{{ contact.traits.first_name }}, it has shipped",
        "data": {"order": "{{ event.properties.order }}"}}},
    {"id": "mail", "type": "send_email", "config": {
        "subject": "Your order {{ event.properties.order }}",
        "text": "Hello {{ contact.traits.first_name }}, your order is on its way."}},
    {"id": "sms", "type": "send_sms", "config": {
        "body": "Order {{ event.properties.order }} arrives tomorrow"}},
]
OUTBOXES = {"FLOWD_EMAIL_PROVIDER": "outbox", "FLOWD_SMS_PROVIDER": "outbox",
            "FLOWD_PUSH_PROVIDER": "outbox"}


def cross_channel_events(count: int) -> list[dict[str, Any]]:
    """Events that each start one run, for a contact with an email, a phone and a push token."""
    return [{"name": "bench.order", "contact_id": f"cc-{i}", "properties": {"order": i},
             "contact": {"email": f"cc-{i}@example.com", "phone": f"+1555{i:07d}",
                         "push_tokens": [f"device-token-{i:06d}"],
                         "traits": {"first_name": f"Ada{i}"}}} for i in range(count)]


async def _count_sent(api: Api, channel: str) -> int:
    count, cursor = 0, None
    while True:
        page = await api.call("GET", f"/v1/messages?channel={channel}&status=sent&limit=100"
                              + (f"&cursor={cursor}" if cursor else ""), expect=(200,))
        count += len(page["data"])
        cursor = page["next_cursor"]
        if not cursor or not page["data"]:
            return count


async def cross_channel(ctx: Context) -> list[Row]:
    """Runs of push → email → SMS, started by events (batches of 100, 4 requests at a time),
    every provider the outbox; the figure is messages recorded sent per second."""
    n = ctx.sizes.cross_channel_runs
    messages = 3 * n
    async with flowd(ctx, "cross-channel", OUTBOXES) as server, \
            Api(server.url, server.key) as api:
        workflow = await api.create_workflow(
            "bench cross-channel", {"type": "event", "event": "bench.order"},
            CROSS_CHANNEL_STEPS)
        with Probe(server.db_path) as probe:
            cpu0 = server.cpu_seconds()
            t0_ms = time.time() * 1000
            await start_runs(api, cross_channel_events(n))
            posted_s = (time.time() * 1000 - t0_ms) / 1000
            await settle(probe, server, n, ctx.sizes.settle_s, interval_s=0.05)
            cpu = cpu_note(server, cpu0, messages, "message")
            _, _, last_completed, done = probe.run_window(workflow["id"])
        sent = await sent_times(api)
        by_channel = {channel: await _count_sent(api, channel) for channel in ("push", "email",
                                                                                "sms")}
    if len(sent) != messages or done != n or set(by_channel.values()) != {n}:
        raise BenchError(f"{n} runs should have completed with {n} messages of each channel "
                         f"recorded sent; {done} completed, sent {by_channel}")
    window_s = (max(sent) - t0_ms) / 1000
    return [Row(
        "cross-channel", f"messages/s, {n:,} runs of push → email → SMS to the outboxes",
        messages / window_s, "messages/s", ">=", 1500,
        note=f"{n:,} runs of three messaging steps (push title, body and data, email subject "
             f"and text, SMS body, each from the contact's traits and the event), events with "
             f"their contacts in batches of 100, 4 at a time (acknowledged after "
             f"{posted_s:.2f} s); first POST (bench clock) → last message's sent_at (server "
             f"clock) {window_s:.2f} s, every one of the {messages:,} messages recorded sent; "
             f"last run completed after {(last_completed - t0_ms) / 1000:.2f} s{cpu}")]


# ------------------------------------------------------------------ code

CODE_SOURCE = "return {double: event.properties.n * 2, contact: contact.id}"
CODE_WARMUP = 20           # runs that start the worker processes before the measured ones
HEALTHZ_INTERVAL_S = 0.01  # between two /healthz polls while a script spins


def code_step(source: str, **config: Any) -> list[dict[str, Any]]:
    return [{"id": "calc", "type": "code",
             "config": {"language": "javascript", "source": source, **config}}]


def children_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds of the live children of `pid` (the server's sandbox workers), from /proc."""
    if pid is None or not Path("/proc/self/stat").exists():
        return None
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def code(ctx: Context) -> list[Row]:
    """Runs of one trivial `code` step started by events (batches of 100, 4 requests at a
    time); then one run of a script that loops for ever, stopped by its PT1S CPU limit, while
    /healthz is polled."""
    n = ctx.sizes.code_runs
    async with flowd(ctx, "code") as server, Api(server.url, server.key) as api:
        await api.create_workflow("bench code warm-up",
                                  {"type": "event", "event": "bench.code.warm"},
                                  code_step(CODE_SOURCE))
        workflow = await api.create_workflow("bench code", {"type": "event", "event": "bench.code"},
                                             code_step(CODE_SOURCE))
        spin = await api.create_workflow("bench code spin", {"type": "manual"},
                                         code_step("for (;;) {}", timeout="PT1S"))
        with Probe(server.db_path) as probe:
            await start_runs(api, events("bench.code.warm", CODE_WARMUP, "warm"))
            await settle(probe, server, CODE_WARMUP, ctx.sizes.settle_s)
            cpu0, workers0 = server.cpu_seconds(), children_cpu_seconds(server.pid)
            t0_ms = time.time() * 1000
            await start_runs(api, events("bench.code", n, "code"))
            posted_s = (time.time() * 1000 - t0_ms) / 1000
            await settle(probe, server, n + CODE_WARMUP, ctx.sizes.settle_s, interval_s=0.02)
            cpu = cpu_note(server, cpu0, n, "step (events and runs included)")
            workers1 = children_cpu_seconds(server.pid)
            runs, first_created, last_completed, done = probe.run_window(workflow["id"])
            outputs = probe.step_ends(workflow["id"], "calc")

            run = await api.call("POST", f"/v1/workflows/{spin['id']}/runs",
                                 {"contact_id": "spinner"}, expect=(201,))
            latencies: list[float] = []
            ended = None
            while ended is None:
                ms, _ = await api.timed("GET", "/healthz", expect=(200,))
                latencies.append(ms)
                ended = _ended_light(probe, run["id"])
                if len(latencies) * HEALTHZ_INTERVAL_S > ctx.sizes.settle_s:
                    raise BenchError("the spinning code step was not stopped")
                await asyncio.sleep(HEALTHZ_INTERVAL_S)
            status, created_at, completed_at, error = ended
    if (runs, done, len(outputs)) != (n, n, n):
        raise BenchError(f"{n} runs should have completed their code step: {done}/{runs} "
                         f"completed, {len(outputs)} steps")
    if status != "failed" or "code_timeout" not in (error or ""):
        raise BenchError(f"the spinning script should have failed with code_timeout: {status} "
                         f"{error}")
    window_s = (last_completed - t0_ms) / 1000
    server_s = (last_completed - first_created) / 1000
    workers = ("" if workers0 is None or workers1 is None else
               f"; sandbox workers' CPU {(workers1 - workers0) / n * 1e6:,.0f} µs per step")
    spun_ms = (completed_at or created_at) - created_at
    return [
        Row("code", f"steps/s, {n:,} runs of one trivial code step", n / window_s, "steps/s",
            ">=", 2000,
            note=f"`{CODE_SOURCE}` on 2 worker processes, each run in a fresh QuickJS "
                 f"runtime; events in batches of 100, 4 at a time (acknowledged after "
                 f"{posted_s:.2f} s); first POST (bench clock) → last completed_at (server "
                 f"clock) {window_s:.2f} s; first created_at → last completed_at "
                 f"{server_s:.2f} s (server clock){cpu}{workers}"),
        Row("code", "/healthz p99 while a code step loops until its PT1S limit",
            pct(latencies, 99), "ms", "<=", 50,
            note=f"{len(latencies):,} sequential GET /healthz, {HEALTHZ_INTERVAL_S * 1000:.0f} "
                 f"ms apart, while `for (;;) {{}}` ran; the run failed with code_timeout "
                 f"{spun_ms:,} ms after it was created (server clock); median "
                 f"{pct(latencies, 50):.1f} ms, max {max(latencies):.1f} ms"),
    ]


# ------------------------------------------------------------------ retention

PURGE_RATE = 500      # events/s offered during and without the purge (open loop)
PURGE_WINDOW_S = 1.0  # the open loop runs in windows of this long until the purge is over


async def purge(ctx: Context) -> list[Row]:
    """`purge_runs` ended runs (two trace rows each) seeded 40 days old; first ingest latency
    without retention, then the same server restarted with [retention] runs = P30D (a pass a
    second after start): ingest latency while the pass deletes them, and its rate, from the
    runs' count in the database file (polled read-only) dropping to zero."""
    s = ctx.sizes
    n = s.purge_runs
    async with flowd(ctx, "purge", env={"FLOWD_RETENTION_RUNS": "",
                                         "FLOWD_RETENTION_EVENTS": ""}) as server:
        async with Api(server.url, server.key) as api:
            workflow = await api.create_workflow(
                "bench purge", {"type": "event", "event": "bench.never"},
                [{"id": "s", "type": "set", "config": {"vars": {"x": 1}}}])
        await server.stop()
        ctx.say(f"purge: inserting {n:,} ended runs through the store's bulk path")
        insert_s = await asyncio.to_thread(
            seed.ended_runs, server.db_path, workflow_id=workflow["id"],
            version=workflow["version"], step_id="s", count=n, ended_ms_ago=40 * 86_400_000,
            synchronous=ctx.synchronous)
        size_before = server.db_path.stat().st_size
        await server.start()
        without = await open_loop(server.url, server.key, PURGE_RATE, s.open_loop_s, 16)
        await server.stop()

        server.env.update({"FLOWD_RETENTION_RUNS": "P30D", "FLOWD_RETENTION_INTERVAL_SECONDS": "1"})
        await server.start()
        cpu0 = server.cpu_seconds()
        with Probe(server.db_path) as probe:
            def ended() -> int:
                counts = probe.status_counts()
                return sum(counts[status] for status in TERMINAL)

            await wait_for(lambda: ended() < n, "the purge to begin", s.settle_s)
            began = time.perf_counter()
            latencies: list[float] = []
            while ended() > 0:
                if time.perf_counter() - began > s.scenario_s:
                    raise BenchError(f"purge: {ended():,} of {n:,} runs still there")
                window = await open_loop(server.url, server.key, PURGE_RATE, PURGE_WINDOW_S, 16)
                latencies += window["latencies"]
            purge_s = time.perf_counter() - began
        cpu_note_text = cpu_note(server, cpu0, n, "run")
        size_after = server.db_path.stat().st_size
    during_p99 = pct(latencies, 99)
    without_p99 = without["p99"]
    return [
        Row("purge", f"ended runs deleted/s ({n:,} runs, 2 trace rows each)", n / purge_s,
            "runs/s", note=f"while ingest ran at {PURGE_RATE}/s offered; seeding took "
                           f"{insert_s:.1f} s (not counted); file {size_before / 1e6:.0f} → "
                           f"{size_after / 1e6:.0f} MB after the incremental vacuum"
                           f"{cpu_note_text} (ingest included)"),
        Row("purge", "ingest p99 during the purge ÷ without it", during_p99 / without_p99, "×",
            "<=", 2, note=f"open loop at {PURGE_RATE}/s: p99 {during_p99:.1f} ms during "
                          f"({len(latencies):,} sends), {without_p99:.1f} ms without "
                          f"({without['sent']:,} sends); p50 {pct(latencies, 50):.1f} vs "
                          f"{without['p50']:.1f} ms"),
    ]


# ------------------------------------------------------------------ audiences

AUDIENCE_FILTER = {"all": [{"field": "contact.traits.plan", "op": "eq", "value": "pro"},
                           {"field": "contact.traits.age", "op": "gte", "value": 30}]}


async def timed_calls(api: Api, path: str, calls: int) -> tuple[list[float], Any]:
    """`calls` GETs one after another (after one not counted, which warms the caches): their
    latencies in ms and the last answer."""
    await api.call("GET", path)
    latencies, answer = [], None
    for _ in range(calls):
        latency, answer = await api.timed("GET", path)
        latencies.append(latency)
    return latencies, answer


async def audience(ctx: Context) -> list[Row]:
    """`audience_contacts` contacts seeded through the store; an audience of two conditions on
    traits (plan eq "pro" and age gte 30); GET …/count and the first page of GET …/contacts,
    each `audience_calls` times in turn: p50/p99 (bench clock) and server CPU per call."""
    s = ctx.sizes
    n = s.audience_contacts
    expected = sum(1 for i in range(n) if seed.contact_traits(i)["plan"] == "pro"
                   and seed.contact_traits(i)["age"] >= 30)
    async with flowd(ctx, "audience") as server:
        async with Api(server.url, server.key) as api:
            made = await api.call("POST", "/v1/audiences", {"name": "bench pros",
                                                            "filter": AUDIENCE_FILTER},
                                  expect=(201,))
        await server.stop()
        ctx.say(f"audience: inserting {n:,} contacts through the store")
        insert_s = await asyncio.to_thread(seed.contacts, server.db_path, count=n,
                                           synchronous=ctx.synchronous)
        await server.start()
        base = f"/v1/audiences/{made['id']}"
        async with Api(server.url, server.key) as api:
            cpu0 = server.cpu_seconds()
            counts, answer = await timed_calls(api, f"{base}/count", s.audience_calls)
            count_cpu = cpu_note(server, cpu0, s.audience_calls + 1, "call")
            if answer != {"count": expected}:
                raise BenchError(f"audience: the count should be {expected}: {answer}")
            cpu0 = server.cpu_seconds()
            pages, page = await timed_calls(api, f"{base}/contacts", s.audience_calls)
            page_cpu = cpu_note(server, cpu0, s.audience_calls + 1, "call")
            if len(page["data"]) != 50 or page["next_cursor"] is None:
                raise BenchError(f"audience: the first page should hold 50 members: {page}")
    how = (f"{s.audience_calls} calls one after another (one more before, not counted); "
           f"seeding took {insert_s:.1f} s (not counted)")
    return [
        Row("audience", f"GET …/count over {n:,} contacts (two conditions on traits), p50",
            pct(counts, 50), "ms", "<=", 100,
            note=f"{expected:,} members; p99 {pct(counts, 99):.1f} ms; {how}{count_cpu} "
                 "(the extra call included)"),
        Row("audience", f"GET …/contacts first page (50 of {expected:,} members), p50",
            pct(pages, 50), "ms", "<=", 20,
            note=f"p99 {pct(pages, 99):.1f} ms; {how}{page_cpu} (the extra call included)"),
    ]


SCENARIOS: dict[str, Callable[[Context], Awaitable[list[Row]]]] = {
    "ingest": ingest,
    "ingest-batch": ingest_batch,
    "fanout": fanout,
    "steps": steps,
    "chain": chain,
    "timers": timers,
    "wait-scale": wait_scale,
    "recovery": recovery,
    "webhooks": webhooks,
    "email": email,
    "bulk": bulk,
    "cron": cron,
    "children": children,
    "loop": loop,
    "approvals": approvals,
    "test-run": test_run,
    "purge": purge,
    "cross-channel": cross_channel,
    "code": code,
    "audience": audience,
}
