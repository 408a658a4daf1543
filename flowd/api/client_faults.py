"""Client faults in aiohttp's own server log: one INFO line each, instead of an ERROR with a
traceback.

aiohttp logs these on its `aiohttp.server` logger at ERROR, with a traceback, although the
client caused them:
- "Error handling request from <peer>": its HTTP parser rejected a request (a NUL byte in a
  header, a malformed request line, header or chunk size) with an `HttpProcessingError`, mostly
  `BadHttpMessage` or a subclass. aiohttp answers 400 itself; flowd's middleware never sees it.
- "Unhandled exception": after flowd answered, aiohttp drains the rest of the body and meets
  the `RequestPayloadError` it could not decode (bad gzip, or bad chunking in aiohttp's
  pure-Python parser) again.
- either one with a `ConnectionResetError` (aiohttp's `ClientConnectionResetError` is one): the
  client hung up.
An ERROR pages someone, and a parser's traceback tells them nothing. Every other record, a
server fault among them, passes unchanged.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger
from aiohttp.web import RequestPayloadError

_CLIENT_FAULTS: tuple[tuple[type[BaseException], str], ...] = (
    (HttpProcessingError, "rejected a malformed request"),
    (RequestPayloadError, "could not decode a request body"),
    (ConnectionResetError, "the client hung up"),
)


def describe(exc: BaseException) -> str:
    """The first line of what went wrong, without aiohttp's "400, message:" framing."""
    # RequestPayloadError wraps str() of the parser's error, which it keeps as its cause.
    cause = exc.__cause__ if isinstance(exc.__cause__, HttpProcessingError) else exc
    text = cause.message if isinstance(cause, HttpProcessingError) else str(cause)
    lines = text.strip().splitlines()
    return lines[0].rstrip(":") if lines else type(exc).__name__


class ClientFaultFilter(logging.Filter):
    """Rewrites records of client faults to INFO without a traceback (see the module)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        what = _client_fault(exc)
        if exc is None or what is None:
            return True
        record.msg, record.args = "%s: %s (%s)", (what, describe(exc), record.getMessage())
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
        # The logger let this record through as an ERROR; as INFO it must pass the threshold.
        return self._logger.isEnabledFor(logging.INFO)


def _client_fault(exc: BaseException | None) -> str | None:
    for cls, what in _CLIENT_FAULTS:
        if isinstance(exc, cls):
            return what
    return None


def install(logger: logging.Logger = server_logger) -> ClientFaultFilter:
    """Add the filter to `logger` once (the server may be set up more than once per process)."""
    for existing in logger.filters:
        if isinstance(existing, ClientFaultFilter):
            return existing
    client_faults = ClientFaultFilter(logger)
    logger.addFilter(client_faults)
    return client_faults
