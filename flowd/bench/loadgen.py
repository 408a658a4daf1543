"""Event-ingest load generator: closed-loop POSTs to `/v1/events`, with throughput and latency.

This module owns the measurement of ingest from the outside: N workers (one per connection)
each send a request, wait for its answer, and send the next, for `warmup + duration` seconds.
Every answer must be 202 (flowd's "durably stored"); anything else is an error. It reports
requests, events and errors, events/s and requests/s, and per-request latency percentiles.

    python -m flowd.bench.loadgen --url http://127.0.0.1:8080 --key KEY
    python -m flowd.bench.loadgen --spawn --synchronous full --batch 100 --json

With `--spawn` it starts its own server (`python -m flowd`, in a subprocess, on a fresh database
in a temporary directory, on a free port of 127.0.0.1), waits for `/healthz`, runs the load, then
stops the server with SIGTERM. Other FLOWD_* environment variables are passed through to it.

Counting rules (the window is the `duration` seconds after the `warmup`):
  * requests, events, events/s, requests/s and latencies count the 202s that *completed* inside
    the window; the rates divide by `duration`.
  * errors count every failed request of the whole run (warm-up and the in-flight tail included),
    so nothing that went wrong is hidden; the first one's status and body are kept.
  * No new request starts after the window; those in flight finish (or time out) before returning.

It talks only to loopback addresses: it is a benchmark for the machine it runs on.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import aiohttp

from flowd.bench.server import proc_cpu_seconds

REQUEST_TIMEOUT_S = 30.0    # one request's limit: a stalled server ends the run, never hangs it
BODY_POOL = 512             # distinct pre-serialised bodies the workers cycle through
EVENT_NAME = "bench.event"


@dataclass
class _Tally:
    """What the workers record; shared by all of them (one event loop, so no locking)."""

    requests: int = 0
    events: int = 0
    errors: int = 0
    first_error: str | None = None
    latencies_ms: list[float] = field(default_factory=list)


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to load {url!r}: the load generator only talks to loopback "
                         "addresses such as 127.0.0.1")


def bodies(batch: int, contacts: int, seed: int = 1) -> list[bytes]:
    """Request bodies, serialised once so the client spends its CPU on HTTP, not on JSON."""
    rng = random.Random(seed)

    def event() -> dict[str, Any]:
        return {"name": EVENT_NAME, "contact_id": f"bench-{rng.randrange(contacts)}"}

    if batch == 1:
        return [json.dumps(event()).encode() for _ in range(BODY_POOL)]
    return [json.dumps({"batch": [event() for _ in range(batch)]}).encode()
            for _ in range(BODY_POOL)]


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def _worker(session: aiohttp.ClientSession, url: str, pool: list[bytes], first: int,
                  window: tuple[float, float], tally: _Tally, events_per_request: int) -> None:
    """One connection's closed loop: post, await the answer, record it, repeat until the end."""
    start, end = window
    i = first
    while time.perf_counter() < end:
        body = pool[i % len(pool)]
        i += 1
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=body) as resp:
                payload = await resp.read()  # read it all, so the connection is reused
                error = None if resp.status == 202 else (
                    f"HTTP {resp.status}: {payload[:2000].decode(errors='replace')}")
        except Exception as exc:  # connection refused/reset, timeout, …: all are errors
            error = f"{type(exc).__name__}: {exc}"
            # Pause briefly so a dead server does not turn this loop into a busy spin that
            # steals the CPU a live (but struggling) server on the same machine needs.
            await asyncio.sleep(0.01)
        t1 = time.perf_counter()
        if error is not None:
            tally.errors += 1
            if tally.first_error is None:
                tally.first_error = error
        elif start <= t1 <= end:
            tally.requests += 1
            tally.events += events_per_request
            tally.latencies_ms.append((t1 - t0) * 1000)


async def _cpu_in_window(window: tuple[float, float], server_pid: int | None) -> dict[str, Any]:
    """CPU used by this process (and the server, if known) during the window, in cores."""
    start, end = window
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    client0, server0, t0 = time.process_time(), proc_cpu_seconds(server_pid), time.perf_counter()
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    client1, server1, t1 = time.process_time(), proc_cpu_seconds(server_pid), time.perf_counter()
    elapsed = max(t1 - t0, 1e-9)
    cpu = {"client_cores": round((client1 - client0) / elapsed, 2)}
    if server0 is not None and server1 is not None:
        cpu["server_cores"] = round((server1 - server0) / elapsed, 2)
    return cpu


