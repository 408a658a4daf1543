"""The `cron` scenario: 1,000 schedule-triggered workflows due in the same minute, and how long
from that minute until all their runs are created.

Cron fires on minute boundaries of the wall clock, and waiting for the next real one would
cost up to a minute. So this scenario runs flowd in this process (the same app the server
runs, on its own fresh database, without a listening socket) on a clock shifted to read a few
seconds before a minute boundary: only the flowd code is measured, never a sleep. Figures are
on the server's (shifted) clock: `runs.created_at` against the due instant; CPU is this
process's (the bench only sleeps and polls the database meanwhile).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from typing import Any

from aiohttp import web

from flowd.api.middleware import SERVICES
from flowd.app import Services, create_app
from flowd.bench.report import Row
from flowd.bench.server import BenchError
from flowd.clock import Clock
from flowd.config import Config, StorageConfig
from flowd.store import Probe
from flowd.timeutil import format_ms

SCHEDULES = 1000
LEAD_MS = 4000          # setup time: the shifted clock starts this long before the due minute
STEPS = [{"id": "mark", "type": "set", "config": {"vars": {"fired": True}}}]


class ShiftedClock(Clock):
    """The wall clock moved by a fixed offset (sleeps stay real durations)."""

    def __init__(self, offset_ms: int) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


def _all_created(probe: Probe, clock: Clock, due_ms: int) -> int | None:
    """Milliseconds from the due instant until every run is committed (None: not in 30 s)."""
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if probe.created_window()[0] >= SCHEDULES:
            return clock.now_ms() - due_ms
        time.sleep(0.002)
    return None


async def cron(ctx: Any) -> list[Row]:
    workdir = ctx.tmp / "cron"
    workdir.mkdir(parents=True, exist_ok=True)
    real_now = int(time.time() * 1000)
    due_ms = (real_now // 60_000 + 2) * 60_000          # a minute boundary…
    clock = ShiftedClock(due_ms - LEAD_MS - real_now)   # …LEAD_MS ahead on the shifted clock
    config = Config(storage=StorageConfig(path=str(workdir / "flowd.db"),
                                          synchronous=ctx.synchronous))
    app = create_app(config, clock=clock, admin_key="bench_" + secrets.token_urlsafe(24))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()   # opens the store and starts every service, as serving does
    try:
        services: Services = app[SERVICES]
        due = time.gmtime(due_ms / 1000)
        body = {"name": "bench cron", "status": "active", "steps": STEPS,
                "trigger": {"type": "schedule", "cron": f"{due.tm_min} {due.tm_hour} * * *",
                            "timezone": "UTC"}}
        await asyncio.gather(*(services.workflows.create("default", {**body, "name": f"cron {i}"})
                               for i in range(SCHEDULES)))
        ahead_ms = due_ms - clock.now_ms()
        if ahead_ms < 500:
            raise BenchError(f"setup too slow: the {SCHEDULES} workflows were active only "
                             f"{ahead_ms} ms before they came due")
        await asyncio.sleep((ahead_ms - 100) / 1000)   # stay off the machine until then
        with Probe(workdir / "flowd.db") as probe:
            cpu0 = time.process_time()
            # Polled from a thread: the event loop is busy executing the runs just started,
            # and a poll on it would see the commit late.
            seen_ms = await asyncio.to_thread(_all_created, probe, clock, due_ms)
            deadline = time.perf_counter() + 30
            while (counts := probe.status_counts())["completed"] < SCHEDULES \
                    and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            cpu = time.process_time() - cpu0
            created = probe.created_window()
    finally:
        await runner.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    if seen_ms is None or created[0] != SCHEDULES or counts["completed"] < SCHEDULES:
        raise BenchError(f"{SCHEDULES} runs should have been created and completed; runs by "
                         f"status: {counts}")
    return [
        Row("cron", f"{SCHEDULES:,} schedules due in the same minute: due → all runs committed",
            seen_ms, "ms", "<=", 1000,
            note=f"{SCHEDULES:,} active workflows with cron '{body['trigger']['cron']}' (UTC), "
                 f"due {format_ms(due_ms)} on a clock shifted to just before that minute; "
                 f"until a poll of the database (every 2 ms, from a thread) sees all their runs "
                 f"(server clock); runs.created_at, the time of the unit that made them all, is "
                 f"+{created[2] - due_ms} ms; CPU {cpu / SCHEDULES * 1e6:,.0f} µs per fire (its "
                 f"share of the unit, its set step, its end; this process, polls included)"),
    ]
