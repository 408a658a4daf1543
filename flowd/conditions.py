"""Conditions: the one filter language of API.md ("Conditions"), used by trigger filters,
`condition`/`split` steps, `exit_on`, `wait_for_event` and audiences; and event name patterns.

This module owns the condition shapes and ops, their validation (every problem, with its JSON
path) and their meaning: comparisons across JSON types, the missing-field rule, and times.
A condition is compiled once into nested closures; `evaluate` does no parsing except for data
that only exists at evaluation time (a field holding a time, a value that is a template).
Evaluation never raises: a type mismatch is simply false.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Callable

from flowd.durations import parse_signed_duration
from flowd.errors import Problem, ValidationError
from flowd.templates import (
    MISSING,
    Path,
    PathError,
    Scope,
    TemplateError,
    compile_path,
    compile_value,
)
from flowd.timeutil import parse_time
from flowd.validation import (
    INVALID,
    Array,
    Enum,
    Json,
    Object,
    Schema,
    String,
    join,
    type_name,
)

OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "not_contains",
       "starts_with", "ends_with", "wildcard", "eq_ignore_case", "exists", "not_exists", "empty",
       "not_empty", "between", "before", "after")
# Hostile or generated conditions must not make compiling or evaluating expensive.
MAX_CONDITION_DEPTH = 32
MAX_CONDITION_PARTS = 1_000  # every object in the tree counts, groups and leaves alike
_EQUALITY_DEPTH = 64  # nested JSON equality gives up (false) below this

Test = Callable[[Scope, int], bool]


class ConditionError(ValidationError):
    """An invalid condition; `.problems` lists every problem with its JSON path."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)


class Condition:
    """A compiled condition. `evaluate(scope, now_ms)` → bool, never raises. `paths` lists every
    path it reads (fields and templates in values), e.g. to check references to steps."""

    __slots__ = ("_test", "paths")

    def __init__(self, test: Test, paths: tuple[Path, ...]) -> None:
        self._test = test
        self.paths = paths

    def evaluate(self, scope: Scope, now_ms: int) -> bool:
        return self._test(scope, now_ms)


# ---------------------------------------------------------------------------------------------
# Name patterns

def is_wildcard(pattern: str) -> bool:
    return "*" in pattern


def compile_name_pattern(pattern: str) -> Callable[[str], bool]:
    """`*` matches any run of characters (`auth.*`, `*`, `*.completed`, `a*b*c`); everything
    else is literal. The whole name must match. Case-sensitive."""
    return _compile_glob(pattern)


@lru_cache(maxsize=1024)  # wildcard values that are templates compile at evaluation time
def _compile_glob(pattern: str) -> Callable[[str], bool]:
    if "*" not in pattern:
        return lambda name: name == pattern
    prefix, *middle, suffix = pattern.split("*")
    if not prefix and not suffix and not any(middle):
        return lambda name: True
    middle = [part for part in middle if part]
    shortest = len(prefix) + len(suffix) + sum(map(len, middle))

    # No regex: `.*a.*a.*b`-style patterns backtrack exponentially. Taking each middle part at
    # its leftmost position is exact for `*`-only globs, and linear per part.
    def match(name: str) -> bool:
        if len(name) < shortest or not name.startswith(prefix) or not name.endswith(suffix):
            return False
        pos, end = len(prefix), len(name) - len(suffix)
        for part in middle:
            found = name.find(part, pos, end)
            if found < 0:
                return False
            pos = found + len(part)
        return True
    return match


# ---------------------------------------------------------------------------------------------
# Comparing JSON values

_NUMERIC_STRING = re.compile(r"-?(?:0|[1-9]\d{0,40})(?:\.\d{1,40})?(?:[eE][+-]?\d{1,4})?")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> int | float | None:
    """A number, or a string holding a JSON number ("42", "-1.5"), as a number; else None."""
    if isinstance(value, (int, float)):
        return None if isinstance(value, bool) else value
    if isinstance(value, str) and _NUMERIC_STRING.fullmatch(value):
        return int(value) if value.lstrip("-").isdigit() else float(value)
    return None


