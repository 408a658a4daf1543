"""An audience filter's expression tree (flowd.audiences) as one SQLite expression over a row of
`contacts`: 1 for a member, 0 for a non-member, NULL where Python must decide.

Every value the filter holds — a JSON path, a string, a number — is a named parameter; the SQL
text holds only this module's own words and the column names flowd.audiences allows. A JSON
column's value is read with `json_type` (which type, or NULL when missing) and `json_extract`
(the value); SQLite parses a row's JSON once for all the calls on it within the statement.

Rows SQL cannot read exactly are left to Python as a whole (the expression is NULL for them):
`traits` that SQLite may not take as JSON (Python writes an overflowing number as `Infinity`),
and JSON text holding a NUL character (SQLite's text functions stop at it).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from flowd.audience_tree import (
    FALSE,
    JSON_COLUMNS,
    TEXT_COLUMNS,
    TIME_COLUMNS,
    All,
    AnyOf,
    Const,
    Expr,
    Field,
    Item,
    JsonField,
    Known,
    ListAny,
    Not,
    Test,
    TextColumn,
    TimeColumn,
    TypeCase,
    columns_read,
    may_be_unknown,
)

_OPS = frozenset({"=", "<", "<=", ">", ">="})
# SQLite's parser stack holds 100 entries, and nesting spends them fast (measured on 3.40: 15
# levels of CASE … THEN x, 23 of CASE WHEN x, 31 of `1 AND x`, 30 of f(x), 47 of NOT x). Each
# construct below costs about what it nests; where the room runs out, the rest of that branch
# is NULL — undecided, so Python decides it: deep filters stay exact, only slower. The
# estimate is rough (the statement around the expression takes its share too): a caller tries
# more room first and less while SQLite refuses (see too_deep).
_THEN, _WHEN, _AND, _NOT = 7, 5, 4, 3
_TEST = 24      # the deepest test's own nesting (time_canonical: functions in functions)
_LIST = 24      # EXISTS (SELECT … WHERE (item) IS 1) inside a CASE
DEFAULT_ROOM = 80
_DATE = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]"


def _column(name: str) -> str:
    # Only the contact's own columns ever reach SQL text.
    assert name in JSON_COLUMNS or name in TEXT_COLUMNS or name in TIME_COLUMNS, name
    return name


def json_path(path: tuple[str | int, ...]) -> str:
    """`$."plan"[0]."a b"`: keys quoted (flowd.audiences only passes keys without quotes or
    backslashes), indexes bracketed."""
    return "$" + "".join(f"[{step}]" if isinstance(step, int) else f'."{step}"' for step in path)


class Rendered:
    """`sql` with its named parameters."""

    __slots__ = ("sql", "params")

    def __init__(self, sql: str, params: dict[str, Any]) -> None:
        self.sql = sql
        self.params = params


def render(expr: Expr, room: int = DEFAULT_ROOM, *, unreadable_json: bool = False) -> Rendered:
    """`room`: parser stack units the expression may nest (see _THEN); a caller whose
    statement SQLite still finds too deep renders again with less. `unreadable_json`: leave
    to Python every row whose traits SQLite may not read as JSON (see malformed_json)."""
    renderer = _Renderer(room)
    sql = renderer.expr(expr)
    guards = []
    for column in sorted(columns_read(expr)):
        if column == "subscribed":   # booleans only, written by flowd itself
            continue
        # JSON text holding a NUL character: SQLite's text functions stop at it. GLOB finds
        # the escape for next to nothing; a string that merely spells it goes to Python.
        guards.append(f"{_column(column)} NOT GLOB '*\\u0000*'")
        if column == "traits" and unreadable_json:
            guards += ["traits NOT GLOB '*Infinity*'", "traits NOT GLOB '*NaN*'"]
    if guards:
        sql = f"CASE WHEN {' AND '.join(guards)} THEN {sql} END"
    return Rendered(sql, renderer.params)


def malformed_json(error: Exception) -> bool:
    """Whether SQLite refused to read some row's JSON. Python writes a number that overflowed
    as Infinity (or NaN), which is no JSON to SQLite: the only JSON flowd stores that can hold
    one is traits. Looking for those words in every row would cost a tenth of a count, so a
    caller does it only once SQLite has refused a row (render with unreadable_json)."""
    return "malformed JSON" in str(error)


def too_deep(error: Exception) -> bool:
    """Whether SQLite refused a statement for nesting too deep."""
    text = str(error)
    return "parser stack overflow" in text or "Expression tree is too large" in text


class _Renderer:
    def __init__(self, room: int) -> None:
        self.params: dict[str, Any] = {}
        self._names: dict[tuple[str, Any], str] = {}
        self._lists = 0
        self._room = room

    def nested(self, cost: int, render: Callable[[], str]) -> str:
        """What `render` writes, nested `cost` deeper; NULL where there is no room left."""
        if self._room < cost:
            return "NULL"
        self._room -= cost
        try:
            return render()
        finally:
            self._room += cost

    def bind(self, value: Any) -> str:
        # 1, 1.0 and True are equal in Python but not one parameter: keyed by type too.
        key = (type(value).__name__, value)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"a{len(self._names)}"
            self.params[name] = value
        return f":{name}"

    # -- fields --------------------------------------------------------------------------

    def value(self, field: Field, item: str | None) -> str:
        if isinstance(field, JsonField):
            return f"json_extract({_column(field.column)}, {self.bind(json_path(field.path))})"
        if isinstance(field, Item):
            assert item is not None
            return f"{item}.value"
        if isinstance(field, TextColumn):
            return _column(field.column)
        if isinstance(field, TimeColumn):
            # flowd.timeutil.format_ms in SQL: floored seconds, then the milliseconds.
            ms = _column(field.column)
            return (f"printf('%s.%03dZ', strftime('%Y-%m-%dT%H:%M:%S', ({ms} - (({ms} % 1000) "
                    f"+ 1000) % 1000) / 1000, 'unixepoch'), (({ms} % 1000) + 1000) % 1000)")
        raise AssertionError(f"no SQL value for {field!r}")

    def type_of(self, field: Field, item: str | None) -> str:
        if isinstance(field, JsonField):
            return f"json_type({_column(field.column)}, {self.bind(json_path(field.path))})"
        if isinstance(field, Item):
            assert item is not None
            return f"{item}.type"
        if isinstance(field, TextColumn):
            return f"(CASE WHEN {_column(field.column)} IS NULL THEN 'null' ELSE 'text' END)"
        raise AssertionError(f"no SQL type for {field!r}")

    # -- expressions -----------------------------------------------------------------------

    def expr(self, expr: Expr, item: str | None = None) -> str:
        if isinstance(expr, Const):
            return "NULL" if expr.value is None else ("1" if expr.value else "0")
        if isinstance(expr, (All, AnyOf)):
            return self.group(expr.items, isinstance(expr, All), item)
        if isinstance(expr, Not):
            return f"(NOT {self.nested(_NOT, lambda: self.expr(expr.item, item))})"
        if isinstance(expr, Known):
            test = self.nested(_WHEN, lambda: self.test(expr.test, item))
            then = self.nested(_THEN, lambda: self.expr(expr.expr, item))
            return f"(CASE WHEN {test} THEN {then} END)"
        if isinstance(expr, Test):
            return self.test(expr, item)
        if isinstance(expr, TypeCase):
            return self.type_case(expr, item)
        if isinstance(expr, ListAny):
            return self.list_any(expr)
        raise AssertionError(f"cannot render {expr!r}")

    def group(self, items: tuple[Expr, ...], conjunction: bool, item: str | None) -> str:
        """AND (or OR) of the items, as a balanced tree: SQLite refuses an expression deeper
        than 1,000, and a filter may have that many parts. Where the left half can never be
        unknown, a CASE stops there (SQL evaluates both sides of AND and OR, a CASE only the
        branch taken): `plan eq pro AND age gte 30` reads the age of the pros only."""
        if len(items) == 1:
            return self.expr(items[0], item)
        middle = len(items) // 2
        if any(may_be_unknown(e) for e in items[:middle]):
            left = self.nested(_AND, lambda: self.group(items[:middle], conjunction, item))
            right = self.nested(_AND, lambda: self.group(items[middle:], conjunction, item))
            return f"({left} {'AND' if conjunction else 'OR'} {right})"
        left = self.nested(_WHEN, lambda: self.group(items[:middle], conjunction, item))
        right = self.nested(_THEN, lambda: self.group(items[middle:], conjunction, item))
        if conjunction:
            return f"(CASE WHEN {left} THEN {right} ELSE 0 END)"
        return f"(CASE WHEN {left} THEN 1 ELSE {right} END)"

    def type_case(self, case: TypeCase, item: str | None) -> str:
        field = case.field
        if isinstance(field, JsonField) and _text_equality(case):
            # Only text can equal such a text (an array's or object's JSON text starts with [
            # or {, a number is no text): the value alone decides, one JSON lookup less.
            equal = self.test(case.cases[0][1], item)  # type: ignore[arg-type]
            return "NULL" if equal == "NULL" else f"coalesce({equal}, 0)"

        def branch(expr: Expr) -> str:
            return self.nested(_THEN, lambda: self.expr(expr, item))
        if isinstance(field, TextColumn):   # two types at most: say it without CASE on a type
            branches = dict(case.cases)
            null, text = branches.get("null", case.default), branches.get("text", case.default)
            return (f"(CASE WHEN {_column(field.column)} IS NULL THEN {branch(null)} "
                    f"ELSE {branch(text)} END)")
        kind = self.type_of(field, item)
        whens = []
        if isinstance(field, JsonField) and case.missing != case.default:
            kind = f"coalesce({kind}, 'missing')"
            whens.append(f"WHEN 'missing' THEN {branch(case.missing)}")
        whens += [f"WHEN '{name}' THEN {branch(expr)}" for name, expr in case.cases]
        return f"(CASE {kind} {' '.join(whens)} ELSE {branch(case.default)} END)"

    def list_any(self, node: ListAny) -> str:
        self._lists += 1
        alias = f"j{self._lists}"
        source = (f"json_each({_column(node.field.column)}, "
                  f"{self.bind(json_path(node.field.path))}) AS {alias}")
        each = self.nested(_LIST, lambda: self.expr(node.item, alias))
        found = f"EXISTS (SELECT 1 FROM {source} WHERE ({each}) IS 1)"
        if not may_be_unknown(node.item):
            return f"({found})"
        # Kleene's "some": true if one item is, else unknown if one might be, else false.
        return (f"(CASE WHEN {found} THEN 1 WHEN EXISTS (SELECT 1 FROM {source} WHERE ({each}) "
                "IS NULL) THEN NULL ELSE 0 END)")

    def test(self, test: Test, item: str | None) -> str:
        if self._room < _TEST:
            return "NULL"
        kind, args = test.kind, test.args
        if kind == "ms_cmp":
            assert isinstance(test.field, TimeColumn)
            return f"({_column(test.field.column)} {_op(args[0])} {self.bind(args[1])})"
        v = self.value(test.field, item)
        if kind == "cmp":
            return f"({v} {_op(args[0])} {self.bind(args[1])})"
        if kind == "trunc_cmp":
            return f"(CAST({v} AS INTEGER) {_op(args[0])} {self.bind(args[1])})"
        if kind == "prefix":
            return f"(substr({v}, 1, {self.bind(len(args[0]))}) = {self.bind(args[0])})"
        if kind == "suffix":
            return f"(substr({v}, {self.bind(-len(args[0]))}) = {self.bind(args[0])})"
        if kind == "contains":
            return f"(instr({v}, {self.bind(args[0])}) > 0)"
        if kind == "glob":
            return f"({v} GLOB {self.bind(args[0])})"
        if kind == "ascii":
            return f"(length({v}) = length(CAST({v} AS BLOB)))"
        if kind == "lower_eq":
            return f"(lower({v}) = {self.bind(args[0])})"
        if kind == "in":
            return f"({v} IN (SELECT value FROM json_each({self.bind(args[0])})))"
        if kind == "number_chars":
            return f"({v} <> '' AND {v} NOT GLOB '*[^0-9eE.+-]*')"
        if kind == "short":
            return f"(length({v}) <= 41)"
        if kind == "json_number":
            return f"json_valid({v})"
        if kind == "exp_ok":
            return f"({v} NOT GLOB '*[eE]*[0-9][0-9][0-9][0-9][0-9]')"
        if kind == "exact_number":
            return (f"(CASE WHEN json_valid({v}) THEN NOT (json_type({v}) = 'integer' AND "
                    f"typeof(json_extract({v}, '$')) = 'real') ELSE 0 END)")
        if kind == "int64":
            return f"(typeof({v}) = 'integer')"
        if kind == "num_cmp":
            return f"({_spelled(v)} {_op(args[0])} {self.bind(args[1])})"
        if kind == "num_in":
            return f"({_spelled(v)} IN (SELECT value FROM json_each({self.bind(args[0])})))"
        if kind == "json_eq":
            return f"({v} = {self.bind(args[0])})"
        if kind == "time_possible":
            return f"(length({v}) <= 64 AND {v} GLOB '[0-9][0-9][0-9][0-9]*')"
        if kind == "time_canonical":
            # strftime echoes a date it did not check (Feb 30): round-trip through seconds.
            return (f"({v} >= '0001' AND ({v} GLOB '{_DATE}Z' OR "
                    f"{v} GLOB '{_DATE}.[0-9][0-9][0-9]Z') AND strftime('%Y-%m-%dT%H:%M:%S', CAST(strftime('%s', substr({v}, 1, 19)) "
                    f"AS INTEGER), 'unixepoch') = substr({v}, 1, 19))")
        if kind == "time_cmp":
            return (f"((CAST(strftime('%s', substr({v}, 1, 19)) AS INTEGER) * 1000 + CASE WHEN "
                    f"length({v}) = 24 THEN CAST(substr({v}, 21, 3) AS INTEGER) ELSE 0 END) "
                    f"{_op(args[0])} {self.bind(args[1])})")
        raise AssertionError(f"unknown test {kind}")


def _text_equality(case: TypeCase) -> bool:
    """A case that is true only for text equal to given texts that no JSON array or object
    text can be (`eq "pro"`, `in ["pro", "team"]`)."""
    if case.missing != FALSE or case.default != FALSE or len(case.cases) != 1:
        return False
    kind, branch = case.cases[0]
    if kind != "text" or not isinstance(branch, Test):
        return False
    if branch.kind == "cmp" and branch.args[0] == "=":
        texts = [branch.args[1]]
    elif branch.kind == "in":
        texts = json.loads(branch.args[0])
    else:
        return False
    return all(isinstance(t, str) and not t.startswith(("[", "{")) for t in texts)


def _spelled(v: str) -> str:
    # SQL evaluates both sides of an AND: the json_number test beside this one does not keep
    # json_extract from text that is no JSON (it would raise), only CASE does. Such text gives
    # NULL here, and the json_number test false.
    return f"(CASE WHEN json_valid({v}) THEN json_extract({v}, '$') END)"


def _op(op: str) -> str:
    assert op in _OPS, op
    return op
