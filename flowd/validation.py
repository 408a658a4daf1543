"""A small schema language for JSON request bodies: one definition both validates requests
(collecting every problem with its JSON path) and renders the JSON Schema that the served
OpenAPI document shows. One source of truth for what the server accepts and what it documents.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from flowd.errors import Problem

# Free-form JSON (event properties, traits) may nest at most this deep: deeper documents are
# almost always hostile, and recursion over them elsewhere would be unbounded.
MAX_JSON_DEPTH = 32


class Invalid:
    """Marker returned by validate() after it recorded a problem."""


INVALID = Invalid()


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Child:
    """A JSON path rendered only if a problem needs it: validating a valid 1000-event batch
    should not format thousands of path strings."""

    __slots__ = ("parent", "key")

    def __init__(self, parent: "str | _Child", key: str | int) -> None:
        self.parent = parent
        self.key = key

    def __str__(self) -> str:
        return join(str(self.parent), self.key)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Components:
    """The named schemas of one document (`#/components/schemas`), collected while rendering.
    A named schema is rendered once and referenced everywhere else; two different schemas
    under one name are a mistake (client generators would merge or drop one of them).
    A standalone JSON Schema (the bundle's) keeps them under `#/$defs/` instead."""

    def __init__(self, prefix: str = "#/components/schemas/") -> None:
        self.schemas: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, Schema] = {}
        self._prefix = prefix

    def ref(self, schema: "Schema") -> dict[str, Any]:
        owner = self._owners.get(schema.name)
        if owner is None:
            self._owners[schema.name] = schema
            self.schemas[schema.name] = {}  # a placeholder: recursive schemas refer to themselves
            self.schemas[schema.name] = schema.render(self)
        elif owner is not schema:
            raise ValueError(f"two different schemas are both named {schema.name!r}")
        return {"$ref": f"{self._prefix}{schema.name}"}