def _json_equal(a: Any, b: Any, depth: int = 0) -> bool:
    """JSON equality: true and 1 differ (Python says they are equal), 1 and 1.0 do not."""
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return (len(a) == len(b) and depth < _EQUALITY_DEPTH
                and all(_json_equal(x, y, depth + 1) for x, y in zip(a, b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return (len(a) == len(b) and depth < _EQUALITY_DEPTH
                and all(k in b and _json_equal(v, b[k], depth + 1) for k, v in a.items()))
    if type(a) is not type(b) or isinstance(a, (list, dict)):
        return False
    return a == b


def _equal(a: Any, b: Any) -> bool:
    """`eq`: JSON equality, plus a numeric string equals the number it spells ("42" eq 42)."""
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if _is_number(a) or _is_number(b):
        x, y = _number(a), _number(b)
        return x is not None and y is not None and x == y
    return _json_equal(a, b)


def _compare(a: Any, b: Any) -> int | None:
    """-1/0/1, or None when the two cannot be ordered. Two strings compare as text; numbers (or a
    number and a numeric string) as numbers; anything else (booleans included) not at all."""
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return None
    return (x > y) - (x < y)


def _time_ms(value: Any) -> int | None:
    """A field's time: an RFC 3339 string or epoch milliseconds; else None."""
    if isinstance(value, str):
        if len(value) > 64:
            return None
        try:
            return parse_time(value)
        except (ValueError, OverflowError):
            return None
    if _is_number(value) and math.isfinite(value):
        return int(value)
    return None


# ---------------------------------------------------------------------------------------------
# Ops: each is (prepare, test). `prepare` turns a `value` into what `test` needs, raising
# ValueError with a user-facing message when it does not fit; it runs at compile time for a
# constant value and at evaluation time for a template. `test(field_value, prepared, now_ms)`
# only ever sees a field that exists.

def _any_value(value: Any) -> Any:
    return value


def _scalar(value: Any) -> Any:
    if isinstance(value, str) or _is_number(value):
        return value
    raise ValueError(f"must be a number or a string, not {type_name(value)}")


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"must be a string, not {type_name(value)}")


def _member_list(value: Any) -> tuple[frozenset[str], tuple[Any, ...]]:
    if not isinstance(value, list):
        raise ValueError(f"must be an array, not {type_name(value)}")
    # Strings go in a set: the common `in ["US", "CA"]` becomes one hash lookup.
    return (frozenset(item for item in value if isinstance(item, str)),
            tuple(item for item in value if not isinstance(item, str)))


def _range(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("must be a two-item array [low, high]")
    return _scalar(value[0]), _scalar(value[1])


_TIME_MESSAGE = ("must be a time such as 2026-11-23T18:00:00Z, a duration from now such as "
                 "-P7D, or a template")


def _moment(value: Any) -> tuple[int, bool]:
    """(ms, relative): a time is absolute; a signed duration is relative to now."""
    if isinstance(value, str):
        if value.lstrip("+-")[:1] == "P":
            return parse_signed_duration(value), True
        try:
            return parse_time(value), False
        except (ValueError, OverflowError):
            raise ValueError(_TIME_MESSAGE) from None
    if _is_number(value) and math.isfinite(value):  # a template may render epoch ms
        return int(value), False
    raise ValueError(_TIME_MESSAGE)


def _is_member(field: Any, members: tuple[frozenset[str], tuple[Any, ...]], now_ms: int = 0) -> bool:
    strings, others = members
    if isinstance(field, str):
        if field in strings:
            return True
        return any(_equal(field, item) for item in others)
    return any(_equal(field, item) for item in others) or (
        _is_number(field) and any(_equal(field, item) for item in strings))


def _contains(field: Any, value: Any) -> bool | None:
    """None when `contains` means nothing for these types (so not_contains is false too)."""
    if isinstance(field, str):
        return value in field if isinstance(value, str) else None
    if isinstance(field, list):
        return any(_equal(item, value) for item in field)
    return None


def _after(field: Any, moment: tuple[int, bool], now_ms: int) -> bool:
    at = _time_ms(field)
    return at is not None and at > (moment[0] + now_ms if moment[1] else moment[0])


def _before(field: Any, moment: tuple[int, bool], now_ms: int) -> bool:
    at = _time_ms(field)
    return at is not None and at < (moment[0] + now_ms if moment[1] else moment[0])


def _ordered(accept: Callable[[int], bool]) -> Callable[[Any, Any, int], bool]:
    def test(field: Any, value: Any, now_ms: int) -> bool:
        order = _compare(field, value)
        return order is not None and accept(order)
    return test


def _between(field: Any, bounds: tuple[Any, Any], now_ms: int) -> bool:
    low, high = _compare(field, bounds[0]), _compare(field, bounds[1])
    return low is not None and high is not None and low >= 0 and high <= 0


_OPS: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any, int], bool]]] = {
    "eq": (_any_value, lambda f, v, n: _equal(f, v)),
    "ne": (_any_value, lambda f, v, n: not _equal(f, v)),
    "gt": (_scalar, _ordered(lambda order: order > 0)),
    "gte": (_scalar, _ordered(lambda order: order >= 0)),
    "lt": (_scalar, _ordered(lambda order: order < 0)),
    "lte": (_scalar, _ordered(lambda order: order <= 0)),
    "in": (_member_list, _is_member),
    "not_in": (_member_list, lambda f, v, n: not _is_member(f, v, n)),
    "contains": (_any_value, lambda f, v, n: _contains(f, v) is True),
    "not_contains": (_any_value, lambda f, v, n: _contains(f, v) is False),
    "starts_with": (_string, lambda f, v, n: isinstance(f, str) and f.startswith(v)),
    "ends_with": (_string, lambda f, v, n: isinstance(f, str) and f.endswith(v)),
    "wildcard": (lambda v: _compile_glob(_string(v)), lambda f, v, n: isinstance(f, str) and v(f)),
    "eq_ignore_case": (lambda v: _string(v).casefold(),
                       lambda f, v, n: isinstance(f, str) and f.casefold() == v),
    "between": (_range, _between),
    "before": (_moment, _before),
    "after": (_moment, _after),
}


