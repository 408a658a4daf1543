"""HTTP/1.1 over a raw TCP socket, for requests no well-behaved client library sends: bodies
shorter than their Content-Length, stalled or oversized chunked bodies, NUL bytes in headers.

Every read has a generous deadline, so a server that waits forever fails the test instead of
hanging it; no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any

DEADLINE = 30.0


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]   # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def parse_response(data: bytes) -> RawResponse | None:
    """The response at the start of `data`, or None while it is incomplete."""
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        return None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None
    return RawResponse(int(status_line.split()[1]), headers, rest[:length])


async def exchange(port: int, *parts: bytes | float) -> RawResponse:
    """Send `parts` (a float pauses that many seconds) and read one response, keeping the
    connection open meanwhile: the server must answer without the client hanging up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                writer.write(part)
                await writer.drain()
        return await asyncio.wait_for(_read_response(reader), DEADLINE)
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> RawResponse:
    data = b""
    while (response := parse_response(data)) is None:
        more = await reader.read(65536)
        if not more:
            raise AssertionError(f"connection closed before a whole response: {data!r}")
        data += more
    return response


def exchange_sync(port: int, data: bytes) -> RawResponse | None:
    """Send `data` and read one response; None when the server closes without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(data)
        received = b""
        while (response := parse_response(received)) is None:
            more = sock.recv(65536)
            if not more:
                return None
            received += more
        return response


async def hang_up_mid_body(port: int, head: bytes, partial_body: bytes) -> None:
    """Send a request head with `Expect: 100-continue`, wait for the server's go-ahead (the
    request is then in flowd's hands), send part of the body and close the connection."""
    assert b"Expect: 100-continue" in head
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        go_ahead = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        assert go_ahead.startswith(b"HTTP/1.1 100 "), go_ahead
        writer.write(partial_body)
        await writer.drain()
    finally:
        writer.close()


def hang_up_mid_body_sync(port: int, head: bytes, partial_body: bytes) -> None:
    """`hang_up_mid_body` for a server in another process."""
    assert b"Expect: 100-continue" in head
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(head)
        go_ahead = b""
        while b"\r\n\r\n" not in go_ahead:
            more = sock.recv(1024)
            assert more, f"connection closed before the go-ahead: {go_ahead!r}"
            go_ahead += more
        assert go_ahead.startswith(b"HTTP/1.1 100 "), go_ahead
        sock.sendall(partial_body)
