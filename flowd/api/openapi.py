"""The OpenAPI 3.1 document, generated from the route table and the same schema objects the
server validates requests with. Shared shapes (Workflow, Step per type, Trigger, Condition, Run,
Contact, Event…) are components referenced by `$ref`, so client generators make one model each.
"""

from __future__ import annotations

import re
from typing import Any

from flowd import __version__
from flowd.api.routes import ANY_ID, Alternative, Route
from flowd.auth import Access
from flowd.sessions import CSRF_HEADER, SESSION_COOKIE
from flowd.validation import Components

_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")

ERROR_CODES = ("bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed",
               "request_timeout", "conflict", "gone", "payload_too_large", "validation_error",
               "rate_limited", "internal", "unavailable", "ai_unavailable", "ai_bad_answer")
ERROR_SCHEMA = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "enum": list(ERROR_CODES)},
            "message": {"type": "string", "description": "A sentence for people."},
            "details": {"type": "array", "items": {
                "type": "object", "additionalProperties": True,
                "description": "For validation errors: where (a JSON path such as "
                               "`steps[2].config.duration`, or a parameter's name) and what.",
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}}}}}}},
}

_ERRORS = {
    400: ("BadRequest", "The body is not valid JSON, or not a JSON object."),
    401: ("Unauthorized", "Missing, unknown or revoked API key, or no live session."),
    403: ("Forbidden", "The key's role may not do this."),
    404: ("NotFound", "No such object in this project (another project's objects are never "
                      "revealed)."),
    408: ("RequestTimeout", "The request body did not arrive in time."),
    409: ("Conflict", "Conflicts with the object's current state; the message says which."),
    413: ("PayloadTooLarge", "The body is larger than 1 MiB."),
    410: ("Gone", "It was there, and is no more (an expired approval, a run that stopped "
                  "waiting)."),
    422: ("ValidationError", "Validation failed: `details` lists each problem with its path "
                             "(code `validation_error`; composing from a prompt may also "
                             "answer `ai_unavailable` or `ai_bad_answer`)."),
    429: ("RateLimited", "Too many failed attempts from this client, or the AI provider's "
                         "rate limit when composing from a prompt: wait `Retry-After` "
                         "seconds."),
    503: ("Unavailable", "The database is busy (locked by another process), a read took "
                         "longer than [storage] read_timeout_ms (narrow it: a smaller page, a "
                         "narrower filter), the server is shutting down, or (composing from a "
                         "prompt) the AI provider could not be used."),
}

INFO_DESCRIPTION = """\
Durable event-triggered workflow automation on one machine.

* Every error has the body of the `Error` schema.
* Unknown fields in a request body are a 422. A body may carry an object's read-only fields
  (`readOnly` in the schemas) as GET returns them: they are ignored.
* Endpoints that take no body accept an empty body or `{}`; anything else is refused (400 for
  a body that is not a JSON object, 422 for fields), and nothing is done.
* A request that is not valid HTTP (a header holding a NUL, a request line or header longer
  than 16 KiB) is refused by the HTTP layer with a plain-text 400 before it reaches the API.
* Times are RFC 3339 UTC strings with milliseconds and `Z`; durations are ISO 8601 (`PT1H`,
  `P3D`, `PT0.5S`).
* A workflow is saved with its `issues`: problems that a schema cannot state (a `next` naming
  no step, a duration that does not parse, a condition path that cannot exist, a required
  config field still missing in a draft) are issues, not 422s. A workflow with an `error`
  issue cannot be active.
* Links flowd puts in messages (unsubscribe, open pixel, click redirects) are absolute, on
  `[server] public_url` (default: the address the server listens on). Their routes take no API
  key, and a token this server did not make is a 404. `POST /v1/unsubscribe/{token}` takes an
  HTML form (RFC 8058's `List-Unsubscribe=One-Click`), not JSON, and accepts any body.
* A message's `to` is its recipients, comma-separated: email addresses, an SMS's E.164
  number, a push notification's device token (one message per token), a Slack webhook URL
  without its secret last segment. A messaging step (`send_email`, `send_sms`, `send_push`,
  `slack`) whose message was suppressed takes its `suppressed` branch when `next` maps one,
  else the default path; a bounce (every recipient refused with a 5xx) fails the step with
  error code `bounced`, an SMS number Twilio calls invalid with `invalid_number` (later SMS to
  it are suppressed as `bad_number`), a push notification no token received with the
  provider's code — for its `error` branch or `on_error`. Phone numbers are E.164.
"""