def _is_empty(value: Any) -> bool:
    return value is MISSING or value is None or value == "" or value == [] or value == {}


# Ops without a value test the field alone; a missing field reaches them too.
_UNARY: dict[str, Callable[[Any], bool]] = {
    "exists": lambda v: v is not MISSING and v is not None,
    "not_exists": lambda v: v is MISSING or v is None,
    "empty": _is_empty,
    "not_empty": lambda v: not _is_empty(v),
}


def _shape_problem(op: str, value: Any) -> str | None:
    """What can be checked of a value that holds templates before they are rendered."""
    if isinstance(value, str):
        return None  # one template: its rendered value is checked at evaluation time
    if op == "between" and not (isinstance(value, list) and len(value) == 2):
        return "must be a two-item array [low, high]"
    if op in ("in", "not_in") and not isinstance(value, list):
        return f"must be an array, not {type_name(value)}"
    if op in ("gt", "gte", "lt", "lte"):
        return f"must be a number or a string, not {type_name(value)}"
    if op in ("before", "after", "starts_with", "ends_with", "wildcard", "eq_ignore_case"):
        return f"must be a string, not {type_name(value)}"
    return None


# ---------------------------------------------------------------------------------------------
# Compiling

_GROUPS = ("all", "any", "not")
_LEAF_KEYS = frozenset({"field", "op", "value"})


