"""Audiences: a filter (a condition of flowd.conditions over the contact) translated into a small
expression tree that the store renders as SQL, exactly where SQL can decide what the condition
language decides, and left to Python (flowd.conditions itself) where it cannot.

The tree is three-valued. Every node is true, false or UNKNOWN; AND, OR and NOT follow Kleene's
rules, which are SQL's rules for NULL, so a row whose answer is UNKNOWN is exactly a row SQL
could not decide: the store evaluates the condition in Python on that contact, and on no other.
An `all[A, B]` where only B needs Python filters by A in SQL and evaluates B only on rows that
pass A; an `any[A, B]` admits rows that pass A at once. A whole sub-condition SQL cannot express
at all (a value that is a template) is UNKNOWN for every row; a test SQL decides for most rows
but not all (`eq_ignore_case` on non-ASCII text, a numeric string too long to be sure of, a time
written other than `YYYY-MM-DDTHH:MM:SS[.mmm]Z`) is UNKNOWN only on those rows.

The rules SQL must follow are flowd.conditions' (its tests are the reference): a missing field
is equal to nothing and only `not_exists`/`empty` are true of it; JSON null is present; `eq`
is JSON equality plus a numeric string equals its number ("42" eq 42) while true is not 1;
ordering compares two strings as text, numbers (or a number and a numeric string) as numbers,
and nothing else; `contains` means substring for text and element equality for a list;
`before`/`after` read a time from RFC 3339 text or epoch ms, and a relative value (`-P7D`) counts
from the `now` the query is made for. How each field is read is the store's business (a column,
or `json_type`/`json_extract` over a JSON column); this module says only which field and which
test.

Nothing here touches SQL text or a database: the tree (flowd.audience_tree) names fields and
tests, and holds the values the SQL binds as parameters (never text put into the statement).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from flowd.audience_tree import (
    CONTACT_KEYS,
    FALSE,
    JSON_COLUMNS,
    MISSING_TYPE,
    PRESENT_TYPES,
    TEXT_COLUMNS,
    TIME_COLUMNS,
    TRUE,
    UNKNOWN,
    Const,
    Expr,
    Field,
    Item,
    JsonField,
    Known,
    ListAny,
    Test,
    TextColumn,
    TimeColumn,
    TypeCase,
    WholeContact,
    all_of,
    any_of,
    may_be_unknown,
    negate,
    possible_types,
)
from flowd.conditions import (
    OPS,
    Condition,
    ConditionError,
    _number,  # the one reading of a numeric string, shared
    compile_condition,
)
from flowd.durations import parse_signed_duration
from flowd.errors import Problem, ValidationError
from flowd.templates import (
    CONTACT_ROOTS,
    Path,
    PathError,
    Scope,
    TemplateError,
    compile_path,
    compile_value,
    has_templates,
)
from flowd.timeutil import parse_time
from flowd.validation import join

# A path segment that is a number reads a list's index or an object's key, whichever the value
# holds; each such segment doubles the SQL for its path. Past this many, Python decides.
MAX_AMBIGUOUS_SEGMENTS = 3
_MAX_INDEX = 2**31 - 1        # a list longer than this cannot be a contact's
_INT64 = 2**63
_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _on(field: Field, cases: dict[str, Expr], *, missing: Expr = FALSE,
        default: Expr = FALSE) -> Expr:
    """A TypeCase over the types the field can have, simplified where the type is certain."""
    if isinstance(field, WholeContact):
        branch = cases.get("object", default)
        # Its value is never read in SQL: only a test that needs no value is decided.
        return branch if isinstance(branch, Const) else UNKNOWN
    types = possible_types(field)
    branches = [(t, cases.get(t, default)) for t in types if t != MISSING_TYPE]
    can_miss = MISSING_TYPE in types
    outcomes = {branch for _, branch in branches} | ({missing} if can_miss else set())
    if len(outcomes) == 1:
        return outcomes.pop()
    listed = tuple((t, branch) for t, branch in branches if branch != default)
    return TypeCase(field, listed, missing if can_miss else default, default)


# ---------------------------------------------------------------------------------------------
# Values: what SQL can bind exactly

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bindable(number: int | float) -> bool:
    """A number SQL holds exactly (an int past 64 bits is not)."""
    return isinstance(number, float) or -_INT64 <= number < _INT64


def _has_nul(value: Any) -> bool:
    # SQLite's text functions stop at a NUL character; Python's do not.
    return isinstance(value, str) and "\x00" in value


def _glob(pattern: str) -> str:
    """flowd.conditions' `*`-only wildcard as a SQLite GLOB pattern: ? and [ are literal."""
    return "".join("[?]" if c == "?" else "[[]" if c == "[" else c for c in pattern)