class Schema:
    description: str = ""
    # A component name (see named()): rendered once under #/components/schemas and referenced.
    name: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        raise NotImplementedError

    def named(self, name: str) -> "Schema":
        self.name = name
        return self

    def described(self, description: str) -> "Schema":
        """A copy with another description (and no component name)."""
        return dataclasses.replace(self, description=description)  # type: ignore[type-var]

    def json_schema(self, components: Components | None = None) -> dict[str, Any]:
        """The JSON Schema; with `components`, named schemas become `$ref`s into it."""
        if self.name and components is not None:
            return components.ref(self)
        return self.render(components)

    def render(self, components: Components | None) -> dict[str, Any]:
        raise NotImplementedError

    def _doc(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.description:
            schema["description"] = self.description
        return schema


# The identifier rule: names, ids and event names may hold any character a person can read and
# type, but no control characters (C0, C1), format characters (bidi overrides, zero-width
# joiners, soft hyphens, tags…), line or paragraph separators, or spaces other than U+0020.
# Written as one character class so that the OpenAPI document states exactly what the server
# checks. BMP code points are escapes; the few astral ones are literal characters, the only form
# both ECMA-262 and Python regexes read alike.
_INVISIBLE = ("\\u0000-\\u001f\\u007f-\\u00a0\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f"
              "\\u0890-\\u0891\\u08e2\\u1680\\u180e\\u2000-\\u200f\\u2028-\\u202f"
              "\\u205f-\\u2064\\u2066-\\u206f\\u3000\\ufeff\\ufff9-\\ufffb"
              "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
              "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
TEXT_PATTERN = f"[^{_INVISIBLE}]*"
TEXT_MESSAGE = ("must not contain control, format or invisible characters (tabs, line breaks, "
                "zero-width or bidi marks, non-breaking spaces)")
# An email address: something@domain.tld, with no whitespace or invisible characters.
EMAIL_PATTERN = f"[^@ {_INVISIBLE}]+@[^@ {_INVISIBLE}]+\\.[^@. {_INVISIBLE}]+"
# A phone number in E.164: "+", a country code that does not start with 0, 7 to 15 digits in
# all — what SMS providers take, with no spaces or punctuation to normalize away.
E164_PATTERN = r"\+[1-9][0-9]{6,14}"
# Lone surrogates cannot travel in UTF-8 or in the JSON this server accepts, and the document's
# regex dialects cannot name them; the server's own check still refuses them, should a decoder
# ever let one through.
_NO_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass
class String(Schema):
    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None     # must match the whole value (anchored in the JSON Schema)
    # Extra check: returns an error message, or None when the value is fine. What it checks
    # cannot be said in JSON Schema, so `description` must say it.
    check: Callable[[str], str | None] | None = None
    format: str | None = None
    description: str = ""
    pattern_message: str = ""
    check_code: str = "invalid_value"   # the code of a problem `check` finds

    def __post_init__(self) -> None:
        self._regex = re.compile(self.pattern) if self.pattern else None

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, str):
            problems.append(Problem(str(path), f"must be a string, not {type_name(value)}"))
            return INVALID
        if len(value) < self.min_len:
            problems.append(Problem(str(path), "must not be empty" if self.min_len == 1
                                    else f"must be at least {self.min_len} characters"))
            return INVALID
        if self.max_len is not None and len(value) > self.max_len:
            problems.append(Problem(str(path), f"must be at most {self.max_len} characters"))
            return INVALID
        if self._regex and (not self._regex.fullmatch(value)
                            or (not value.isascii() and _NO_SURROGATES.search(value))):
            problems.append(Problem(str(path), self.pattern_message or f"must match {self.pattern}"))
            return INVALID
        if self.check:
            message = self.check(value)
            if message:
                problems.append(Problem(str(path), message, self.check_code))
                return INVALID
        return value

    def render(self, components: Components | None) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.min_len:
            schema["minLength"] = self.min_len
        if self.max_len is not None:
            schema["maxLength"] = self.max_len
        if self.pattern:
            schema["pattern"] = f"^(?:{self.pattern})$"
        if self.format:
            schema["format"] = self.format
        return self._doc(schema)


def time_string(description: str = "") -> String:
    """A time as the API writes it."""
    return String(format="date-time", description=description or
                  "RFC 3339 in UTC with milliseconds, e.g. 2026-11-23T18:00:00.123Z.")


def text(min_len: int = 1, max_len: int = 200, description: str = "") -> String:
    """A name, id or event name under the identifier rule (see TEXT_PATTERN)."""
    return String(min_len=min_len, max_len=max_len, pattern=TEXT_PATTERN,
                  pattern_message=TEXT_MESSAGE, description=description)


@dataclass
class Enum(Schema):
    values: tuple[str, ...]
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if value not in self.values or not isinstance(value, str):
            problems.append(Problem(str(path), f"must be one of: {', '.join(self.values)}"))
            return INVALID
        return value

    def render(self, components: Components | None) -> dict[str, Any]:
        return self._doc({"type": "string", "enum": list(self.values)})


@dataclass
class Integer(Schema):
    min: int | None = None
    max: int | None = None
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(Problem(str(path), f"must be an integer, not {type_name(value)}"))
            return INVALID
        if self.min is not None and value < self.min:
            problems.append(Problem(str(path), f"must be at least {self.min}"))
            return INVALID
        if self.max is not None and value > self.max:
            problems.append(Problem(str(path), f"must be at most {self.max}"))
            return INVALID
        return value

    def render(self, components: Components | None) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.min is not None:
            schema["minimum"] = self.min
        if self.max is not None:
            schema["maximum"] = self.max
        return self._doc(schema)


@dataclass
class Number(Schema):
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(Problem(str(path), f"must be a number, not {type_name(value)}"))
            return INVALID
        if self.min is not None and (value <= self.min if self.exclusive_min else value < self.min):
            problems.append(Problem(str(path), f"must be {'greater than' if self.exclusive_min else 'at least'} {self.min}"))
            return INVALID
        if self.max is not None and value > self.max:
            problems.append(Problem(str(path), f"must be at most {self.max}"))
            return INVALID
        return value

    def render(self, components: Components | None) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number"}
        if self.min is not None:
            schema["exclusiveMinimum" if self.exclusive_min else "minimum"] = self.min
        if self.max is not None:
            schema["maximum"] = self.max
        return self._doc(schema)


@dataclass
class Boolean(Schema):
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, bool):
            problems.append(Problem(str(path), f"must be true or false, not {type_name(value)}"))
            return INVALID
        return value

    def render(self, components: Components | None) -> dict[str, Any]:
        return self._doc({"type": "boolean"})


@dataclass
class Nullable(Schema):
    inner: Schema
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        return None if value is None else self.inner.validate(value, path, problems)

    def render(self, components: Components | None) -> dict[str, Any]:
        inner = self.inner.json_schema(components)
        if isinstance(inner.get("type"), str) and "enum" not in inner:
            # {"type": ["string", "null"]} rather than a oneOf: simpler for every client generator.
            return self._doc({**inner, "type": [inner["type"], "null"]})
        return self._doc({"oneOf": [inner, {"type": "null"}]})


def _depth_ok(value: Any, limit: int) -> bool:
    # Iterative so that hostile nesting cannot exhaust the Python stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