class _Compiler:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.paths: list[Path] = []
        self.parts = 0

    def compile(self, cond: Any, path: str, depth: int) -> Test | None:
        """A test for `cond`, or None after recording its problems."""
        if depth > MAX_CONDITION_DEPTH:  # recursion is bounded by this
            self.problems.append(Problem(path, f"must not nest deeper than {MAX_CONDITION_DEPTH} levels"))
            return None
        self.parts += 1
        if self.parts > MAX_CONDITION_PARTS:
            if self.parts == MAX_CONDITION_PARTS + 1:  # report once, not once per extra part
                self.problems.append(Problem(path, f"a condition may have at most "
                                                   f"{MAX_CONDITION_PARTS} parts"))
            return None
        if not isinstance(cond, dict):
            self.problems.append(Problem(path, 'must be an object such as {"field": '
                                               '"event.name", "op": "eq", "value": "x"}, '
                                               f"not {type_name(cond)}"))
            return None
        shapes = [key for key in ("field", *_GROUPS) if key in cond]
        if len(shapes) != 1:
            if not shapes and "op" in cond:
                self.problems.append(Problem(join(path, "field"), "is required"))
            else:
                self.problems.append(Problem(path, "must have exactly one of field, all, any "
                                                   f"or not (has: {', '.join(shapes) or 'none'})"))
            return None
        shape = shapes[0]
        allowed = _LEAF_KEYS if shape == "field" else {shape}
        ok = True
        for key in cond:
            if key not in allowed:
                self.problems.append(Problem(join(path, key), "unknown field"))
                ok = False
        test = self._leaf(cond, path) if shape == "field" else self._group(cond, shape, path, depth)
        return test if ok else None

    def _group(self, cond: dict[str, Any], shape: str, path: str, depth: int) -> Test | None:
        where = join(path, shape)
        if shape == "not":
            inner = self.compile(cond["not"], where, depth + 1)
            if inner is None:
                return None
            return lambda scope, now_ms: not inner(scope, now_ms)
        items = cond[shape]
        if not isinstance(items, list):
            self.problems.append(Problem(where, f"must be an array of conditions, not "
                                                f"{type_name(items)}"))
            return None
        compiled = [self.compile(item, join(where, i), depth + 1) for i, item in enumerate(items)]
        if any(test is None for test in compiled):
            return None
        tests: tuple[Test, ...] = tuple(compiled)  # type: ignore[arg-type]
        if len(tests) == 1:
            return tests[0]
        if shape == "all":
            def all_of(scope: Scope, now_ms: int) -> bool:
                for test in tests:
                    if not test(scope, now_ms):
                        return False
                return True
            return all_of

        def any_of(scope: Scope, now_ms: int) -> bool:
            for test in tests:
                if test(scope, now_ms):
                    return True
            return False
        return any_of

    def _leaf(self, cond: dict[str, Any], path: str) -> Test | None:
        before = len(self.problems)
        field: Path | None = None
        try:
            field = compile_path(cond["field"])
            self.paths.append(field)
        except PathError as error:
            self.problems.append(Problem(join(path, "field"), str(error)))
        op = cond.get("op")
        if "op" not in cond:
            self.problems.append(Problem(join(path, "op"), "is required"))
        elif not isinstance(op, str) or (op not in _OPS and op not in _UNARY):
            self.problems.append(Problem(join(path, "op"), f"must be one of: {', '.join(OPS)}"))
        elif op in _OPS and "value" not in cond:
            self.problems.append(Problem(join(path, "value"), f"is required for {op}"))
        if len(self.problems) > before or field is None:
            return None
        get = field._get
        if op in _UNARY:
            # `value` is ignored here: builders often send `"value": null` with `exists`.
            unary = _UNARY[op]
            return lambda scope, now_ms: unary(get(scope.roots))
        return self._binary(get, op, cond["value"], join(path, "value"))

    def _binary(self, get: Callable[[Any], Any], op: str, value: Any, where: str) -> Test | None:
        prepare, test = _OPS[op]
        try:
            compiled = compile_value(value, where)
        except TemplateError as error:
            self.problems.extend(error.problems)
            return None
        if compiled.has_templates:
            problem = _shape_problem(op, value)
            if problem:
                self.problems.append(Problem(where, problem))
                return None
            self.paths.extend(compiled.paths)
            render = compiled.render

            def templated(scope: Scope, now_ms: int) -> bool:
                field_value = get(scope.roots)
                if field_value is MISSING:  # before rendering: the cheap answer first
                    return False
                try:
                    prepared = prepare(render(scope))
                except ValueError:  # the rendered value does not fit the op
                    return False
                return test(field_value, prepared, now_ms)
            return templated
        if op in ("before", "after") and not isinstance(value, str):
            # A bare number would be ambiguous (seconds or milliseconds?): times are text.
            self.problems.append(Problem(where, _TIME_MESSAGE))
            return None
        try:
            prepared = prepare(value)
        except ValueError as error:
            self.problems.append(Problem(where, str(error)))
            return None

        def constant(scope: Scope, now_ms: int) -> bool:
            field_value = get(scope.roots)
            return field_value is not MISSING and test(field_value, prepared, now_ms)
        return constant


# ---------------------------------------------------------------------------------------------
# The shape of a condition, for request validation and the OpenAPI document. Only the shape: a
# path that does not parse or a value that does not fit its op is a workflow issue (see
# compile_condition), so that a draft can be saved half-done.