# ---------------------------------------------------------------------------------------------
# Ops: per type of the field, what the op says (types left out: false)

def _numeric_cases(field: Field, op: str, number: int | float) -> dict[str, Expr]:
    """An integer or real field compared with a number."""
    if not _bindable(number):
        return {"integer": UNKNOWN, "real": UNKNOWN}
    compare = Test(field, "cmp", (op, number))
    if abs(number) >= _INT64:
        # An integer past 64 bits reads as a rounded real: against a number that large, only
        # an integer SQL holds exactly is decided.
        return {"integer": Known(Test(field, "int64"), compare), "real": compare}
    return {"integer": compare, "real": compare}


def _text_number(field: Field, test: Test | Const, large: bool) -> Expr:
    """A text field read as the number it spells (flowd.conditions' numeric strings), then
    `test`; text that spells no number is false. Long text is left to Python: SQL checks only
    short text against the condition language's digit limits."""
    number_test: Expr = test
    if large and isinstance(test, Test):
        number_test = Known(Test(field, "exact_number"), test)
    return all_of(Test(field, "number_chars"), Known(
        Test(field, "short"), all_of(Test(field, "json_number"), Test(field, "exp_ok"),
                                     number_test)))


def _text_number_cmp(field: Field, op: str, number: int | float) -> Expr:
    if not _bindable(number):
        return _text_number(field, UNKNOWN, False)
    return _text_number(field, Test(field, "num_cmp", (op, number)), abs(number) >= _INT64)


def _eq_cases(field: Field, value: Any) -> dict[str, Expr]:
    if isinstance(value, bool):
        return {"true": TRUE} if value else {"false": TRUE}
    if value is None:
        return {"null": TRUE}
    if isinstance(value, str):
        cases: dict[str, Expr] = {"text": Test(field, "cmp", ("=", value))}
        number = _number(value)
        if number is not None:
            cases.update(_numeric_cases(field, "=", number))
        return cases
    if _is_number(value):
        return {**_numeric_cases(field, "=", value),
                "text": _text_number_cmp(field, "=", value)}
    if isinstance(value, list):
        return {"array": UNKNOWN if value else Test(field, "json_eq", ("[]",))}
    if isinstance(value, dict):
        return {"object": UNKNOWN if value else Test(field, "json_eq", ("{}",))}
    return {}


def _order_cases(field: Field, op: str, value: Any) -> dict[str, Expr]:
    """gt/gte/lt/lte: two strings as text, numbers and numeric strings as numbers."""
    if isinstance(value, str):
        cases: dict[str, Expr] = {"text": Test(field, "cmp", (op, value))}
        number = _number(value)
        if number is not None:
            cases.update(_numeric_cases(field, op, number))
        return cases
    return {**_numeric_cases(field, op, value), "text": _text_number_cmp(field, op, value)}


def _in_cases(field: Field, items: list[Any]) -> dict[str, Expr]:
    """`in`: equal (as `eq` says) to one of the items."""
    strings = sorted({item for item in items if isinstance(item, str)})
    numbers = {item for item in items if _is_number(item)}
    spelled = {n for item in strings if (n := _number(item)) is not None}
    as_number = numbers | spelled
    exact = sorted((n for n in as_number if _bindable(n) and abs(n) < _INT64), key=float)
    inexact = [n for n in as_number if not (_bindable(n) and abs(n) < _INT64)]
    number_in: Expr = Test(field, "in", (json.dumps(exact),)) if exact else FALSE
    numeric = any_of(number_in, *[branch for n in inexact
                                  for branch in [_numeric_cases(field, "=", n)["integer"]]])
    real = any_of(number_in, *[_numeric_cases(field, "=", n)["real"] for n in inexact])
    bare = sorted((n for n in numbers if _bindable(n) and abs(n) < _INT64), key=float)
    text_numbers = any_of(
        _text_number(field, Test(field, "num_in", (json.dumps(bare),)), False) if bare else FALSE,
        *[_text_number_cmp(field, "=", n) for n in numbers
          if not (_bindable(n) and abs(n) < _INT64)])
    cases: dict[str, Expr] = {
        "text": any_of(Test(field, "in", (json.dumps(strings),)) if strings else FALSE,
                       text_numbers),
        "integer": numeric, "real": real,
        "null": TRUE if any(item is None for item in items) else FALSE,
        "true": TRUE if any(item is True for item in items) else FALSE,
        "false": TRUE if any(item is False for item in items) else FALSE,
    }
    for kind, container, empty in (("array", list, "[]"), ("object", dict, "{}")):
        listed = [item for item in items if isinstance(item, container)]
        cases[kind] = any_of(Test(field, "json_eq", (empty,)) if any(not i for i in listed)
                             else FALSE, UNKNOWN if any(listed) else FALSE)
    return cases


