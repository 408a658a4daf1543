"""What the importers of other tools' definitions share: the warnings they collect (every
field without an equivalent is named, never dropped silently), durations, operators, ids, and
the placeholder for a step type flowd does not have."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from flowd.definition_schema import STEP_ID_PATTERN
from flowd.steps import STEP_TYPES
from flowd.validation import join

_STEP_ID = re.compile(STEP_ID_PATTERN)

# Operator names of the other tools → the condition language's.
OPS = {
    "eq": "eq", "equals": "eq", "equal": "eq", "is": "eq", "==": "eq", "=": "eq",
    "ne": "ne", "neq": "ne", "not_equals": "ne", "not_equal": "ne", "is_not": "ne", "!=": "ne",
    "gt": "gt", "greater_than": "gt", ">": "gt", "gte": "gte", "greater_than_or_equal": "gte",
    ">=": "gte", "lt": "lt", "less_than": "lt", "<": "lt", "lte": "lte",
    "less_than_or_equal": "lte", "<=": "lte", "contains": "contains",
    "not_contains": "not_contains", "does_not_contain": "not_contains",
    "starts_with": "starts_with", "ends_with": "ends_with", "in": "in", "not_in": "not_in",
    "exists": "exists", "is_set": "exists", "not_exists": "not_exists",
    "is_not_set": "not_exists", "empty": "empty", "is_empty": "empty",
    "not_empty": "not_empty", "is_not_empty": "not_empty",
}
UNARY = {"exists", "not_exists", "empty", "not_empty"}


class Mapping:
    """The warnings of one conversion: `{"path", "message"}` with the path in the source."""

    def __init__(self) -> None:
        self.warnings: list[dict[str, str]] = []

    def warn(self, path: str, message: str) -> None:
        self.warnings.append({"path": path, "message": message})

    def rest(self, source: dict[str, Any], known: Iterable[str], path: str) -> None:
        """Warn about every field of `source` that the mapping did not use."""
        known = set(known)
        for key in source:
            if key not in known:
                self.warn(join(path, key), "has no equivalent in flowd and was not imported")


def key(value: Any) -> str | None:
    """A value used to look something up (an id, a type, a kind): text, or None. The source is
    any JSON, and a list or an object where a name belongs must not break a dict lookup."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def seconds_to_iso(seconds: Any) -> str | None:
    """A number of seconds as an ISO 8601 duration (P1D, PT2H, PT0.5S); None if not a number."""
    try:
        total = Decimal(str(seconds))
    except (InvalidOperation, ValueError):
        return None
    if isinstance(seconds, bool) or total < 0 or not total.is_finite():
        return None
    if total == 0:
        return "PT0S"
    for unit, size, prefix in (("D", 86400, "P"), ("H", 3600, "PT"), ("M", 60, "PT")):
        if total % size == 0:
            return f"{prefix}{int(total // size)}{unit}"
    text = format(total.normalize(), "f")
    return f"PT{text}S"


UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


def unit_seconds(unit: Any) -> int | None:
    if not isinstance(unit, str):
        return None
    return UNIT_SECONDS.get(unit.lower().rstrip("s"))


def step_id(raw: Any, fallback: str, used: set[str]) -> str:
    """The source's step id when flowd accepts it, else `fallback`; unique either way."""
    candidate = raw if isinstance(raw, str) and _STEP_ID.fullmatch(raw) else fallback
    base, n = candidate, 2
    while candidate in used:
        candidate = f"{base[:60]}_{n}"
        n += 1
    used.add(candidate)
    return candidate


def available(step_type: str) -> bool:
    return step_type in STEP_TYPES


def placeholder(step_id: str, source_type: Any, path: str, mapping: Mapping) -> dict[str, Any]:
    """A step flowd cannot run: a `set` step that changes nothing keeps the graph's shape (what
    follows it still follows), and a warning says what to put there."""
    mapping.warn(path, f"step type {source_type!r} has no equivalent in flowd: imported as a "
                       f"`set` step that does nothing (step {step_id}); replace it")
    return {"id": step_id, "type": "set", "name": f"{source_type} (no flowd equivalent)"[:200],
            "config": {"vars": {}}}


def leaf(field: str, op: Any, value: Any, path: str, mapping: Mapping,
         has_value: bool = True) -> dict[str, Any] | None:
    """One comparison; None (with a warning) for an operator flowd does not have."""
    mapped = OPS.get(op.lower()) if isinstance(op, str) else None
    if mapped is None:
        mapping.warn(path, f"the operator {op!r} has no equivalent in flowd: the condition was "
                           "left out (the step has a missing_config issue until you set one)")
        return None
    condition: dict[str, Any] = {"field": field, "op": mapped}
    if mapped not in UNARY:
        condition["value"] = value if has_value else None
    return condition