class _ConditionShape(Schema):
    """`{"field", "op", "value"}`, `{"all": [...]}`, `{"any": [...]}` or `{"not": C}`: a oneOf
    of four objects told apart by which key they have."""

    def __init__(self) -> None:
        self.description = ("A condition: a test of one field, or all/any/not of conditions. "
                            "See ConditionLeaf for the ops.")
        self.kinds: dict[str, Object] = {}

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        before = len(problems)
        if not _nesting_ok(value):
            problems.append(Problem(str(path), f"must not nest deeper than "
                                               f"{MAX_CONDITION_DEPTH} levels"))
        else:
            self._validate(value, path, problems)
        # Where the condition sits in a workflow, its problems are invalid_condition issues.
        problems[before:] = [Problem(p.path, p.message, "invalid_condition")
                             for p in problems[before:]]
        return INVALID if len(problems) > before else value

    def _validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, dict):
            problems.append(Problem(str(path), 'must be an object such as {"field": '
                                               '"event.name", "op": "eq", "value": "x"}, '
                                               f"not {type_name(value)}"))
            return INVALID
        shapes = [key for key in self.kinds if key in value]
        if len(shapes) != 1:
            if not shapes and "op" in value:
                problems.append(Problem(join(str(path), "field"), "is required"))
            else:
                problems.append(Problem(str(path), "must have exactly one of field, all, any or "
                                                   f"not (has: {', '.join(shapes) or 'none'})"))
            return INVALID
        return self.kinds[shapes[0]].validate(value, path, problems)

    def render(self, components: Any) -> dict[str, Any]:
        return self._doc({"oneOf": [kind.json_schema(components) for kind in self.kinds.values()]})


class _Nested(Schema):
    """A condition inside a group: validated without re-checking the nesting depth."""

    def __init__(self, shape: _ConditionShape) -> None:
        self.shape = shape

    def validate(self, value: Any, path: str, problems: list[Problem]) -> Any:
        return self.shape._validate(value, path, problems)

    def json_schema(self, components: Any = None) -> dict[str, Any]:
        return self.shape.json_schema(components)


def _nesting_ok(value: Any) -> bool:
    # Iterative, and before the recursive walk: hostile nesting cannot exhaust the stack. A
    # group level is two JSON levels ({"all": [ … ]}).
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > 2 * MAX_CONDITION_DEPTH + 1:
            return False
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for key, child in item.items() if key in _GROUPS)
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return True


CONDITION = _ConditionShape().named("Condition")
_INNER = _Nested(CONDITION)  # type: ignore[arg-type]
CONDITION.kinds.update({  # type: ignore[attr-defined]
    "field": Object({
        "field": String(min_len=1, description="A path such as event.properties.amount or "
                                               "contact.traits.plan."),
        "op": Enum(OPS, description="exists, not_exists, empty and not_empty take no value; "
                                    "between takes [low, high]; in/not_in an array; "
                                    "before/after a time or a signed duration from now (-P7D)."),
        "value": Json(description="What the field is compared with; may be a template."),
    }, required=("field", "op")).named("ConditionLeaf"),
    "all": Object({"all": Array(_INNER, max_items=MAX_CONDITION_PARTS)},
                  required=("all",)).named("ConditionAll"),
    "any": Object({"any": Array(_INNER, max_items=MAX_CONDITION_PARTS)},
                  required=("any",)).named("ConditionAny"),
    "not": Object({"not": _INNER}, required=("not",)).named("ConditionNot"),
})


def compile_condition(cond: Any, path: str = "") -> Condition:
    """Compile a condition once. Raises ConditionError listing every problem with its JSON path
    (`trigger.filter.all[1].op`)."""
    compiler = _Compiler()
    test = compiler.compile(cond, path, 1)
    if compiler.problems or test is None:
        raise ConditionError(compiler.problems or [Problem(path, "invalid condition")])
    return Condition(test, tuple(compiler.paths))


def validate_condition(cond: Any, path: str = "") -> list[Problem]:
    """Every problem with `cond`; [] when it is valid."""
    try:
        compile_condition(cond, path)
    except ConditionError as error:
        return list(error.problems)
    return []
