"""The expression tree of an audience filter (flowd.audiences makes it, the store renders it
as SQL): which stored field a test reads, and three-valued expressions — true, false, or
UNKNOWN where SQL cannot decide and Python must. AND, OR and NOT follow Kleene's rules, which
are SQL's rules for NULL.

The tree names fields and tests and holds the values a rendering binds as parameters; it holds
no SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

# JSON types as SQLite's json_type names them; "missing" is a path that leads nowhere.
MISSING_TYPE = "missing"
PRESENT_TYPES = ("null", "true", "false", "integer", "real", "text", "array", "object")

# The contact as conditions see it (Contact.to_json): which key is stored how.
TEXT_COLUMNS = {"id": False, "email": True, "phone": True, "timezone": True}  # name → nullable
TIME_COLUMNS = ("created_at", "updated_at")   # epoch ms, seen as RFC 3339 text
JSON_COLUMNS = ("traits", "tags", "subscribed", "push_tokens")
CONTACT_KEYS = (*TEXT_COLUMNS, *TIME_COLUMNS, *JSON_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Fields

@dataclass(frozen=True)
class JsonField:
    """A value inside a JSON column (`path` () is the column's whole value): a key (str) or a
    list index (int) per step."""
    column: str
    path: tuple[str | int, ...]


@dataclass(frozen=True)
class TextColumn:
    """A text column: `id` (never null) or email/phone/timezone (JSON null while unset)."""
    column: str
    nullable: bool


@dataclass(frozen=True)
class TimeColumn:
    """created_at/updated_at: stored as epoch ms; a condition sees RFC 3339 text."""
    column: str


@dataclass(frozen=True)
class Item:
    """The element of the list a ListAny walks."""


@dataclass(frozen=True)
class WholeContact:
    """The contact itself (`contact` with no key): an object SQL never reads whole."""


Field = Union[JsonField, TextColumn, TimeColumn, Item, WholeContact]


def possible_types(field: Field) -> tuple[str, ...]:
    """The JSON types the field can have (MISSING_TYPE included where it can be missing)."""
    if isinstance(field, JsonField):
        return (MISSING_TYPE, *PRESENT_TYPES)
    if isinstance(field, TextColumn):
        return ("null", "text") if field.nullable else ("text",)
    if isinstance(field, TimeColumn):
        return ("text",)
    if isinstance(field, Item):
        return PRESENT_TYPES
    return ("object",)


# ---------------------------------------------------------------------------------------------
# Expressions

@dataclass(frozen=True)
class Const:
    value: bool | None    # None: unknown


TRUE, FALSE, UNKNOWN = Const(True), Const(False), Const(None)


@dataclass(frozen=True)
class All:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


@dataclass(frozen=True)
class TypeCase:
    """By the field's JSON type: `cases[type]`, `missing` when it is missing, else `default`."""
    field: Field
    cases: tuple[tuple[str, Expr], ...]
    missing: Expr
    default: Expr


@dataclass(frozen=True)
class Test:
    """A definite test of a field's value, only ever used where its type is known (inside the
    TypeCase branch of that type). Kinds and args:

    cmp (op, x)          value op x; op one of = < <= > >= (text, numbers)
    ms_cmp (op, ms)      a TimeColumn's epoch ms op ms
    trunc_cmp (op, ms)   a real truncated toward zero, op ms
    prefix (s) / suffix (s) / contains (s)   text
    glob (pattern)       text GLOB pattern (literal ? and [ escaped)
    ascii ()             text of ASCII characters only
    lower_eq (s)         lower(text) = s (right only for ASCII text)
    in (json)            value is one of the JSON array's items (same type)
    number_chars ()      text made only of characters a JSON number has, not empty
    short ()             text of at most 41 characters
    json_number ()       text that is a JSON number (with number_chars)
    exp_ok ()            …whose exponent has at most 4 digits (flowd.conditions' limit)
    exact_number ()      …whose value SQL holds exactly (not an integer past 64 bits)
    int64 ()             an integer that fits 64 bits (its SQL value is exact)
    num_cmp (op, x)      the number the text spells, op x
    num_in (json)        the number the text spells is one of the JSON array's numbers
    json_eq (text)       an array's or object's JSON text equals text ('[]', '{}')
    time_possible ()     text that may be an RFC 3339 time (starts with 4 digits, ≤ 64 chars)
    time_canonical ()    text that is YYYY-MM-DDTHH:MM:SSZ or …SS.mmmZ, a real instant
    time_cmp (op, ms)    that instant's epoch ms op ms
    """
    field: Field
    kind: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Known:
    """`expr` where `test` holds; UNKNOWN elsewhere."""
    test: Test
    expr: Expr


@dataclass(frozen=True)
class ListAny:
    """Some element of the list at `field` satisfies `item` (an Expr over Item())."""
    field: JsonField
    item: Expr


Expr = Union[Const, All, AnyOf, Not, TypeCase, Test, Known, ListAny]


def all_of(*items: Expr) -> Expr:
    kept: list[Expr] = []
    for item in items:
        if item == FALSE:
            return FALSE
        if item != TRUE and item not in kept:
            kept.append(item)
    if not kept:
        return TRUE
    return kept[0] if len(kept) == 1 else All(tuple(kept))


def any_of(*items: Expr) -> Expr:
    kept: list[Expr] = []
    for item in items:
        if item == TRUE:
            return TRUE
        if item != FALSE and item not in kept:
            kept.append(item)
    if not kept:
        return FALSE
    return kept[0] if len(kept) == 1 else AnyOf(tuple(kept))


def negate(item: Expr) -> Expr:
    if isinstance(item, Const):
        return item if item.value is None else Const(not item.value)
    if isinstance(item, Not):
        return item.item
    return Not(item)


def may_be_unknown(expr: Expr) -> bool:
    """Whether some row may get UNKNOWN (then Python decides those rows)."""
    if isinstance(expr, Const):
        return expr.value is None
    if isinstance(expr, Known):
        return True
    if isinstance(expr, (All, AnyOf)):
        return any(may_be_unknown(item) for item in expr.items)
    if isinstance(expr, Not):
        return may_be_unknown(expr.item)
    if isinstance(expr, TypeCase):
        return (may_be_unknown(expr.missing) or may_be_unknown(expr.default)
                or any(may_be_unknown(branch) for _, branch in expr.cases))
    if isinstance(expr, ListAny):
        return may_be_unknown(expr.item)
    return False


def columns_read(expr: Expr) -> set[str]:
    """The JSON columns an expression reads (the store guards each against rows SQL cannot
    read exactly)."""
    found: set[str] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, (All, AnyOf)):
            stack.extend(node.items)
        elif isinstance(node, Not):
            stack.append(node.item)
        elif isinstance(node, Known):
            stack.extend((node.test, node.expr))
        elif isinstance(node, TypeCase):
            if isinstance(node.field, JsonField):
                found.add(node.field.column)
            stack.extend((node.missing, node.default, *(branch for _, branch in node.cases)))
        elif isinstance(node, Test) and isinstance(node.field, JsonField):
            found.add(node.field.column)
        elif isinstance(node, ListAny):
            found.add(node.field.column)
            stack.append(node.item)
    return found