def _time_cases(field: Field, op: str, at: int) -> dict[str, Expr]:
    """before/after: the field's time (RFC 3339 text or epoch ms) op `at`."""
    if isinstance(field, TimeColumn):
        return {"text": Test(field, "ms_cmp", (op, at))}
    return {
        "integer": Test(field, "cmp", (op, at)),
        "real": Test(field, "trunc_cmp", (op, at)),
        "text": all_of(Test(field, "time_possible"),
                       Known(Test(field, "time_canonical"), Test(field, "time_cmp", (op, at)))),
    }


def _contains_item(value: Any) -> Expr:
    return _on(Item(), _eq_cases(Item(), value))


def _binary(op: str, value: Any, now_ms: int) -> Callable[[Field], tuple[dict[str, Expr], Expr]]:
    """The op with a constant value: per field, (cases by type, result on a missing field)."""
    def build(field: Field) -> tuple[dict[str, Expr], Expr]:
        if op in ("eq", "ne"):
            cases = _eq_cases(field, value)
        elif op in _CMP:
            cases = _order_cases(field, _CMP[op], value)
        elif op == "between":
            low, high = (_order_cases(field, ">=", value[0]), _order_cases(field, "<=", value[1]))
            cases = {t: all_of(low.get(t, FALSE), high.get(t, FALSE)) for t in PRESENT_TYPES}
        elif op in ("in", "not_in"):
            cases = _in_cases(field, value)
        elif op in ("contains", "not_contains"):
            cases = {}
            if isinstance(value, str):
                cases["text"] = Test(field, "contains", (value,))
            if isinstance(field, JsonField):
                cases["array"] = ListAny(field, _contains_item(value))
            elif isinstance(field, Item):
                cases["array"] = UNKNOWN   # a list in a list: not walked in SQL
            if op == "not_contains":
                # Where `contains` means nothing (a number, null…) both are false.
                cases = {t: negate(branch) for t, branch in cases.items()}
            return cases, FALSE
        elif op == "starts_with":
            cases = {"text": Test(field, "prefix", (value,))}
        elif op == "ends_with":
            cases = {"text": Test(field, "suffix", (value,)) if value else TRUE}
        elif op == "wildcard":
            cases = {"text": Test(field, "glob", (_glob(value),)) if "*" in value
                     else Test(field, "cmp", ("=", value))}
        elif op == "eq_ignore_case":
            cases = {"text": Known(Test(field, "ascii"),
                                   Test(field, "lower_eq", (value.casefold(),)))}
        elif op in ("before", "after"):
            moment, relative = _moment(value)
            cases = _time_cases(field, "<" if op == "before" else ">",
                                moment + now_ms if relative else moment)
        else:  # pragma: no cover - every op of OPS is handled above
            raise ValueError(op)
        if op in ("ne", "not_in"):
            cases = {t: negate(cases.get(t, FALSE)) for t in PRESENT_TYPES}
        return cases, FALSE
    return build


def _moment(value: str) -> tuple[int, bool]:
    if value.lstrip("+-")[:1] == "P":
        return parse_signed_duration(value), True
    return parse_time(value), False


_UNARY_CASES: dict[str, tuple[dict[str, Expr], Expr, Expr]] = {
    # op: (cases, missing, default for the other present types)
    "exists": ({"null": FALSE}, FALSE, TRUE),
    "not_exists": ({"null": TRUE}, TRUE, FALSE),
}


