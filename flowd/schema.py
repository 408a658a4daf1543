"""A small schema language for JSON request bodies: one definition both validates requests
(collecting every problem with its JSON path) and renders the JSON Schema that the served
OpenAPI document shows. One source of truth for what the server accepts and what it documents.
"""

from __future__ import annotations

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


class Schema:
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def _doc(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass
class String(Schema):
    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None
    # Extra check: returns an error message, or None when the value is fine.
    check: Callable[[str], str | None] | None = None
    format: str | None = None
    description: str = ""
    pattern_message: str = ""

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
        if self._regex and not self._regex.fullmatch(value):
            problems.append(Problem(str(path), self.pattern_message or f"must match {self.pattern}"))
            return INVALID
        if self.check:
            message = self.check(value)
            if message:
                problems.append(Problem(str(path), message))
                return INVALID
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.min_len:
            schema["minLength"] = self.min_len
        if self.max_len is not None:
            schema["maxLength"] = self.max_len
        if self.pattern:
            schema["pattern"] = self.pattern
        if self.format:
            schema["format"] = self.format
        return self._doc(schema)


@dataclass
class Enum(Schema):
    values: tuple[str, ...]
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if value not in self.values or not isinstance(value, str):
            problems.append(Problem(str(path), f"must be one of: {', '.join(self.values)}"))
            return INVALID
        return value

    def json_schema(self) -> dict[str, Any]:
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

    def json_schema(self) -> dict[str, Any]:
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

    def json_schema(self) -> dict[str, Any]:
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

    def json_schema(self) -> dict[str, Any]:
        return self._doc({"type": "boolean"})


@dataclass
class Nullable(Schema):
    inner: Schema
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        return None if value is None else self.inner.validate(value, path, problems)

    def json_schema(self) -> dict[str, Any]:
        inner = self.inner.json_schema()
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
    """Any JSON value, or (object_only) any JSON object, nested at most MAX_JSON_DEPTH deep."""

    object_only: bool = False
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if self.object_only and not isinstance(value, dict):
            problems.append(Problem(str(path), f"must be an object, not {type_name(value)}"))
            return INVALID
        if not _depth_ok(value, MAX_JSON_DEPTH):
            problems.append(Problem(str(path), f"must not nest deeper than {MAX_JSON_DEPTH} levels"))
            return INVALID
        return value

    def json_schema(self) -> dict[str, Any]:
        return self._doc({"type": "object"} if self.object_only else {})


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

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.items.json_schema()}
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

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "additionalProperties": self.values.json_schema()}
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
    read_only: tuple[str, ...] = ()
    description: str = ""
    title: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)

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
        for key, default in self.defaults.items():
            out.setdefault(key, default)
        return INVALID if len(problems) > before else out

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {k: v.json_schema() for k, v in self.fields.items()},
            "additionalProperties": False,
        }
        for key in self.read_only:
            schema["properties"].setdefault(key, {"readOnly": True, "description": "ignored"})
        if self.required:
            schema["required"] = list(self.required)
        if self.title:
            schema["title"] = self.title
        return self._doc(schema)


@dataclass
class Either(Schema):
    """One of several shapes, chosen by `pick` from the raw value (e.g. 'has a batch key')."""

    options: tuple[Schema, ...]
    pick: Callable[[Any], int]
    description: str = ""

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        return self.options[self.pick(value)].validate(value, path, problems)

    def json_schema(self) -> dict[str, Any]:
        return self._doc({"oneOf": [o.json_schema() for o in self.options]})
