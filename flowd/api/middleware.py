"""Request plumbing shared by every route: request ids, the error envelope, authentication and
role checks, body size and JSON parsing, and schema validation.

No traceback ever reaches a client: unexpected exceptions are logged with the request id, and
the client gets a 500 envelope carrying the same id (also in the `X-Request-Id` header). A
client that hangs up before sending its whole body is the client's fault: one INFO line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import re
import secrets
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from flowd.api import client_faults
from flowd.api.routes import (
    FORM,
    JSON_OR_FORM,
    NO_BODY,
    RAW,
    Call,
    Route,
    json_response,
    parse_params,
)
from flowd.auth import Access, Principal, require
from flowd.errors import (
    BadRequest,
    ClientDisconnected,
    FlowdError,
    Internal,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    RequestTimeout,
    ValidationError,
)
from flowd.sessions import SESSION_COOKIE
from flowd.validation import INVALID

log = logging.getLogger("flowd.api")

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_HEADER = "X-Request-Id"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SERVICES: web.AppKey[Any] = web.AppKey("services", object)
BODY_TIMEOUT: web.AppKey[float] = web.AppKey("body_timeout", float)
# For handlers that stream: their headers are sent before the middleware sees the response.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


def error_response(error: FlowdError) -> web.Response:
    response = json_response(error.to_json(), status=error.status)
    response.headers.update(error.headers)
    if error.closes_connection:
        response.force_close()
    return response


def _from_http_exception(exc: web.HTTPException, method: str) -> FlowdError:
    if exc.status == 404:
        return NotFound("no such endpoint; see /v1/openapi.json")
    if exc.status == 405:
        error = MethodNotAllowed(f"this endpoint does not accept {method}")
        allowed = exc.headers.get("Allow")
        if allowed:
            error.headers["Allow"] = allowed
        return error
    if exc.status == 413:
        return PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
    error = FlowdError(exc.reason or "request failed")
    error.status = exc.status
    error.code = "bad_request" if 400 <= exc.status < 500 else "internal"
    return error


# Request ids only need to be unique (they tie a response to its log lines), not secret: a
# random per-process prefix and a counter, rather than a read of the OS's random source per
# request (4% of the profile's samples under single-event ingest).
_REQUEST_ID_PREFIX = secrets.token_hex(4)
_request_numbers = itertools.count(1)


def _new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFF:08x}"


@web.middleware
async def envelope_middleware(request: web.Request,
                              handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                              ) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _CLIENT_REQUEST_ID.fullmatch(incoming) else _new_request_id()
    request[REQUEST_ID] = request_id
    try:
        _refuse_declared_oversize(request)
        response = await handler(request)
    except ClientDisconnected as gone:
        # The client's doing, and its answer will not be delivered: worth a line, not an ERROR.
        log.info("request %s %s %s from %s: %s", request_id, request.method, request.path,
                 request.remote, gone.message)
        response = error_response(gone)
    except FlowdError as error:
        response = error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(_from_http_exception(exc, request.method))
    except Exception:
        log.exception("request %s %s %s failed", request_id, request.method, request.path)
        response = error_response(Internal(
            f"internal error; the server log has the details under request id {request_id}"))
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _refuse_declared_oversize(request: web.Request) -> None:
    # aiohttp only counts a body's bytes as they are read, so a declared length over the limit
    # would be waited for (on routes that take no body, left unread): refuse it before reading.
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes "
                              f"(Content-Length: {declared})")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e400 is valid JSON but no float: Python reads it as inf, which SQLite's JSON functions
    # then refuse to read back (a stored trait would break every audience over it).
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


async def read_json(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    return parse_json(await read_body(request), optional=optional)


def parse_json(raw: bytes, *, optional: bool = False) -> dict[str, Any]:
    """A body's JSON object (400 for anything else); with `optional`, no body at all is {}."""
    if not raw.strip():
        if optional:
            return {}
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadRequest("request body nests too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    # JSON may escape half of a UTF-16 surrogate pair (\ud800), which is no Unicode text and
    # could not be stored. The byte scan is cheap; only a hit (an emoji written as an escaped
    # pair also is one) pays for the full check.
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("request body is not valid JSON text: it contains an unpaired "
                             "surrogate escape such as \\ud800") from None
    return value


MAX_FORM_FIELDS = 20


def read_form(raw: bytes, content_type: str) -> dict[str, str]:
    """An url-encoded form's fields (the first value of each); any other body has none."""
    if content_type != FORM:
        return {}
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(f"the form is not UTF-8 text of at most {MAX_FORM_FIELDS} "
                         "url-encoded fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


async def read_body(request: web.Request) -> bytes:
    """The whole body, read chunk by chunk so that a client that stops sending is answered.

    Unlike `request.read()`, each read waits at most `body_timeout` (a body shorter than its
    Content-Length, or a chunked body that never ends, would be waited for until the client
    gives up), while a slow but steady upload is never cut off — nginx's client_body_timeout.
    A chunked body has no declared length, so its size is checked as it arrives.
    """
    body = bytearray()
    while chunk := await _next_chunk(request, len(body)):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)


async def _next_chunk(request: web.Request, received: int) -> bytes:
    """The body's next bytes as they arrive (b"" at its end), translating aiohttp's ways of
    saying that the body will not arrive into the errors clients and the log should see."""
    content = request.content
    try:
        # Most bodies arrive with their headers: take them without arming a timer (two timers
        # cost about 8 µs a request, some 7% of the server's CPU time for a single event).
        arrived = content.read_nowait()
        if arrived or content.is_eof():
            return arrived
        return await _awaited_chunk(request, received)
    except ConnectionResetError:
        # What aiohttp's connection_lost() sets on the body of the request in progress.
        raise ClientDisconnected("the client closed the connection before sending the whole "
                                 "body") from None
    except (web.RequestPayloadError, HttpProcessingError) as exc:
        # A body aiohttp could not decode: bad gzip (wrapped in RequestPayloadError), or bad
        # chunking as its pure-Python parser reports it (its C parser just stops the body).
        raise MalformedBody(f"request body could not be decoded: "
                            f"{client_faults.describe(exc)}") from None


async def _awaited_chunk(request: web.Request, received: int) -> bytes:
    idle_timeout = request.app[BODY_TIMEOUT]
    try:
        async with asyncio.timeout(idle_timeout):
            return await request.content.readany()
    except TimeoutError:
        raise RequestTimeout(f"the request body stalled: nothing arrived for {idle_timeout:g} s "
                             f"after {received} bytes") from None


async def _authenticate(request: web.Request, services: Any, access: Access) -> Principal:
    """An Authorization header is an API key, as always; without one, the builder page's
    session cookie stands for the key it was made with (and brings its CSRF rule)."""
    header = request.headers.get("Authorization")
    if access is Access.SESSION or (not header and SESSION_COOKIE in request.cookies):
        return (await services.sessions.authenticate(request)).principal
    return await services.auth.authenticate(header)


def bind(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a route's handler with authentication, role check, parsing and validation."""
    body_schema = route.body or NO_BODY
    # A route that takes no body accepts an empty one; so may one whose body is optional.
    body_optional = route.body is None or route.body_optional

    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        principal = None
        if route.access is not Access.PUBLIC:
            principal = await _authenticate(request, services, route.access)
            require(principal, route.access)
        if route.path_params:
            parse_params(route.path_params, request.match_info)
        body = None
        if route.body_type == RAW:
            pass   # the handler reads it
        elif route.body_type == FORM:
            body = read_form(await read_body(request), request.content_type)
        elif route.body is not None or request.body_exists:
            if route.body_type == JSON_OR_FORM and request.content_type == FORM:
                raw = read_form(await read_body(request), FORM)
            else:
                raw = await read_json(request, optional=body_optional)
            problems: list[Problem] = []
            body = body_schema.validate(raw, "", problems)
            if body is INVALID:
                raise ValidationError(problems)
        query = parse_params(route.query, request.query) if route.query else {}
        return await route.handler(Call(request, services, principal, body, query))

    return handle
