"""The OpenAPI 3.1 document, generated from the route table and the same request schemas the
server validates with."""

from __future__ import annotations

import re
from typing import Any

from flowd import __version__
from flowd.api.routes import Route
from flowd.auth import Access

_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")

ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "enum": [
                "bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed",
                "request_timeout", "conflict", "gone", "payload_too_large", "validation_error",
                "rate_limited", "internal", "unavailable"]},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {
                "type": "object", "properties": {"path": {"type": "string"},
                                                 "message": {"type": "string"}}}}}}},
}

_ERROR_TEXT = {400: "Malformed JSON, or not a JSON object.", 401: "Missing or unknown API key.",
               403: "The key's role may not do this.", 404: "No such object in this project.",
               409: "Conflicts with the object's state.", 413: "Body larger than 1 MiB.",
               422: "Validation failed; `details` lists each problem with its path."}


def openapi_path(path: str) -> str:
    """aiohttp's `{name:regex}` → OpenAPI's `{name}`."""
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _is_paginated(route: Route) -> bool:
    return any(p.name == "cursor" for p in route.query)


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary, "tags": [route.tag],
                          "operationId": route.handler.__name__}
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in _PATH_PARAM.findall(route.path)]
    params += [{"name": p.name, "in": "query", "required": False, "schema": p.schema.json_schema()}
               for p in route.query]
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": route.body.json_schema()}}}
    success: dict[str, Any] = {"description": "Success."}
    if route.status != 204:
        schema = route.response or {}
        if _is_paginated(route):
            schema = {"type": "object", "required": ["data", "next_cursor"], "properties": {
                "data": {"type": "array", "items": schema},
                "next_cursor": {"type": ["string", "null"]}}}
        success["content"] = {route.content_type: {"schema": schema}}
    responses: dict[str, Any] = {str(route.status): success}
    errors = set(route.errors)
    if route.access is not Access.PUBLIC:
        errors |= {401, 403}
        op["security"] = [{"bearer": []}]
    if route.body is not None:
        errors |= {400, 413, 422}
    if route.query:
        errors.add(422)
    for status in sorted(errors):
        responses[str(status)] = {"description": _ERROR_TEXT[status], "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    op["responses"] = responses
    return op


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "flowd", "version": __version__,
                 "description": "Durable event-triggered workflow automation on one machine. "
                                "Every error has the body shown in the Error schema."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "An API key: `Bearer flowd_…`."}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
    }