@dataclass
class Json(Schema):
    """Any JSON value, or (object_only) any JSON object, nested at most MAX_JSON_DEPTH deep.
    `without`: keys such an object must not have (what tells it from a sibling shape)."""

    object_only: bool = False
    description: str = ""
    without: tuple[str, ...] = ()

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if self.object_only and not isinstance(value, dict):
            problems.append(Problem(str(path), f"must be an object, not {type_name(value)}"))
            return INVALID
        if isinstance(value, dict):
            for key in self.without:
                if key in value:
                    problems.append(Problem(f"{path}.{key}" if path else key,
                                            "is not allowed here"))
                    return INVALID
        if not _depth_ok(value, MAX_JSON_DEPTH):
            problems.append(Problem(str(path), f"must not nest deeper than {MAX_JSON_DEPTH} levels"))
            return INVALID
        return value

    def render(self, components: Components | None) -> dict[str, Any]:
        # A free-form object says so (additionalProperties), or generators type it as empty.
        rendered: dict[str, Any] = ({"type": "object", "additionalProperties": True}
                                    if self.object_only else {})
        if self.without:
            rendered["not"] = {"anyOf": [{"required": [key]} for key in self.without]}
        return self._doc(rendered)


@dataclass
class Array(Schema):
    items: Schema
    max_items: int | None = None
    min_items: int = 0
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, list):
            problems.append(Problem(str(path), f"must be an array, not {type_name(value)}"))
            return INVALID
        if len(value) < self.min_items:
            problems.append(Problem(str(path), f"must have at least {self.min_items} items"))
            return INVALID
        if self.max_items is not None and len(value) > self.max_items:
            problems.append(Problem(str(path), f"must have at most {self.max_items} items"))
            return INVALID
        out = [self.items.validate(item, _Child(path, i), problems) for i, item in enumerate(value)]
        return INVALID if any(v is INVALID for v in out) else out

    def render(self, components: Components | None) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.items.json_schema(components)}
        if self.min_items:
            schema["minItems"] = self.min_items
        if self.max_items is not None:
            schema["maxItems"] = self.max_items
        return self._doc(schema)


@dataclass
class MapOf(Schema):
    """An object with arbitrary keys whose values all follow one schema."""

    values: Schema
    max_keys: int | None = None
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, dict):
            problems.append(Problem(str(path), f"must be an object, not {type_name(value)}"))
            return INVALID
        if self.max_keys is not None and len(value) > self.max_keys:
            problems.append(Problem(str(path), f"must have at most {self.max_keys} keys"))
            return INVALID
        out = {k: self.values.validate(v, _Child(path, k), problems) for k, v in value.items()}
        return INVALID if any(v is INVALID for v in out.values()) else out

    def render(self, components: Components | None) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object",
                                  "additionalProperties": self.values.json_schema(components)}
        if self.max_keys is not None:
            schema["maxProperties"] = self.max_keys
        return self._doc(schema)


@dataclass
class Object(Schema):
    """A JSON object with known fields. Unknown fields are errors (no silent mass assignment);
    `read_only` fields are the ones GET returns and are accepted and dropped, so that
    GET → edit → PUT works."""

    fields: dict[str, Schema]
    required: tuple[str, ...] = ()
    read_only: dict[str, Schema] = field(default_factory=dict)
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    # Field → fields that must then be given too, and not null (`dependentSchemas`).
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclusive: tuple[str, ...] = ()    # at most one of these fields may be given
    one_required: tuple[str, ...] = ()  # at least one of these fields must be given

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, dict):
            problems.append(Problem(str(path), f"must be an object, not {type_name(value)}"))
            return INVALID
        before = len(problems)
        out: dict[str, Any] = {}
        for key, item in value.items():
            schema = self.fields.get(key)
            if schema is None:
                if key not in self.read_only:
                    problems.append(Problem(str(_Child(path, key)), "unknown field"))
                continue
            out[key] = schema.validate(item, _Child(path, key), problems)
        for key in self.required:
            if key not in value:
                problems.append(Problem(str(_Child(path, key)), "is required"))
        for key, needed in self.requires.items():
            if key in value:
                # `dependentSchemas` is beyond many generators and validators: name the rule.
                problems.extend(Problem(str(_Child(path, other)), f"is required when {key} is given",
                                        "dependent_required")
                                for other in needed if value.get(other) is None)
        if sum(key in value for key in self.exclusive) > 1:
            problems.append(Problem(str(path), f"give at most one of {', '.join(self.exclusive)}",
                                    "exclusive_fields"))
        if self.one_required and not any(key in value for key in self.one_required):
            problems.append(Problem(str(path), f"give one of {', '.join(self.one_required)}",
                                    "one_required"))
        for key, default in self.defaults.items():
            out.setdefault(key, default)
        return INVALID if len(problems) > before else out

    def render(self, components: Components | None) -> dict[str, Any]:
        properties = {k: v.json_schema(components) for k, v in self.fields.items()}
        for key, schema in self.read_only.items():
            properties[key] = {**schema.json_schema(components), "readOnly": True}
        rendered: dict[str, Any] = {"type": "object", "properties": properties,
                                    "additionalProperties": False}
        if self.required:
            rendered["required"] = list(self.required)
        if self.requires:
            rendered["dependentSchemas"] = {key: {
                "required": list(needed),
                "properties": {other: {"not": {"type": "null"}} for other in needed}}
                for key, needed in self.requires.items()}
        if self.exclusive:
            rendered["not"] = {"anyOf": [{"required": [a, b]} for i, a in enumerate(self.exclusive)
                                         for b in self.exclusive[i + 1:]]}
        if self.one_required:
            rendered["anyOf"] = [{"required": [key]} for key in self.one_required]
        return self._doc(rendered)


