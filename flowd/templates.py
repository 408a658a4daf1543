"""Templates: `{{ path | filter }}` inside the strings of a step's config, and the paths they read.

This module owns the template language of API.md ("Templates in config values"): the roots a path
may start at and their aliases, path syntax and lookup (shared with flowd.conditions), the
filters, how values become text, and compiling a whole config value into a renderer.

Everything is parsed once, when a definition is compiled; rendering only walks precomputed parts
(no parsing, no regex). Templates never execute code: a path only reads data, and rendering never
raises — a missing value is empty text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from functools import lru_cache
from typing import Any, Callable, Mapping

from flowd.errors import Problem, ValidationError
from flowd.validation import MAX_JSON_DEPTH, join

ROOTS = ("contact", "event", "vars", "steps", "run", "now", "loop", "user", "profile", "trait")
_CONTACT_ALIASES = frozenset({"user", "profile", "trait"})
CONTACT_ROOTS = _CONTACT_ALIASES | {"contact"}   # the roots that read the run's contact

# Bounds on user-written text: each loop below over it is limited by one of these.
MAX_PATH_CHARS = 256
MAX_PATH_SEGMENTS = 32
MAX_TEMPLATE_CHARS = 1_000_000  # request bodies are at most 1 MiB anyway
MAX_EXPRESSIONS = 1_000  # per template string
MAX_FILTERS = 16  # per expression


class _Missing:
    """The value of a path that leads nowhere: distinct from JSON null, and falsy."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class PathError(ValueError):
    """A path that cannot be compiled; the message is user-facing."""


class TemplateError(ValidationError):
    """Unparsable template(s). `.problems` lists each one with its JSON path (the path is "" when
    compile_template was given a bare string). A ValidationError, so it can surface as a 422."""

    def __init__(self, message: str | None = None, problems: list[Problem] | None = None) -> None:
        if problems is None:
            problems = [Problem("", message or "invalid template")]
        super().__init__(problems, message)


# ---------------------------------------------------------------------------------------------
# Paths and scopes

_ROOT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `.key` (letters, digits, _, $, - so that step ids and `$browser`-style keys work), `[0]`, and
# `["any key"]` for keys with spaces or dots.
_SEGMENT = re.compile(r'\.([\w$-]+)|\[(\d+)\]|\["([^"\]]*)"\]')

Segment = tuple[str, int | None]  # (dict key, list index if the key is a decimal number)


class Path:
    """A compiled dotted path such as `event.properties.items.0` or `contact.traits["Plan"]`.

    `get(scope)` returns the value or MISSING; it never raises."""

    __slots__ = ("text", "root", "segments", "_get")

    def __init__(self, text: str, root: str, segments: tuple[Segment, ...]) -> None:
        self.text = text
        self.root = root
        self.segments = segments
        self._get = _make_getter(root, segments)

    def get(self, scope: Scope) -> Any:
        return self._get(scope.roots)

    def __repr__(self) -> str:
        return f"Path({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _walk(value: Any, segments: tuple[Segment, ...]) -> Any:
    for key, index in segments:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
            if value is MISSING:
                return MISSING
        elif isinstance(value, list) and index is not None and index < len(value):
            value = value[index]
        else:  # null, a scalar, MISSING, or an index out of range
            return MISSING
    return value


def _make_getter(root: str, segments: tuple[Segment, ...]) -> Callable[[Mapping[str, Any]], Any]:
    # One specialised closure per path, so the alias decisions cost nothing for other roots.
    if not segments:
        source = "contact" if root in _CONTACT_ALIASES else root
        return lambda roots: roots.get(source, MISSING)
    first = segments[0][0]
    if root == "event":
        # `event.amount` is short for `event.properties.amount` when the event has no `amount`.
        def get_event(roots: Mapping[str, Any]) -> Any:
            event = roots.get("event", MISSING)
            if isinstance(event, dict) and first not in event:
                event = event.get("properties", MISSING)
            return _walk(event, segments)
        return get_event
    if root in _CONTACT_ALIASES:
        # `user.x` is `contact.x`, else `contact.traits.x`. A contact always carries its columns
        # (null when unset), so null also falls through: imported definitions read
        # `user.email` where the email lives in traits.
        def get_contact(roots: Mapping[str, Any]) -> Any:
            contact = roots.get("contact", MISSING)
            if isinstance(contact, dict) and contact.get(first) is None:
                contact = contact.get("traits", MISSING)
            return _walk(contact, segments)
        return get_contact

    def get(roots: Mapping[str, Any]) -> Any:
        return _walk(roots.get(root, MISSING), segments)
    return get