def _unary(op: str) -> Callable[[Field], tuple[dict[str, Expr], Expr, Expr]]:
    def build(field: Field) -> tuple[dict[str, Expr], Expr, Expr]:
        if op in _UNARY_CASES:
            return _UNARY_CASES[op]
        empty = {"null": TRUE, "text": Test(field, "cmp", ("=", "")),
                 "array": Test(field, "json_eq", ("[]",)),
                 "object": Test(field, "json_eq", ("{}",))}
        if op == "empty":
            return empty, TRUE, FALSE
        return {t: negate(branch) for t, branch in empty.items()}, FALSE, TRUE
    return build


# ---------------------------------------------------------------------------------------------
# Paths: which stored field a condition's path reads

Build = Callable[[Field], Expr]


def _safe_key(key: str) -> bool:
    # SQLite (before 3.45) compares a quoted path label with the key's raw JSON text, so a key
    # that JSON escapes (quote, backslash, control characters) would never be found.
    return '"' not in key and "\\" not in key and all(ord(c) >= 0x20 for c in key)


def _json_field(column: str, segments: tuple[tuple[str, int | None], ...], build: Build,
                missing: Expr) -> Expr:
    if sum(index is not None for _, index in segments) > MAX_AMBIGUOUS_SEGMENTS:
        return UNKNOWN
    if not all(_safe_key(key) for key, _ in segments):
        return UNKNOWN

    def walk(prefix: tuple[str | int, ...], rest: tuple[tuple[str, int | None], ...]) -> Expr:
        for position, (key, index) in enumerate(rest):
            if index is None:
                prefix = (*prefix, key)
                continue
            # A number reads an index of a list and a key of an object: which, the value says.
            after = rest[position + 1:]
            by_index = walk((*prefix, index), after) if index <= _MAX_INDEX else missing
            return _on(JsonField(column, prefix),
                       {"array": by_index, "object": walk((*prefix, key), after)},
                       missing=missing, default=missing)
        return build(JsonField(column, prefix))
    return walk((), segments)


def _contact_key(key: str, rest: tuple[tuple[str, int | None], ...], build: Build,
                 missing: Expr) -> Expr:
    """`contact.<key>…`: a column, or a path into a JSON column."""
    if key in JSON_COLUMNS:
        return _json_field(key, rest, build, missing)
    if rest:   # a step into text (or null) leads nowhere
        return missing
    if key in TEXT_COLUMNS:
        return build(TextColumn(key, TEXT_COLUMNS[key]))
    if key in TIME_COLUMNS:
        return build(TimeColumn(key))
    return missing


def _resolve(path: Path, build: Build, missing: Expr) -> Expr:
    """The expression for `build` applied to the field `path` reads (flowd.templates' rules,
    aliases included); `missing` where the path leads nowhere."""
    if not path.segments:
        return build(WholeContact())
    (first, _), rest = path.segments[0], path.segments[1:]
    if path.root == "contact" or first in TIME_COLUMNS or first in JSON_COLUMNS \
            or (first in TEXT_COLUMNS and not TEXT_COLUMNS[first]):
        return _contact_key(first, rest, build, missing)
    # `user.x` (profile., trait.): the contact's `x` unless it is null or absent, else
    # `traits.x` — reading the whole path inside traits.
    in_traits = _json_field("traits", path.segments, build, missing)
    if first not in TEXT_COLUMNS:
        return in_traits
    return _on(TextColumn(first, True), {"text": _contact_key(first, rest, build, missing),
                                         "null": in_traits})


def _leaf(field_text: str, op: str, value: Any, now_ms: int) -> Expr:
    path = compile_path(field_text)
    if op in ("exists", "not_exists", "empty", "not_empty"):
        unary = _unary(op)

        def build_unary(field: Field) -> Expr:
            cases, missing, default = unary(field)
            return _on(field, cases, missing=missing, default=default)
        return _resolve(path, build_unary, unary(JsonField("traits", ()))[1])
    if has_templates(value) or _nul_inside(value):
        return UNKNOWN   # a template renders per contact; a NUL defeats SQLite's text functions
    binary = _binary(op, value, now_ms)

    def build(field: Field) -> Expr:
        cases, missing = binary(field)
        return _on(field, cases, missing=missing)
    return _resolve(path, build, FALSE)