async def run_load(url: str, key: str, connections: int = 50, batch: int = 1,
                   duration: float = 10.0, warmup: float = 2.0, contacts: int = 1000,
                   *, server_pid: int | None = None) -> dict[str, Any]:
    """Run the closed-loop load against the server at `url` and return the measurements.

    `server_pid`, when the server runs on this machine, adds its CPU use to the result.
    """
    check_loopback(url)
    if connections < 1 or batch < 1 or contacts < 1 or duration <= 0 or warmup < 0:
        raise ValueError("connections, batch and contacts must be >= 1, duration > 0, warmup >= 0")
    pool = bodies(batch, contacts)
    tally = _Tally()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=timeout) as session:
        begin = time.perf_counter()
        window = (begin + warmup, begin + warmup + duration)
        target = url.rstrip("/") + "/v1/events"
        cpu_task = asyncio.create_task(_cpu_in_window(window, server_pid))
        # Each worker starts at a different place in the body pool, to spread contacts.
        await asyncio.gather(*(
            _worker(session, target, pool, n * BODY_POOL // connections, window, tally, batch)
            for n in range(connections)))
        cpu = await cpu_task
    ordered = sorted(tally.latencies_ms)
    return {
        "url": url, "connections": connections, "batch": batch, "duration_s": duration,
        "warmup_s": warmup, "contacts": contacts,
        "requests": tally.requests, "events": tally.events, "errors": tally.errors,
        "events_per_s": round(tally.events / duration, 1),
        "requests_per_s": round(tally.requests / duration, 1),
        "latency_ms": {name: round(percentile(ordered, p), 2)
                       for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
        "first_error": tally.first_error,
        "cpu": cpu,
    }


async def run_spawned(synchronous: str = "normal", connections: int = 50, batch: int = 1,
                      duration: float = 10.0, warmup: float = 2.0, contacts: int = 1000,
                      server_log: str | None = None) -> dict[str, Any]:
    """Start a server on a fresh database, run `run_load` against it, stop it.

    The result gains a "server" entry: pid, exit code, and the tail of its log when anything
    went wrong (errors, a non-zero exit). `server_log` keeps the whole log at that path.
    """
    from flowd.bench.server import FlowdServer

    with tempfile.TemporaryDirectory(prefix="flowd-bench-") as tmp:
        server = FlowdServer(Path(tmp), synchronous=synchronous)
        result: dict[str, Any] = {}
        exit_code = None
        try:
            await server.start()
            print(f"loadgen: server pid {server.pid} on {server.url} (synchronous={synchronous})",
                  file=sys.stderr, flush=True)
            result = await run_load(server.url, server.key, connections, batch, duration, warmup,
                                    contacts, server_pid=server.pid)
        finally:
            exit_code = await server.stop()
            text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
            if server_log:
                Path(server_log).write_text(text)
            if not result or result["errors"] or exit_code != 0:
                print(f"loadgen: server log (exit status {exit_code}):\n{text[-8000:]}",
                      file=sys.stderr, flush=True)
    result["server"] = {"pid": server.pid, "synchronous": synchronous, "exit_code": exit_code}
    return result


def _report(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    server = result.get("server")
    lines = [
        f"flowd ingest: {result['connections']} connections, batch {result['batch']}, "
        f"{result['duration_s']:g} s (+{result['warmup_s']:g} s warm-up), "
        f"{result['contacts']} contacts"
        + (f", synchronous={server['synchronous']}" if server else ""),
        f"  requests  {result['requests']:>10}  {result['requests_per_s']:>10.1f}/s",
        f"  events    {result['events']:>10}  {result['events_per_s']:>10.1f}/s",
        f"  errors    {result['errors']:>10}",
        f"  latency   p50 {lat['p50']:.2f} ms  p90 {lat['p90']:.2f} ms  "
        f"p99 {lat['p99']:.2f} ms  max {lat['max']:.2f} ms",
        "  cpu       " + "  ".join(f"{k} {v}" for k, v in result["cpu"].items()),
    ]
    if server:
        lines.append(f"  server    pid {server['pid']}, exit status {server['exit_code']}")
    if result["first_error"]:
        lines.append(f"  first error: {result['first_error']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flowd.bench.loadgen",
                                     description="Measure flowd event ingest (POST /v1/events).")
    parser.add_argument("--url", default="http://127.0.0.1:8080",
                        help="base URL of a running server (loopback only; ignored with --spawn)")
    parser.add_argument("--key", default=os.environ.get("FLOWD_ADMIN_KEY"),
                        help="API key with ingest rights (default: $FLOWD_ADMIN_KEY)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections")
    parser.add_argument("--batch", type=int, default=1,
                        help="events per request: 1 sends one event, more send {\"batch\": [...]}")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--contacts", type=int, default=1000,
                        help="distinct contact ids the events are spread over")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--spawn", action="store_true",
                        help="start a server on a fresh temporary database, measure, stop it")
    parser.add_argument("--synchronous", choices=("normal", "full"), default=None,
                        help="with --spawn: the server's storage.synchronous (default normal)")
    parser.add_argument("--server-log", metavar="PATH",
                        help="with --spawn: keep the server's log (stderr) in this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.spawn and (args.synchronous or args.server_log):
        parser.error("--synchronous and --server-log need --spawn")
    if not args.spawn and not args.key:
        parser.error("no API key: pass --key or set FLOWD_ADMIN_KEY")
    load = dict(connections=args.connections, batch=args.batch, duration=args.duration,
                warmup=args.warmup, contacts=args.contacts)
    try:
        if args.spawn:
            result = asyncio.run(run_spawned(args.synchronous or "normal",
                                             server_log=args.server_log, **load))
        else:
            result = asyncio.run(run_load(args.url, args.key, **load))
    except (ValueError, RuntimeError) as exc:  # BenchError is a RuntimeError
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else _report(result))
    failed = result["errors"] or result.get("server", {}).get("exit_code", 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