def compile_path(text: str) -> Path:
    """`contact.traits.plan`, `event.items.0`, `event.items[0]`, `steps.s1.body["a b"]` → Path.
    Raises PathError for bad syntax or an unknown root."""
    if not isinstance(text, str):
        raise PathError("must be a string such as event.properties.amount")
    return _compile_path(text)


@lru_cache(maxsize=4096)  # Scope.lookup("…") with a literal path stays cheap
def _compile_path(text: str) -> Path:
    if not text:
        raise PathError("path must not be empty")
    if len(text) > MAX_PATH_CHARS:
        raise PathError(f"path must be at most {MAX_PATH_CHARS} characters")
    match = _ROOT_NAME.match(text)
    if match is None:
        raise PathError(f"bad path {text!r}: must start with a name such as contact or event")
    root = match.group()
    if root not in ROOTS:
        raise PathError(f"unknown root {root!r} in {text!r} (roots: {', '.join(ROOTS)})")
    segments: list[Segment] = []
    pos = match.end()
    while pos < len(text):  # bounded: each match consumes at least two characters
        match = _SEGMENT.match(text, pos)
        if match is None:
            raise PathError(f"bad path {text!r} at character {pos + 1}: "
                            "use dots between names, e.g. event.properties.items.0")
        key, index, quoted = match.groups()
        if quoted is not None:
            segments.append((quoted, None))
        else:
            name = key if key is not None else index
            number = int(name) if name.isascii() and name.isdigit() else None
            segments.append((name, number))
        pos = match.end()
    if len(segments) > MAX_PATH_SEGMENTS:
        raise PathError(f"path must have at most {MAX_PATH_SEGMENTS} parts")
    return Path(text, root, tuple(segments))


class Scope:
    """What templates and conditions can read: a dict of roots (`contact`, `event`, `vars`,
    `steps`, `run`, `now`, `loop`) holding plain JSON values. Treat it as read-only."""

    __slots__ = ("roots",)

    def __init__(self, roots: Mapping[str, Any] | None = None) -> None:
        self.roots: dict[str, Any] = dict(roots) if roots else {}

    def lookup(self, path: str | Path) -> tuple[bool, Any]:
        """(found, value); (False, None) when the path leads nowhere. Raises PathError only for a
        path string that does not compile (a programming error, not a data one)."""
        compiled = path if isinstance(path, Path) else compile_path(path)
        value = compiled._get(self.roots)
        return (False, None) if value is MISSING else (True, value)

    def with_roots(self, **roots: Any) -> Scope:
        """A copy with some roots replaced, e.g. `scope.with_roots(loop={"item": x, "index": 2})`."""
        return Scope({**self.roots, **roots})


# ---------------------------------------------------------------------------------------------
# Values → text

def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (ValueError, RecursionError):  # circular or absurdly deep data: rendering never raises
        return ""


def to_text(value: Any) -> str:
    """How a value appears inside a longer string: strings as-is, numbers and booleans as JSON
    text, objects and arrays as compact JSON, null and missing as ""."""
    kind = type(value)
    if kind is str:
        return value
    if value is None or value is MISSING:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    return _dumps(value)


# ---------------------------------------------------------------------------------------------
# Filters

Filter = Callable[[Any], Any]


def _upper(value: Any) -> Any:
    if isinstance(value, str):
        return value.upper()
    # Keep null/missing as they are so that a later `default` still applies.
    return value if value is None or value is MISSING else to_text(value).upper()


