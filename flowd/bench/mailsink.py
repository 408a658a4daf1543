"""The SMTP server the `email` scenario sends to: aiosmtpd on 127.0.0.1 that answers 250 to every
message and counts what it took.

It runs in its own process, so its CPU is neither the flowd server's nor the bench's (and is
read apart, from /proc), and so its event loop never waits on the bench's:

    python -m flowd.bench.mailsink

prints one JSON line, {"port": N, "aiosmtpd": VERSION}, once it listens on a free port of
127.0.0.1; then answers each line `stats` on its stdin with one JSON line {"messages",
"distinct", "sessions"} (DATA commands answered 250, distinct Message-IDs among them, EHLOs);
it exits when its stdin closes, so it never outlives the bench.

Only this module imports aiosmtpd (a test dependency, `pip install -e '.[test]'`), and only in
the subprocess; the bench side asks `installed_version()` first and, without it, the SMTP row
says "not installed".
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

from flowd.bench.server import BenchError, proc_cpu_seconds

INSTALL_HINT = "aiosmtpd not installed: pip install aiosmtpd (or -e '.[test]')"
START_TIMEOUT_S = 30.0
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def installed_version() -> str | None:
    """aiosmtpd's version when this interpreter can import it, else None (nothing imported)."""
    if importlib.util.find_spec("aiosmtpd") is None:
        return None
    try:
        return importlib.metadata.version("aiosmtpd")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------ the server (subprocess)


class _Counter:
    """aiosmtpd's handler: every recipient and message accepted, nothing kept but counts (a
    sink that stored or parsed the messages would charge its own work to the measurement).

    Its EHLO offers PIPELINING (RFC 2920), as the relays and providers flowd sends through do
    (Postfix, Exim, the big email APIs' SMTP endpoints): aiosmtpd does not announce it, but it
    reads commands one line at a time from its stream and answers each in order, which is all
    a pipelining client needs. A client that does not pipeline is unaffected."""

    def __init__(self) -> None:
        self.messages = 0
        self.ids: set[bytes] = set()
        self.sessions = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]   # the last line: "250 …"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        head = envelope.original_content or envelope.content or b""
        head = head[:head.find(b"\r\n\r\n")]
        match = _MESSAGE_ID.search(head)
        self.ids.add(match.group(1) if match else b"")
        return f"250 2.0.0 Ok: queued as B{self.messages:07d}"

    def stats(self) -> dict[str, int]:
        return {"messages": self.messages, "distinct": len(self.ids), "sessions": self.sessions}


async def serve() -> None:
    from aiosmtpd.smtp import SMTP

    handler = _Counter()
    loop = asyncio.get_running_loop()
    # A fixed hostname: aiosmtpd would otherwise look up this machine's FQDN (DNS).
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="flowd-bench-sink", ident="flowd bench sink"),
        "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port, "aiosmtpd": installed_version()}), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"stats":
            print(json.dumps(handler.stats()), flush=True)
    server.close()


def main() -> int:
    if installed_version() is None:
        print(json.dumps({"error": INSTALL_HINT}), flush=True)
        return 3
    asyncio.run(serve())
    return 0


# ------------------------------------------------------------------ the bench's side


class MailSink:
    """The subprocess above, from the bench: start, stats, cpu_seconds, close."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "mailsink.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.version: str | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    async def start(self) -> int:
        """Spawn it and wait for its port."""
        with open(self.log_path, "wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flowd.bench.mailsink", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log)
        answer = await self._answer(START_TIMEOUT_S)
        if "port" not in answer:
            raise BenchError(f"the SMTP sink did not start: {answer.get('error') or answer}")
        self.port, self.version = int(answer["port"]), answer.get("aiosmtpd")
        return self.port

    async def stats(self) -> dict[str, int]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        await self.proc.stdin.drain()
        return await self._answer(10.0)

    def cpu_seconds(self) -> float | None:
        return proc_cpu_seconds(self.pid) if self.proc and self.proc.returncode is None else None

    async def close(self) -> None:
        """Close its stdin (it exits) and reap it; killed when it does not go."""
        if self.proc is None or self.proc.returncode is not None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10.0)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def _answer(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        except asyncio.TimeoutError:
            raise BenchError(f"the SMTP sink did not answer within {timeout_s:g} s") from None
        try:
            return json.loads(line) if line else {"error": f"it exited; {self._log_tail()}"}
        except ValueError:
            return {"error": line[:500].decode(errors="replace")}

    def _log_tail(self) -> str:
        try:
            return "its log ends:\n" + self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "no log"


if __name__ == "__main__":
    sys.exit(main())
