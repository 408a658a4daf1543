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
from flowd.schema import INVALID, Integer, Schema, String
from flowd.store.records import Page, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from flowd.app import Services

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

DEFAULT_LIMIT, MAX_LIMIT = 50, 100


@dataclass(frozen=True)
class Param:
    """A query parameter. Values arrive as text; Integer parameters are converted."""

    name: str
    schema: Schema


PAGINATION = (
    Param("limit", Integer(min=1, max=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT}).")),
    Param("cursor", String(min_len=1, max_len=200, description="`next_cursor` of the previous page.")),
)


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
            raise ValidationError([Problem("cursor", str(exc))]) from None


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
    response: dict[str, Any] | None = None  # JSON Schema of the success body, for the docs
    content_type: str = "application/json"
    errors: tuple[int, ...] = field(default=())
    body_optional: bool = False   # an empty body means {}


ROUTES: list[Route] = []


def route(method: str, path: str, *, access: Access, summary: str, tag: str,
          body: Schema | None = None, query: tuple[Param, ...] = (), paginated: bool = False,
          status: int = 200, response: dict[str, Any] | None = None,
          content_type: str = "application/json", errors: tuple[int, ...] = (),
          body_optional: bool = False) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, path, handler, access, summary, tag, body,
                            query + (PAGINATION if paginated else ()), status, response,
                            content_type, errors, body_optional))
        return handler
    return register


def parse_query(route: Route, raw: Any) -> dict[str, Any]:
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for param in route.query:
        text = raw.get(param.name)
        if text is None:
            continue
        value: Any = text
        if isinstance(param.schema, Integer):
            try:
                value = int(text)
            except ValueError:
                problems.append(Problem(param.name, "must be an integer"))
                continue
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
