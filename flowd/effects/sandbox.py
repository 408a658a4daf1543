"""The JavaScript sandbox of `code` steps: a few worker processes running QuickJS
(`flowd.effects.sandbox_worker`), and the save-time syntax check.

`ProcessSandbox.run(source, input_json, timeout_ms)` hands one script to an idle worker and
awaits its answer on the event loop (a pipe read, never a blocked thread), so a busy script
holds one worker, not the server: other runs and `/healthz` go on. At most `workers` scripts
run at once; more wait for a worker. Workers start when first needed and live on; one whose
script did not answer in time, or that died, or whose caller gave up (a cancelled step) is
killed and a new one takes its place.

Each script runs in a fresh QuickJS runtime with the memory, stack and CPU-time limits of
`[code]`. The CPU limit is exact because each worker is a process of its own (QuickJS counts
the CPU time of its whole process); the server also gives every script a wall-clock bound
(`wall_timeout`), past which the worker is killed, for the case where the machine is so busy
that a script's CPU time accrues slowly — or the worker hangs.

`syntax_error(source)` compiles a source without running any of it (the check the `code` step
makes when a workflow is saved). It runs in the server's own process: QuickJS parses there,
under the same memory and stack limits, but nothing of the source is ever executed there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from flowd.effects import sandbox_worker as worker_protocol
from flowd.effects.base import EffectFailed

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 1024 * 1024   # of the returned value's JSON (API.md: at most 1 MiB)
WORKER = Path(worker_protocol.__file__)
START_TIMEOUT_S = 30.0           # a worker's start: a Python interpreter importing quickjs
# Past the script's CPU time, how long the server waits before it kills the worker.
WALL_GRACE_S = 5.0

# The failures a script can have; none of them is retried: the same source on the same input
# fails the same way (the CPU limit counts the worker's own CPU time, so a timeout does not
# depend on the server's load either).
SCRIPT_FAILURES = ("code_error", "code_timeout", "code_memory", "code_output_too_large")


@dataclass(frozen=True)
class SandboxLimits:
    workers: int
    memory_limit: int        # bytes of QuickJS heap per script
    max_stack_size: int      # bytes of JavaScript call stack per script
    max_timeout_ms: int      # a step's longer timeout is cut to this
    max_output_bytes: int = MAX_OUTPUT_BYTES

    def wall_timeout(self, timeout_ms: int) -> float:
        """Seconds of real time a script of `timeout_ms` CPU time may take, all in."""
        return 2 * timeout_ms / 1000 + WALL_GRACE_S


class _Worker:
    """One worker process, used by one script at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def call(self, timeout_ms: int, source: str, input_json: str) -> tuple[str, str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(worker_protocol.encode_message(
            [str(timeout_ms).encode(), source.encode(), input_json.encode()]))
        await self.process.stdin.drain()
        code, text = await _read(self.process.stdout, 2)
        return code.decode(), text.decode("utf-8", "replace")

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def _read(stream: asyncio.StreamReader, parts: int) -> list[bytes]:
    message = []
    for _ in range(parts):
        header = await stream.readexactly(worker_protocol.FRAME.size)
        (size,) = worker_protocol.FRAME.unpack(header)
        message.append(await stream.readexactly(size))
    return message


class ProcessSandbox:
    """A `Sandbox` (flowd.effects.base) on worker processes; see the module's docstring."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.workers)
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._closed = False

    async def run(self, source: str, input_json: str, timeout_ms: int) -> str:
        """The returned value's JSON ("null" for undefined). Raises EffectFailed: one of
        SCRIPT_FAILURES (not retryable), or `sandbox_unavailable` (retryable: no worker could
        be started, or one died under the script)."""
        timeout_ms = max(1, min(timeout_ms, self.limits.max_timeout_ms))
        async with self._slots:
            worker = self._idle.pop() if self._idle else await self._start()
            healthy = False
            try:
                async with asyncio.timeout(self.limits.wall_timeout(timeout_ms)):
                    code, text = await worker.call(timeout_ms, source, input_json)
                healthy = True
            except TimeoutError:
                raise EffectFailed("code_timeout", f"the script did not finish within "
                                   f"{self.limits.wall_timeout(timeout_ms):g} s of real time; "
                                   "its worker was stopped", retryable=False) from None
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                status = await self._reap(worker)
                log.warning("a code step's worker died under its script (%s)", status)
                raise EffectFailed("sandbox_unavailable", f"the sandbox worker died while the "
                                   f"script ran ({status})", retryable=True) from exc
            finally:
                if healthy and not self._closed:
                    self._idle.append(worker)
                else:
                    await self._reap(worker)
        if code == "ok":
            return text
        if code not in SCRIPT_FAILURES:
            code = "code_error"
        raise EffectFailed(code, text, retryable=False)

    async def _start(self) -> _Worker:
        if self._closed:
            raise EffectFailed("sandbox_unavailable", "the server is stopping", retryable=True)
        limits = self.limits
        try:
            # -I: no PYTHON* variables, no user site, not the working directory on the path;
            # an empty environment: nothing of the server's reaches the worker.
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-I", str(WORKER), str(limits.memory_limit),
                str(limits.max_stack_size), str(limits.max_output_bytes),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env={},
                cwd=os.path.dirname(WORKER))
        except OSError as exc:
            raise EffectFailed("sandbox_unavailable", f"the sandbox worker could not start: "
                               f"{exc}", retryable=True) from None
        worker = _Worker(process)
        self._live.add(worker)
        try:
            assert process.stdout is not None
            async with asyncio.timeout(START_TIMEOUT_S):
                [hello] = await _read(process.stdout, 1)
            if hello != b"ready":
                raise ConnectionError(f"unexpected greeting {hello[:40]!r}")
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            status = await self._reap(worker)
            raise EffectFailed("sandbox_unavailable", f"the sandbox worker did not start "
                               f"({status}; is quickjs-ng installed?)", retryable=True) from exc
        except BaseException:   # cancelled while it started: it must not outlive the step
            await self._reap(worker)
            raise
        return worker

    async def _reap(self, worker: _Worker) -> str:
        """Kill (if need be) and wait for a worker; how it ended."""
        self._live.discard(worker)
        worker.kill()
        # Shielded: a cancelled step still leaves no worker unreaped behind it.
        code = await asyncio.shield(worker.process.wait())
        return f"exit status {code}" if code >= 0 else f"signal {-code}"

    async def close(self) -> None:
        """Stops every worker: the idle ones are told to go (their stdin closes), any still
        busy are killed."""
        self._closed = True
        idle, self._idle = self._idle, []
        for worker in idle:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in list(self._live):
            try:
                async with asyncio.timeout(1.0 if worker in idle else 0):
                    await worker.process.wait()
            except TimeoutError:
                pass
            await self._reap(worker)


# ---------------------------------------------------------------------------------- save time

# The limits of the check: a source is at most 100 KB (the step's schema), so its parse needs
# little; deep nesting meets the stack limit and is reported like any syntax error.
CHECK_MEMORY = 32 * 2**20
CHECK_STACK = 256 * 2**10


def syntax_error(source: str) -> str | None:
    """Why `source` is not the body of a function (`SyntaxError: unexpected token … (line
    3)`), or None. Nothing of it runs: see sandbox_worker.CHECK_PREFIX."""
    import quickjs  # only a server with code steps pays for the import

    try:
        source.encode()
    except UnicodeEncodeError:   # only from a file (bundles): requests are checked for it
        return "is not Unicode text: it holds an unpaired surrogate such as \\ud800"
    context = quickjs.Context()
    context.set_memory_limit(CHECK_MEMORY)
    context.set_max_stack_size(CHECK_STACK)
    try:
        context.eval(worker_protocol.CHECK_PREFIX + worker_protocol.PREFIX + source
                     + worker_protocol.SUFFIX)
    except quickjs.JSException as exc:
        text = str(exc)
        if text.startswith("0\n"):   # compiled, then the first statement threw: it is fine
            return None
        return worker_protocol.describe(text)
    return None   # cannot happen (the script's first statement throws)