def _lower(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    return value if value is None or value is MISSING else to_text(value).lower()


def _json(value: Any) -> str:
    # Missing becomes `null` so that `{"a": {{ x | json }}}` in a body stays valid JSON.
    return "null" if value is MISSING else _dumps(value)


def _default(fallback: Any) -> Filter:
    def default(value: Any) -> Any:
        return fallback if value is MISSING or value is None or value == "" else value
    return default


_PLAIN_FILTERS: dict[str, Filter] = {"upper": _upper, "lower": _lower, "json": _json}
_FILTER_NAMES = "default, upper, lower, json"


# ---------------------------------------------------------------------------------------------
# Templates

_TOKEN = re.compile(r"""\s*(?:
    (?P<close>\}\})
  | (?P<pipe>\|)
  | (?P<colon>:)
  | (?P<string>"(?:[^"\\]|\\.)*"|'[^']*')
  | (?P<word>(?:[^\s|:{}"'\[\]]|\[[^\]]*\])+)
)""", re.VERBOSE)
_NUMBER_LITERAL = re.compile(r"-?(?:0|[1-9]\d{0,30})(?:\.\d{1,30})?(?:[eE][+-]?\d{1,3})?")


class _Expression:
    """One `{{ path | filter … }}`."""

    __slots__ = ("path", "filters")

    def __init__(self, path: Path, filters: tuple[Filter, ...]) -> None:
        self.path = path
        self.filters = filters

    def evaluate(self, scope: Scope) -> Any:
        value = self.path._get(scope.roots)
        for apply in self.filters:
            value = apply(value)
        return value


class Template:
    """A compiled template string. `render(scope)`: a string that is exactly one `{{ … }}` keeps
    its value's JSON type ("" when missing); otherwise the result is text."""

    __slots__ = ("text", "paths", "_parts", "_single")

    def __init__(self, text: str, parts: tuple[str | _Expression, ...]) -> None:
        self.text = text
        self._parts = parts
        self.paths: tuple[Path, ...] = tuple(p.path for p in parts if isinstance(p, _Expression))
        self._single = parts[0] if len(parts) == 1 and isinstance(parts[0], _Expression) else None

    def render(self, scope: Scope) -> Any:
        single = self._single
        if single is not None:
            value = single.evaluate(scope)
            return "" if value is MISSING else value
        return "".join([part if type(part) is str else to_text(part.evaluate(scope))
                        for part in self._parts])

    def render_text(self, scope: Scope, escape: Callable[[str], str] | None = None) -> str:
        """Always text; with `escape`, every value put in is escaped (the template's own text
        is not): `html.escape` for an email's HTML, so a trait holding <script> stays text."""
        if escape is None:
            return "".join([part if type(part) is str else to_text(part.evaluate(scope))
                            for part in self._parts])
        return "".join([part if type(part) is str else escape(to_text(part.evaluate(scope)))
                        for part in self._parts])

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def compile_template(text: str) -> Template:
    """Parse a template string once. Raises TemplateError with a user-facing message."""
    if not isinstance(text, str):
        raise TemplateError("a template must be a string")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"a template must be at most {MAX_TEMPLATE_CHARS} characters")
    parts: list[str | _Expression] = []
    expressions = 0
    pos = 0
    while (start := text.find("{{", pos)) >= 0:
        expressions += 1
        if expressions > MAX_EXPRESSIONS:
            raise TemplateError(f"a template may have at most {MAX_EXPRESSIONS} {{{{ … }}}}")
        if start > pos:
            parts.append(text[pos:start])
        expression, pos = _parse_expression(text, start)
        parts.append(expression)
    if pos < len(text) or not parts:
        parts.append(text[pos:])
    return Template(text, tuple(parts))


def _tokens(text: str, pos: int, where: str) -> Iterator[tuple[str, str, int]]:
    """(kind, token, end) for each token after `pos`, up to and including the closing }}."""
    while True:  # bounded: every token consumes at least one character
        match = _TOKEN.match(text, pos)
        if match is None:
            rest = text[pos:].lstrip()
            if not rest:
                raise TemplateError(f"unclosed {{{{ {where}: add }}}}")
            raise TemplateError(f"unexpected {rest[0]!r} in {{{{ … }}}} {where}")
        pos = match.end()
        kind = match.lastgroup or ""
        yield kind, match.group(kind), pos


def _parse_expression(text: str, start: int) -> tuple[_Expression, int]:
    """Parse the `{{ … }}` starting at `start`; return it and the index just after its `}}`."""
    where = f"at character {start + 1}"
    tokens = _tokens(text, start + 2, where)
    kind, token, end = next(tokens)
    if kind == "close":
        raise TemplateError(f"empty {{{{ }}}} {where}: put a path inside, e.g. {{{{ contact.email }}}}")
    if kind != "word":
        raise TemplateError(f"expected a path after {{{{ {where}, e.g. {{{{ contact.email }}}}")
    try:
        path = compile_path(token)
    except PathError as error:
        raise TemplateError(f"{error} {where}") from None
    filters: list[Filter] = []
    while True:
        kind, token, end = next(tokens)
        if kind == "close":
            return _Expression(path, tuple(filters)), end
        if kind != "pipe":
            raise TemplateError(f"unexpected {token!r} in {{{{ … }}}} {where}: expected | or }}}}")
        if len(filters) >= MAX_FILTERS:
            raise TemplateError(f"at most {MAX_FILTERS} filters per {{{{ … }}}} {where}")
        kind, name, end = next(tokens)
        if kind != "word":
            raise TemplateError(f"expected a filter name after | {where} ({_FILTER_NAMES})")
        if name == "default":
            kind, token, end = next(tokens)
            if kind != "colon":
                raise TemplateError(f'default needs a value {where}, e.g. default: "there"')
            kind, token, end = next(tokens)
            filters.append(_default(_literal(kind, token, where)))
        elif name in _PLAIN_FILTERS:
            filters.append(_PLAIN_FILTERS[name])
        else:
            raise TemplateError(f"unknown filter {name!r} {where} (filters: {_FILTER_NAMES})")


