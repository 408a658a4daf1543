"""The flowd server under test: `python -m flowd` in its own process, on a database in a
temporary directory and a free port of 127.0.0.1.

    server = FlowdServer(workdir, synchronous="normal")
    await server.start()            # spawn, then wait for the first 200 from /healthz
    ...                             # drive server.url with server.key
    await server.kill9()            # or: await server.stop() (SIGTERM, then SIGKILL)
    await server.start()            # again, on the same database file (a new port)

The environment it gets: this process's, less FLOWD_ADMIN_KEY and FLOWD_CONFIG, plus
FLOWD_ADMIN_KEY (a fresh random key), FLOWD_STORAGE_SYNCHRONOUS and
FLOWD_HTTP_ALLOW_PRIVATE_NETWORKS=true (the webhook scenario calls a sink on 127.0.0.1), plus
what the scenario itself sets (`env`: the email scenario's provider and SMTP port). Other
FLOWD_* settings pass through, so a setting can be measured; the report lists them. Its
working directory is the temporary one, so no stray ./flowd.toml changes the server.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

HEALTH_TIMEOUT_S = 60.0   # spawn → /healthz; generous: a million waiting runs must still fit
STOP_TIMEOUT_S = 30.0     # SIGTERM → exit, before SIGKILL
_OWN_ENV = ("FLOWD_ADMIN_KEY", "FLOWD_CONFIG", "FLOWD_STORAGE_SYNCHRONOUS",
            "FLOWD_HTTP_ALLOW_PRIVATE_NETWORKS")


class BenchError(RuntimeError):
    """The bench itself could not measure: the server failed, a response was an error, …"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def passthrough_env() -> dict[str, str]:
    """The FLOWD_* settings of this environment that the server under test inherits."""
    return {k: v for k, v in os.environ.items() if k.startswith("FLOWD_") and k not in _OWN_ENV}


def proc_status_kb(pid: int, field: str) -> int | None:
    """A `kB` field (VmRSS, VmHWM, …) of /proc/PID/status; None when not on Linux or gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process `pid` (all its threads), from /proc; None elsewhere."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class FlowdServer:
    def __init__(self, workdir: Path, *, synchronous: str = "normal",
                 db_name: str = "flowd.db", env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = dict(env or {})     # the scenario's own settings, over the inherited ones
        self.db_path = workdir / db_name
        self.synchronous = synchronous
        self.key = "bench_" + secrets.token_urlsafe(24)
        self.log_path = workdir / "server.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.spawned_at_ms = 0.0     # wall clock (ms) just before the last spawn
        self.serving_s = 0.0         # spawn → first 200 from /healthz, of the last start
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _OWN_ENV}
        env.update({"FLOWD_ADMIN_KEY": self.key, "FLOWD_STORAGE_SYNCHRONOUS": self.synchronous,
                    "FLOWD_HTTP_ALLOW_PRIVATE_NETWORKS": "true", **self.env})
        return env

    async def start(self) -> float:
        """Spawn the server and wait until it serves; returns spawn → serving in seconds."""
        if self.running:
            raise BenchError("the server is already running")
        self.port = free_port()
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- bench: start #{self.starts} on port {self.port} ---\n".encode())
            log.flush()
            self.spawned_at_ms = time.time() * 1000
            t0 = time.perf_counter()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flowd", "--host", "127.0.0.1", "--port", str(self.port),
                "--db", str(self.db_path), cwd=self.workdir, env=self._env(),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            await self._wait_healthy()
        except BaseException:
            await self.kill9()
            raise
        self.serving_s = time.perf_counter() - t0
        return self.serving_s

    async def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.perf_counter() + HEALTH_TIMEOUT_S
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.perf_counter() < deadline:
                if self.proc.returncode is not None:
                    raise BenchError(f"the flowd server exited with status {self.proc.returncode} "
                                     f"at start-up; its log ends:\n{self.log_tail()}")
                try:
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    pass
                await asyncio.sleep(0.005)
        raise BenchError(f"the flowd server did not answer /healthz within {HEALTH_TIMEOUT_S:.0f} s;"
                         f" its log ends:\n{self.log_tail()}")

    async def stop(self) -> int | None:
        """SIGTERM and wait; SIGKILL when it does not exit in time. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                await self.kill9()
        return self.proc.returncode

    async def kill9(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            await self.proc.wait()

    def cpu_seconds(self) -> float | None:
        return proc_cpu_seconds(self.pid) if self.running else None

    def rss_mb(self) -> float | None:
        kb = proc_status_kb(self.pid, "VmRSS") if self.running and self.pid else None
        return None if kb is None else kb / 1024

    def peak_rss_mb(self) -> float | None:
        """The high-water mark of the resident set since this process started (VmHWM)."""
        kb = proc_status_kb(self.pid, "VmHWM") if self.running and self.pid else None
        return None if kb is None else kb / 1024

    def check_alive(self) -> None:
        if not self.running:
            code = None if self.proc is None else self.proc.returncode
            raise BenchError(f"the flowd server died (exit status {code}); its log ends:\n"
                             f"{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"