def _nul_inside(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if _has_nul(item):
            return True
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return False


# ---------------------------------------------------------------------------------------------
# Filters

@dataclass(frozen=True)
class AudienceQuery:
    """A filter made ready to evaluate at one instant: `where` is true for members, false for
    the others, UNKNOWN where `matches` (the condition in Python, on a contact's JSON) must
    decide. `python_parts`: the paths of sub-conditions SQL may leave undecided."""

    where: Expr
    matches: Callable[[dict[str, Any]], bool]
    python_parts: tuple[str, ...]


class AudienceFilter:
    """A validated filter: compile once (per stored audience version), query per call."""

    __slots__ = ("raw", "condition")

    def __init__(self, raw: Any, condition: Condition) -> None:
        self.raw = raw
        self.condition = condition

    def query(self, now_ms: int) -> AudienceQuery:
        parts: list[str] = []
        where = _translate(self.raw, "filter", now_ms, parts, 1)
        condition = self.condition

        def matches(contact: dict[str, Any]) -> bool:
            return condition.evaluate(Scope({"contact": contact}), now_ms)
        return AudienceQuery(where, matches, tuple(parts))

    def matches(self, contact: dict[str, Any], now_ms: int) -> bool:
        return self.condition.evaluate(Scope({"contact": contact}), now_ms)


def _translate(cond: dict[str, Any], path: str, now_ms: int, parts: list[str],
               depth: int) -> Expr:
    # Recursion is bounded: compile_condition refused anything deeper than its limit.
    if "all" in cond:
        return all_of(*[_translate(item, join(join(path, "all"), i), now_ms, parts, depth + 1)
                        for i, item in enumerate(cond["all"])])
    if "any" in cond:
        return any_of(*[_translate(item, join(join(path, "any"), i), now_ms, parts, depth + 1)
                        for i, item in enumerate(cond["any"])])
    if "not" in cond:
        return negate(_translate(cond["not"], join(path, "not"), now_ms, parts, depth + 1))
    expr = _leaf(cond["field"], cond["op"], cond.get("value"), now_ms)
    if may_be_unknown(expr):
        parts.append(path)
    return expr


def compile_filter(raw: Any, path: str = "filter") -> AudienceFilter:
    """A filter checked as the audiences API wants it: a valid condition (flowd.conditions),
    each of whose fields — and each template in its values — reads the contact. Raises
    ValidationError listing every problem with its JSON path."""
    try:
        condition = compile_condition(raw, path)
    except ConditionError as error:
        # What the request schema cannot state (a path's syntax, a value fitting its op) is
        # named by its rule, as in a workflow's issues.
        raise ValidationError([Problem(p.path, p.message, p.code or "invalid_condition")
                               for p in error.problems],
                              message="the filter is not a valid condition") from None
    problems: list[Problem] = []
    _check_fields(raw, path, problems)
    if problems:
        raise ValidationError(problems, message="an audience filter reads only the contact")
    return AudienceFilter(raw, condition)


def _check_fields(raw: Any, path: str, problems: list[Problem]) -> None:
    stack = [(raw, path)]
    while stack:   # bounded by the condition's size, which compile_condition limited
        cond, where = stack.pop()
        for group in ("all", "any"):
            if group in cond:
                stack.extend((item, join(join(where, group), i))
                             for i, item in enumerate(cond[group]))
        if "not" in cond:
            stack.append((cond["not"], join(where, "not")))
        if "field" not in cond:
            continue
        problem = _contact_field_problem(cond["field"])
        if problem:
            problems.append(Problem(join(where, "field"), problem, "invalid_condition"))
        if "value" in cond and has_templates(cond["value"]):
            try:
                paths = compile_value(cond["value"]).paths
            except TemplateError:   # pragma: no cover - compile_condition checked it
                continue
            for template_path in paths:
                if template_path.root not in CONTACT_ROOTS:
                    problems.append(Problem(join(where, "value"), (
                        f"reads {template_path.text}: a template in an audience filter may "
                        "read only the contact (contact.…)"), "invalid_condition"))


def _contact_field_problem(text: str) -> str | None:
    try:
        path = compile_path(text)
    except PathError as error:   # pragma: no cover - compile_condition checked it
        return str(error)
    if path.root not in CONTACT_ROOTS:
        return ("must be a field of the contact, such as contact.traits.plan, contact.email, "
                f"contact.tags or contact.subscribed.email; {path.root}. is not")
    if path.root == "contact" and path.segments and path.segments[0][0] not in CONTACT_KEYS:
        return (f"contact.{path.segments[0][0]} is not a field of a contact (fields: "
                f"{', '.join(CONTACT_KEYS)}); a trait is contact.traits.{path.segments[0][0]}")
    return None


__all__ = ["OPS", "AudienceFilter", "AudienceQuery", "compile_filter", "possible_types"]
