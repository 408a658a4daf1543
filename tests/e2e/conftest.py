"""End-to-end helpers: run the real `python -m flowd` as a subprocess and talk HTTP to it.

Everything here is synchronous (subprocess + urllib), binds only 127.0.0.1, and waits for
conditions with deadlines instead of fixed sleeps.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

START_DEADLINE = 15.0
STOP_DEADLINE = 15.0
HTTP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without any FLOWD_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWD_")}
    env.update(extra or {})
    return env


def run_flowd(*args: str, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `python -m flowd ARGS` to completion (CLI commands, config errors)."""
    return subprocess.run([sys.executable, "-m", "flowd", *args], cwd=cwd,
                          env=clean_env() if env is None else env,
                          capture_output=True, text=True, timeout=timeout)


def wait_until(condition: Callable[[], Any], deadline_s: float, what: str,
               interval: float = 0.02) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


def http(method: str, url: str, *, key: str | None = None, body: Any = None,
         timeout: float = HTTP_TIMEOUT) -> Response:
    """One HTTP request; never raises for an HTTP error status (only for transport errors)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status, headers = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    return Response(status, parsed, headers)


class ServerProcess:
    """`python -m flowd --port P --db DB` in its own process, with cwd=`workdir`."""

    def __init__(self, workdir: Path, *, db: Path | None = None, admin_key: str | None = "generate",
                 env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                 log_name: str | None = None) -> None:
        self.workdir = workdir
        self.db = db or workdir / "flowd.db"
        self.key = secrets.token_urlsafe(24) if admin_key == "generate" else admin_key
        extra = dict(env or {})
        if self.key is not None:
            extra["FLOWD_ADMIN_KEY"] = self.key
        self.env = clean_env(extra)
        self.args = args
        self.log_name = log_name
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        for attempt in range(3):
            self.port = free_port()
            name = self.log_name or f"server-{self.port}.log"
            self.log_path = self.workdir / name
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "flowd", "--port", str(self.port), "--db", str(self.db),
                     *self.args],
                    cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL)
            if self._wait_healthy():
                return self
            # Lost the race for the port to someone else: try another one.
            if "cannot listen" in self.log_text() and attempt < 2:
                continue
            raise AssertionError(f"flowd did not become healthy (exit code {self.proc.returncode});"
                                 f" log:\n{self.log_text()}")
        raise AssertionError("unreachable")

    def _wait_healthy(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if http("GET", self.url + "/healthz", timeout=1).status == 200:
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.02)
        self.kill9()
        return False

    # --- talking to it -------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, key: str | None = "admin",
                timeout: float = HTTP_TIMEOUT) -> Response:
        return http(method, self.url + path, key=self.key if key == "admin" else key, body=body,
                    timeout=timeout)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def list_all(self, path: str, *, key: str | None = "admin", limit: int = 100) -> list[dict]:
        """Every item of a paginated listing, following `next_cursor` to the end."""
        items: list[dict] = []
        cursor = None
        sep = "&" if "?" in path else "?"
        for _ in range(100_000):
            query = f"{sep}limit={limit}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            response = self.get(path + query, key=key)
            assert response.status == 200, response.body
            items.extend(response.body["data"])
            cursor = response.body["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError("pagination never ended")

    # --- stopping it ---------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_DEADLINE)

    def terminate(self, timeout: float = STOP_DEADLINE) -> int:
        """SIGTERM, then wait for the exit; returns the exit code (fails the test on timeout)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise AssertionError(f"flowd did not exit within {timeout}s of SIGTERM; log:\n"
                                     f"{self.log_text()}") from None
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """`start_server(**kw)` starts a ServerProcess in tmp_path; all are killed at teardown."""
    started: list[ServerProcess] = []

    def start(**kw: Any) -> ServerProcess:
        server = ServerProcess(tmp_path, **kw)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill9()


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server()