@dataclass
class Either(Schema):
    """One of several shapes, chosen by `pick` from the raw value (e.g. 'has a batch key').
    `pick` may return None for a value that mixes the shapes: then `mixed` says why."""

    options: tuple[Schema, ...]
    pick: Callable[[Any], int | None]
    description: str = ""
    mixed: str = "does not match any of the allowed shapes"

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        index = self.pick(value)
        if index is None:
            problems.append(Problem(str(path), self.mixed))
            return INVALID
        return self.options[index].validate(value, path, problems)

    def render(self, components: Components | None) -> dict[str, Any]:
        return self._doc({"oneOf": [o.json_schema(components) for o in self.options]})


@dataclass
class Tagged(Schema):
    """Objects of several kinds told apart by one property (`type`, `op`): a discriminated
    `oneOf` in the JSON Schema. Several tag values may share one kind (type aliases)."""

    tag: str
    kinds: dict[str, Schema]       # tag value -> its (named) object schema
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, dict):
            problems.append(Problem(str(path), f"must be an object, not {type_name(value)}"))
            return INVALID
        kind = value.get(self.tag)
        schema = self.kinds.get(kind) if isinstance(kind, str) else None
        if schema is None:
            where = str(_Child(path, self.tag))
            problems.append(Problem(where, "is required" if self.tag not in value
                                    else f"must be one of: {', '.join(self.kinds)}"))
            return INVALID
        return schema.validate(value, path, problems)

    def render(self, components: Components | None) -> dict[str, Any]:
        options: list[dict[str, Any]] = []
        mapping: dict[str, str] = {}
        rendered: dict[int, dict[str, Any]] = {}
        for value, schema in self.kinds.items():
            if id(schema) not in rendered:
                rendered[id(schema)] = schema.json_schema(components)
                options.append(rendered[id(schema)])
            ref = rendered[id(schema)].get("$ref")
            if ref:
                mapping[value] = ref
        schema: dict[str, Any] = {"oneOf": options}
        if len(mapping) == len(self.kinds):
            schema["discriminator"] = {"propertyName": self.tag, "mapping": mapping}
        return self._doc(schema)


class _InlineComponents(Components):
    """Renders named schemas in place; only a schema met again inside itself (a Condition's
    `all`/`any`) becomes a `$ref` into the document's own `$defs`."""

    def __init__(self) -> None:
        super().__init__(prefix="#/$defs/")
        self._open: list[str] = []
        self.recursive: dict[str, Schema] = {}

    def ref(self, schema: "Schema") -> dict[str, Any]:
        if schema.name in self._open:
            self.recursive.setdefault(schema.name, schema)
            return {"$ref": f"#/$defs/{schema.name}"}
        self._open.append(schema.name)
        try:
            return schema.render(self)
        finally:
            self._open.pop()


def standalone_json_schema(schema: Schema) -> dict[str, Any]:
    """`schema` as one self-contained JSON Schema document: every part inline, and `$defs` only
    for the recursive ones (which cannot be written out in place)."""
    components = _InlineComponents()
    rendered = components.ref(schema) if schema.name else schema.render(components)
    defs: dict[str, Any] = {}
    while pending := [name for name in components.recursive if name not in defs]:
        for name in pending:
            defs[name] = {}
            components._open.append(name)
            try:
                defs[name] = components.recursive[name].render(components)
            finally:
                components._open.pop()
    if defs:
        rendered = {**rendered, "$defs": dict(sorted(defs.items()))}
    return rendered