def _literal(kind: str, token: str, where: str) -> Any:
    if kind == "string":
        if token[0] == "'":
            return token[1:-1]
        try:
            return json.loads(token)
        except ValueError:
            raise TemplateError(f"bad string {token} {where}") from None
    if kind == "word" and (token in ("true", "false", "null") or _NUMBER_LITERAL.fullmatch(token)):
        return json.loads(token)
    raise TemplateError(f"default needs a quoted string, a number, true, false or null {where}")


# ---------------------------------------------------------------------------------------------
# Whole config values

Renderer = Callable[[Scope], Any]


class CompiledValue:
    """A JSON value with every template string compiled. `render(scope)` returns the same
    structure with templates rendered; parts without templates are returned as the very same
    objects (not copies), so treat the result as read-only."""

    __slots__ = ("value", "paths", "_render")

    def __init__(self, value: Any, render: Renderer | None, paths: tuple[Path, ...]) -> None:
        self.value = value
        self.paths = paths
        self._render = render

    @property
    def has_templates(self) -> bool:
        return self._render is not None

    def render(self, scope: Scope) -> Any:
        return self.value if self._render is None else self._render(scope)


def compile_value(value: Any, path: str = "",
                  escapes: Mapping[str, Callable[[str], str]] | None = None,
                  literal: Collection[str] = ()) -> CompiledValue:
    """Compile every string containing `{{` inside a JSON value. Raises TemplateError whose
    `.problems` lists every bad template with its JSON path (`config.body.text`,
    `config.items[2]`). `escapes`: top-level keys whose string renders as text with every
    value put in escaped (an email's `html`). `literal`: top-level keys whose value is taken as
    written, never as a template (a code step's source, where `{{` is JavaScript)."""
    problems: list[Problem] = []
    paths: list[Path] = []
    if escapes and isinstance(value, dict) and any(key in value for key in escapes):
        render = _compile_escaped(value, path, escapes, problems, paths)
    elif literal and isinstance(value, dict):
        entries = tuple((key, item, None if key in literal else
                         _compile_node(item, join(path, key), 2, problems, paths))
                        for key, item in value.items())
        render = None if all(r is None for _, _, r in entries) else (
            lambda scope: {key: item if r is None else r(scope) for key, item, r in entries})
    else:
        render = _compile_node(value, path, 1, problems, paths)
    if problems:
        raise TemplateError(problems=problems)
    return CompiledValue(value, render, tuple(paths))


def _compile_escaped(value: dict[str, Any], path: str,
                     escapes: Mapping[str, Callable[[str], str]], problems: list[Problem],
                     paths: list[Path]) -> Renderer | None:
    entries = []
    for key, item in value.items():
        escape = escapes.get(key)
        if escape is not None and isinstance(item, str) and "{{" in item:
            try:
                template = compile_template(item)
            except TemplateError as error:
                problems.append(Problem(join(path, key), error.message))
                continue
            paths.extend(template.paths)
            entries.append((key, item, lambda scope, t=template, e=escape: t.render_text(scope, e)))
        else:
            entries.append((key, item, _compile_node(item, join(path, key), 2, problems, paths)))
    if all(render is None for _, _, render in entries):
        return None
    return lambda scope: {key: item if render is None else render(scope)
                          for key, item, render in entries}


def _compile_node(value: Any, path: str, depth: int, problems: list[Problem],
                  paths: list[Path]) -> Renderer | None:
    """A renderer for `value`, or None when it holds no template (render = the value itself)."""
    if isinstance(value, str):
        if "{{" not in value:
            return None
        try:
            template = compile_template(value)
        except TemplateError as error:
            problems.append(Problem(path, error.message))
            return None
        paths.extend(template.paths)
        return template.render
    if not isinstance(value, (dict, list)):
        return None
    if depth > MAX_JSON_DEPTH:  # recursion below is bounded by this
        problems.append(Problem(path, f"must not nest deeper than {MAX_JSON_DEPTH} levels"))
        return None
    if isinstance(value, dict):
        entries = tuple((key, item, _compile_node(item, join(path, key), depth + 1, problems, paths))
                        for key, item in value.items())
        if all(render is None for _, _, render in entries):
            return None
        return lambda scope: {key: item if render is None else render(scope)
                              for key, item, render in entries}
    items = tuple((item, _compile_node(item, join(path, index), depth + 1, problems, paths))
                  for index, item in enumerate(value))
    if all(render is None for _, render in items):
        return None
    return lambda scope: [item if render is None else render(scope) for item, render in items]


def has_templates(value: Any) -> bool:
    """Whether any string inside `value` (nested at most MAX_JSON_DEPTH deep) contains `{{`."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "{{" in item:
                return True
        elif depth <= MAX_JSON_DEPTH and isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif depth <= MAX_JSON_DEPTH and isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False
