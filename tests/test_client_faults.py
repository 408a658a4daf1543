"""A client's faults (hanging up mid-body, bytes aiohttp's parser rejects, a body it cannot
decode) are one INFO line each; the server's own faults stay ERRORs with their tracebacks."""

from __future__ import annotations

import json
import logging
from typing import AsyncIterator, Iterator

import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.log import server_logger

from flowd.api import client_faults
from flowd.app import create_app
from flowd.config import Config
from tests.conftest import ADMIN_KEY, Api, eventually
from tests.raw_http import chunk, exchange, hang_up_mid_body, request_head

AUTH = f"Authorization: Bearer {ADMIN_KEY}"
EVENT = json.dumps({"name": "signup", "contact_id": "u1"}).encode()


@pytest.fixture
def client_fault_filter() -> Iterator[client_faults.ClientFaultFilter]:
    """The filter as `python -m flowd` installs it, removed again after the test."""
    installed = client_faults.install()
    yield installed
    server_logger.removeFilter(installed)


@pytest.fixture
def info_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


@pytest.fixture
async def served_port(config: Config) -> AsyncIterator[int]:
    """flowd behind a plain AppRunner as `python -m flowd` serves it: unlike aiohttp's test
    server, that does not cancel the handler of a client that hangs up (handler_cancellation),
    so the handler's body read is what notices."""
    runner = web.AppRunner(create_app(config, admin_key=ADMIN_KEY), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner.addresses[0][1]
    await runner.cleanup()


def port(api: Api) -> int:
    return api.client.server.port


def records_saying(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def assert_no_error_and_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    loud = [(r.name, r.levelname, r.getMessage()) for r in caplog.records
            if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == []


async def event_count(api: Api) -> int:
    status, body = await api.get("/v1/events?limit=100")
    assert status == 200
    return len(body["data"])


@pytest.mark.parametrize("framing,partial", [
    (f"Content-Length: {len(EVENT)}", EVENT[:10]),
    ("Transfer-Encoding: chunked", chunk(EVENT[:10])),
])
async def test_a_client_that_hangs_up_mid_body_is_one_info_line(served_port: int, info_log,
                                                                 framing, partial):
    head = request_head("POST", "/v1/events", AUTH, "Content-Type: application/json", framing,
                        "Expect: 100-continue", "X-Request-Id: hangs-up")
    await hang_up_mid_body(served_port, head, partial)

    async def logged() -> list[logging.LogRecord]:
        return records_saying(info_log, "closed the connection")
    [record] = await eventually(logged)
    assert record.name == "flowd.api" and record.levelno == logging.INFO
    message = record.getMessage()
    assert "hangs-up" in message and "127.0.0.1" in message and "/v1/events" in message
    assert_no_error_and_no_traceback(info_log)
    events = await exchange(served_port, request_head("GET", "/v1/events", AUTH))
    assert events.status == 200 and events.json()["data"] == []


@pytest.mark.parametrize("bad_line", [b"X-Bad: a\x00b", b"X-No-Colon", b"X-Bad\x00: a"])
async def test_a_header_the_parser_rejects_is_400_and_one_info_line(api: Api, info_log,
                                                                    client_fault_filter, bad_line):
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + bad_line + b"\r\n\r\n"
    response = await exchange(port(api), request)
    # aiohttp answers this itself, before any middleware: its own text/plain 400.
    assert response.status == 400

    async def logged() -> list[logging.LogRecord]:
        return records_saying(info_log, "rejected a malformed request")
    [record] = await eventually(logged)
    assert record.name == "aiohttp.server" and record.levelno == logging.INFO
    assert "127.0.0.1" in record.getMessage()
    assert_no_error_and_no_traceback(info_log)


async def test_a_body_aiohttp_cannot_decode_is_400_and_one_info_line(api: Api, info_log,
                                                                     client_fault_filter):
    response = await exchange(port(api), request_head(
        "POST", "/v1/events", AUTH, "Content-Type: application/json", "Content-Encoding: gzip",
        "Content-Length: 10") + b"not gzip!!")
    assert response.status == 400, response
    assert response.json()["error"]["code"] == "bad_request"
    assert "content-encoding" in response.json()["error"]["message"]
    assert response.headers["connection"] == "close"

    # aiohttp meets the undecodable body again while draining it after the answer.
    async def logged() -> list[logging.LogRecord]:
        return records_saying(info_log, "could not decode a request body")
    [record] = await eventually(logged)
    assert record.name == "aiohttp.server" and record.levelno == logging.INFO
    assert_no_error_and_no_traceback(info_log)
    assert await event_count(api) == 0


# --- the filter itself ---------------------------------------------------------------------

@pytest.fixture
def filtered_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.client_faults")
    client_faults.install(logger)
    yield logger
    logger.filters.clear()


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize("exc,says", [
    (BadHttpMessage("Invalid header value char:\n\n  b'X: \\x00'\n     ^"),
     "rejected a malformed request: Invalid header value char"),
    (ConnectionResetError("Connection lost"), "the client hung up: Connection lost"),
])
def test_the_filter_turns_a_client_fault_into_one_info_line(filtered_logger, info_log, exc, says):
    filtered_logger.exception("Error handling request from %s", "10.1.2.3", exc_info=raised(exc))
    [record] = info_log.records
    assert record.levelno == logging.INFO and record.exc_info is None
    assert record.getMessage() == f"{says} (Error handling request from 10.1.2.3)"


def test_the_filter_leaves_server_faults_alone(filtered_logger, info_log):
    filtered_logger.exception("Error handling request from %s", "10.1.2.3",
                              exc_info=raised(RuntimeError("a bug")))
    filtered_logger.error("no exception at all")
    unhandled, plain = info_log.records
    assert unhandled.levelno == logging.ERROR and unhandled.exc_info[0] is RuntimeError
    assert unhandled.getMessage() == "Error handling request from 10.1.2.3"
    assert plain.levelno == logging.ERROR and plain.getMessage() == "no exception at all"


def test_a_demoted_record_obeys_the_info_threshold(filtered_logger, caplog):
    caplog.set_level(logging.WARNING)
    filtered_logger.exception("Error handling request from %s", "10.1.2.3",
                              exc_info=raised(BadHttpMessage("bad")))
    assert caplog.records == []


def test_install_adds_the_filter_once(filtered_logger):
    assert client_faults.install(filtered_logger) is client_faults.install(filtered_logger)
    assert len(filtered_logger.filters) == 1
