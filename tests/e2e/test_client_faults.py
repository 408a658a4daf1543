"""The real `python -m flowd` on raw sockets: client faults are one INFO line in its log (no
ERROR, no traceback), and a stalled body is a 408 after the configured body_timeout."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import ServerProcess, wait_until
from tests.raw_http import exchange_sync, hang_up_mid_body_sync, request_head

EVENT = json.dumps({"name": "signup", "contact_id": "u1"}).encode()


def log_lines_saying(server: ServerProcess, text: str) -> list[str]:
    return [line for line in server.log_text().splitlines() if text in line]


def assert_no_error_and_no_traceback(server: ServerProcess) -> None:
    log = server.log_text()
    assert " ERROR " not in log and "Traceback" not in log, log


@pytest.mark.parametrize("bad_line", [b"X-Bad: a\x00b", b"X-No-Colon"])
def test_a_header_the_parser_rejects_is_one_info_line(server: ServerProcess, bad_line):
    response = exchange_sync(server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                          + bad_line + b"\r\n\r\n")
    assert response is None or response.status == 400
    [line] = wait_until(lambda: log_lines_saying(server, "rejected a malformed request"), 10,
                        "the log line")
    assert " INFO aiohttp.server: " in line and "127.0.0.1" in line
    assert_no_error_and_no_traceback(server)


def test_a_client_that_hangs_up_mid_body_is_one_info_line(server: ServerProcess):
    head = request_head("POST", "/v1/events", f"Authorization: Bearer {server.key}",
                        "Content-Type: application/json", f"Content-Length: {len(EVENT)}",
                        "Expect: 100-continue", "X-Request-Id: hangs-up")
    hang_up_mid_body_sync(server.port, head, EVENT[:10])
    [line] = wait_until(lambda: log_lines_saying(server, "closed the connection"), 10,
                        "the log line")
    assert " INFO flowd.api: " in line and "hangs-up" in line and "127.0.0.1" in line
    assert_no_error_and_no_traceback(server)
    assert server.get("/v1/events").body["data"] == []


def test_a_stalled_body_is_408_after_the_configured_body_timeout(start_server):
    server = start_server(env={"FLOWD_SERVER_BODY_TIMEOUT": "0.5"})
    response = exchange_sync(server.port, request_head(
        "POST", "/v1/events", f"Authorization: Bearer {server.key}",
        "Content-Type: application/json", f"Content-Length: {len(EVENT)}") + EVENT[:10])
    assert response is not None and response.status == 408
    assert response.json()["error"]["code"] == "request_timeout"
    assert "0.5 s" in response.json()["error"]["message"]
    assert response.headers["connection"] == "close"
    assert_no_error_and_no_traceback(server)


def test_a_long_url_within_16_kib_reaches_the_api_and_a_longer_one_does_not(
        server: ServerProcess):
    # The longest URL the documented parameters allow is over aiohttp's default 8 KiB limit.
    within = server.get("/v1/contacts?unused=" + "%C3%A9" * 2000)   # 12 KB: a JSON answer
    assert within.status == 200 and within.body == {"data": [], "next_cursor": None}
    beyond = server.get("/v1/contacts?email=" + "a" * 20_000)
    assert beyond.status == 400   # aiohttp's own plain-text answer, as the document says
    assert_no_error_and_no_traceback(server)