SESSION_COOKIE_DESCRIPTION = (
    f"The builder page's session (POST /v1/session signs in with an API key), used when a "
    f"request has no `Authorization` header; it has its key's project and role. On every "
    f"method but GET and HEAD the request must also carry the header `{CSRF_HEADER}` with the "
    f"session's `csrf_token` (from POST or GET /v1/session), else 403 `forbidden`.")


def openapi_path(path: str) -> str:
    """aiohttp's `{name:regex}` → OpenAPI's `{name}`."""
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _parameters(route: Route, components: Components) -> list[dict[str, Any]]:
    declared = {p.name: p.schema for p in route.path_params}
    params = [{"name": name, "in": "path", "required": True,
               "schema": declared.get(name, ANY_ID).json_schema(components)}
              for name in _PATH_PARAM.findall(route.path)]
    params += [{"name": p.name, "in": "query", "required": False,
                "schema": p.schema.json_schema(components)} for p in route.query]
    for param in params:
        description = param["schema"].get("description")
        if description:
            param["description"] = description
    return params


def _error_statuses(route: Route) -> set[int]:
    errors = set(route.errors)
    if route.access is not Access.PUBLIC:
        errors |= {401, 403, 503}   # the key is looked up in the database
    if route.method in ("POST", "PUT", "PATCH"):
        # Every such route reads a body, if only to refuse one it does not take.
        errors |= {400, 408, 413, 422}
    if route.query or route.path_params:
        errors.add(422)
    return errors


def _links(route: Route, routes: list[Route]) -> dict[str, Any]:
    """What a client (or a stateful fuzzer) can do next with the object this route returns."""
    if route.links_to is None:
        return {}
    links = {}
    for target in routes:
        if target is route or not openapi_path(target.path).startswith(route.links_to):
            continue
        names = _PATH_PARAM.findall(target.path)
        sources = {"id": "$response.body#/id", "version": "$response.body#/version"}
        if all(name in sources for name in names):
            links[target.handler.__name__] = {
                "operationId": target.handler.__name__,
                "parameters": {name: sources[name] for name in names}}
    return links


def _success(route: Route, routes: list[Route], components: Components) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    statuses = {route.status: "Success.", **route.other_statuses}
    links = _links(route, routes)
    for status, text in sorted(statuses.items()):
        content_type, body = route.content_type, route.response
        if isinstance(text, Alternative):
            text, content_type, body = text.description, text.content_type, text.schema
        response: dict[str, Any] = {"description": text}
        if status != 204:
            schema = body.json_schema(components) if body else {}
            response["content"] = {content_type: {"schema": schema}}
            if route.page:
                response["content"]["text/html"] = {"schema": {"type": "string"}}
        if route.response_headers and status == route.status:
            response["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                   for name, text in route.response_headers.items()}
        if links:
            response["links"] = links
        responses[str(status)] = response
    return responses


def _operation(route: Route, routes: list[Route], components: Components) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary, "tags": [route.tag],
                          "operationId": route.handler.__name__}
    if route.description:
        op["description"] = route.description
    params = _parameters(route, components)
    if params:
        op["parameters"] = params
    if route.body is not None:
        schema = route.body.json_schema(components)
        op["requestBody"] = {"required": not route.body_optional, "content": {
            media: {"schema": schema} for media in route.body_media or (route.body_type,)}}
    responses = _success(route, routes, components)
    for status in sorted(_error_statuses(route)):
        responses[str(status)] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
        if route.error_pages:
            # A public route's 401 is about something else than an API key.
            text = ("Not accepted: the operation's description says why." if status == 401
                    and route.access is Access.PUBLIC else _ERRORS[status][1])
            responses[str(status)] = {"description": text, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
                "text/html": {"schema": {"type": "string", "description": (
                    "The same error as a page, for a browser (see the 200 answer).")}}}}
    op["responses"] = responses
    if route.access is Access.PUBLIC:
        op["security"] = []
    elif route.access is Access.SESSION:
        op["security"] = [{"sessionCookie": []}]
    else:
        op["security"] = [{"bearer": []}, {"sessionCookie": []}]
    return op


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    components = Components()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(
            route, routes, components)
    error_ref = {"$ref": "#/components/schemas/Error"}
    responses = {name: {"description": text, "content": {"application/json": {"schema": error_ref}}}
                 for name, text in _ERRORS.values()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "flowd", "version": __version__, "description": INFO_DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API key: `Bearer flowd_…`."},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                                  "description": SESSION_COOKIE_DESCRIPTION}},
            "schemas": {"Error": ERROR_SCHEMA, **dict(sorted(components.schemas.items()))},
            "responses": responses,
        },
    }
