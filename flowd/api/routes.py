"""The route table: every endpoint declared once with its access rule, request schema and
query parameters. The aiohttp router, request validation and the OpenAPI document are all
built from this one list."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from flowd.auth import Access, Principal
from flowd.errors import Problem, ValidationError
from flowd.store.records import Page, decode_cursor, encode_cursor
from flowd.validation import (
    INVALID,
    Array,
    Boolean,
    Integer,
    Nullable,
    Object,
    Schema,
    String,
)

if TYPE_CHECKING:
    from flowd.app import Services

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

DEFAULT_LIMIT, MAX_LIMIT = 50, 100


@dataclass(frozen=True)
class Param:
    """A query or path parameter. Values arrive as text; Integer and Boolean parameters are
    converted."""

    name: str
    schema: Schema


CURSOR_DESCRIPTION = ("`next_cursor` of the previous page. Only cursors this server handed out "
                      "are valid (a rule the schema cannot state): anything else is a 422.")
PAGINATION = (
    Param("limit", Integer(min=1, max=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT}).")),
    Param("cursor", String(min_len=1, max_len=200, format="flowd-cursor",
                           description=CURSOR_DESCRIPTION)),
)
# A path parameter nobody declared: any non-empty text; an id that names nothing is a 404.
ANY_ID = String(min_len=1)
TIME = String(format="date-time", description="RFC 3339, UTC, with milliseconds and Z.")


def shape(name: str, fields: dict[str, Schema], *, optional: tuple[str, ...] = (),
          description: str = "") -> Object:
    """A response body's shape: every field is always present unless listed as optional."""
    return Object(fields, required=tuple(k for k in fields if k not in optional),
                  description=description).named(name)  # type: ignore[return-value]


def page_of(item: Schema) -> Object:
    return Object({"data": Array(item), "next_cursor": Nullable(String(
        description="Pass as ?cursor= for the next page; null on the last page."))},
        required=("data", "next_cursor"))


# Routes without a request body still read one when it is sent, so that a typo
# (`{"zz": 1}` to /archive) or a stray body meant for another endpoint is refused rather than
# silently ignored while the action goes ahead.
NO_BODY = Object({}, description="This endpoint takes no body: send none, or {}.")


@dataclass
class Call:
    """What a handler gets: the validated request."""

    request: web.Request
    services: "Services"
    principal: Principal | None
    body: Any
    query: dict[str, Any]

    @property
    def project(self) -> str:
        assert self.principal is not None
        return self.principal.project

    def path(self, name: str) -> str:
        return self.request.match_info[name]

    @property
    def limit(self) -> int:
        return self.query.get("limit", DEFAULT_LIMIT)

    @property
    def before(self) -> int | None:
        cursor = self.query.get("cursor")
        if cursor is None:
            return None
        try:
            return decode_cursor(cursor)
        except ValueError as exc:
            raise ValidationError([Problem("cursor", str(exc), "invalid_cursor")]) from None


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    tag: str
    body: Schema | None = None
    query: tuple[Param, ...] = ()
    status: int = 200
    response: Schema | None = None        # the success body, for the docs
    content_type: str = "application/json"
    errors: tuple[int, ...] = field(default=())
    body_optional: bool = False   # an empty body means {}
    path_params: tuple[Param, ...] = ()   # undeclared ones are ANY_ID
    # Other success statuses and what they mean, e.g. {200: "updated"} beside 201 "created";
    # an Alternative when that answer has its own body type (an HTML page beside the JSON).
    other_statuses: dict[int, "str | Alternative"] = field(default_factory=dict)
    description: str = ""         # longer than the summary: rules the schemas cannot state
    # The object this route answers with is addressed by the paths under this one, with its
    # `id` (and `version`) as their parameters: OpenAPI links, e.g. create → get/update/delete.
    links_to: str | None = None
    # FORM: the body is an HTML form or RFC 8058 one-click post, handed over as its fields
    # (text) without schema checks — a mail provider's unsubscribe must never be refused for
    # how it encodes the form; `body` then only documents it. RAW: the handler reads the body
    # itself (middleware.read_body, under the size limit) — a signature covers its exact
    # bytes; `body` documents it under each of `body_media`.
    body_type: str = "application/json"
    body_media: tuple[str, ...] = ()
    error_pages: bool = False     # errors may also be text/html pages (for browsers' forms)
    # Also answers browsers with an HTML page (text/html) instead of the JSON `response`.
    page: bool = False
    # Headers of the success response worth documenting (name → description), e.g. an
    # export's Content-Disposition.
    response_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Alternative:
    """A success answer with a body type of its own, for the docs."""

    description: str
    content_type: str
    schema: Schema | None


FORM = "application/x-www-form-urlencoded"
RAW = "raw"
# A JSON body, or the same fields posted by an HTML form (checked by the same schema).
JSON_OR_FORM = "json-or-form"
ROUTES: list[Route] = []


def route(method: str, path: str, *, access: Access, summary: str, tag: str,
          body: Schema | None = None, query: tuple[Param, ...] = (), paginated: bool = False,
          status: int = 200, response: Schema | None = None,
          content_type: str = "application/json", errors: tuple[int, ...] = (),
          body_optional: bool = False, path_params: tuple[Param, ...] = (),
          other_statuses: dict[int, "str | Alternative"] | None = None, description: str = "",
          links_to: str | None = None, body_type: str = "application/json",
          body_media: tuple[str, ...] = (), error_pages: bool = False,
          page: bool = False, response_headers: dict[str, str] | None = None
          ) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if paginated and response is not None:
            documented: Schema | None = page_of(response)
        else:
            documented = response
        ROUTES.append(Route(method, path, handler, access, summary, tag, body,
                            query + (PAGINATION if paginated else ()), status, documented,
                            content_type, errors, body_optional, path_params,
                            other_statuses or {}, description, links_to, body_type,
                            body_media, error_pages, page, response_headers or {}))
        return handler
    return register


def _param_value(param: Param, text: str, problems: list[Problem]) -> Any:
    if isinstance(param.schema, Integer):
        try:
            return int(text)
        except ValueError:
            problems.append(Problem(param.name, "must be an integer"))
            return INVALID
    if isinstance(param.schema, Boolean):
        if text not in ("true", "false"):
            problems.append(Problem(param.name, "must be true or false"))
            return INVALID
        return text == "true"
    return text


def parse_params(params: tuple[Param, ...], raw: Any) -> dict[str, Any]:
    """Validated query or path parameters; a ValidationError names every bad one."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for param in params:
        text = raw.get(param.name)
        if text is None:
            continue
        value = _param_value(param, text, problems)
        if value is not INVALID:
            value = param.schema.validate(value, param.name, problems)
        if value is not INVALID:
            values[param.name] = value
    if problems:
        raise ValidationError(problems)
    return values


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(data).encode(), status=status,
                        content_type="application/json")


def page_response(page: Page, render: Callable[[Any], Any] | None = None) -> web.Response:
    render = render or (lambda item: item.to_json())
    return json_response({"data": [render(item) for item in page.items],
                          "next_cursor": encode_cursor(page.next_before)})
