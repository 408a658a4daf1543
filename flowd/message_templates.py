"""Message templates: the fields of each channel, checking that they parse, and rendering them
with the run's (or a preview's) scope — the same `{{ … }}` language as step configs. Values put
into an email's `html` are HTML-escaped; nothing is escaped in a subject, a text part or an SMS
(they are not HTML). Used by the templates API, its preview, and the messaging steps (a stored
template or an inline one render the same way)."""

from __future__ import annotations

import html
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from flowd.errors import Problem
from flowd.templates import (
    CompiledValue,
    Scope,
    Template,
    TemplateError,
    compile_template,
    compile_value,
)
from flowd.validation import join

# The fields each channel's template (or inline message) has; `data` is a JSON object whose
# strings may hold templates.
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "html", "text"),
    "sms": ("body",),
    "push": ("title", "body", "data"),
}
_ESCAPES: dict[tuple[str, str], Callable[[str], str]] = {("email", "html"): html.escape}
_CACHE_SIZE = 256


@dataclass(frozen=True)
class CompiledContent:
    channel: str
    parts: tuple[tuple[str, Template | CompiledValue], ...]

    def render(self, scope: Scope) -> dict[str, Any]:
        rendered: dict[str, Any] = {}
        for name, part in self.parts:
            if isinstance(part, Template):
                rendered[name] = part.render_text(scope, _ESCAPES.get((self.channel, name)))
            else:
                rendered[name] = part.render(scope)
        return rendered


def compile_content(channel: str, content: dict[str, Any], path: str = "") -> CompiledContent:
    """Raises TemplateError listing every field that does not parse, with its path."""
    problems: list[Problem] = []
    parts: list[tuple[str, Template | CompiledValue]] = []
    for name in CHANNEL_FIELDS[channel]:
        value = content.get(name)
        if value is None:
            continue
        try:
            parts.append((name, compile_template(value) if isinstance(value, str)
                          else compile_value(value, join(path, name))))
        except TemplateError as error:
            problems += [Problem(p.path or join(path, name), p.message, "invalid_template")
                         for p in error.problems]
    if problems:
        raise TemplateError(problems=problems)
    return CompiledContent(channel, tuple(parts))


class ContentCache:
    """Compiled templates by (id, updated_at): a template is parsed once per version."""

    def __init__(self) -> None:
        self._compiled: OrderedDict[tuple[str, int], CompiledContent] = OrderedDict()

    def get(self, key: tuple[str, int], channel: str, content: dict[str, Any]) -> CompiledContent:
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = compile_content(channel, content)
            while len(self._compiled) > _CACHE_SIZE:
                self._compiled.popitem(last=False)
        return compiled
