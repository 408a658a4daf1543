"""Conditions: every op (true and false), missing fields, templates in values, errors with
their paths, limits, and event name patterns."""

from __future__ import annotations

import pytest

from flowd.conditions import (
    MAX_CONDITION_DEPTH,
    MAX_CONDITION_PARTS,
    OPS,
    ConditionError,
    compile_condition,
    compile_name_pattern,
    is_wildcard,
    validate_condition,
)
from flowd.errors import Problem, ValidationError
from flowd.templates import Scope
from flowd.timeutil import parse_time

NOW = parse_time("2026-11-23T18:00:00Z")
DAY = 86_400_000

SCOPE = Scope({
    "contact": {"id": "u_1", "email": "Ann@Example.com", "phone": None,
                "traits": {"plan": "pro", "age": 30, "nick": "", "tags": [], "meta": {},
                           "signed_up": "2026-11-20T10:00:00Z", "vip": True}},
    "event": {"name": "order.completed", "timestamp": "2026-11-23T17:00:00.000Z",
              "properties": {"amount": 42, "price": "19.99", "count": "7", "zip": "007",
                             "items": ["a", "b", 3], "sku": "AB-123-XY", "ratio": 0.5,
                             "none": None, "flag": False, "at_ms": NOW - 2 * DAY,
                             "nested": {"x": [1, {"y": True}]}, "code": "B"}},
    "vars": {"threshold": 40, "allowed": ["pro", "team"], "low": 10, "high": "50",
             "since": "-P7D", "pattern": "AB-*", "deadline": "2026-11-24T00:00:00Z",
             "when_ms": NOW, "word": "order"},
    "steps": {}, "now": "2026-11-23T18:00:00.000Z",
})


_NO_VALUE = object()


def check(field, op, value=_NO_VALUE, scope=SCOPE, now_ms=NOW):
    cond = {"field": field, "op": op}
    if value is not _NO_VALUE:
        cond["value"] = value
    return compile_condition(cond).evaluate(scope, now_ms)


def leaf(field, op, value):
    return {"field": field, "op": op, "value": value}


# --- each op, true and false -----------------------------------------------------------------

@pytest.mark.parametrize("field,op,value,expected", [
    # eq / ne
    ("event.properties.amount", "eq", 42, True),
    ("event.properties.amount", "eq", 42.0, True),
    ("event.properties.amount", "eq", 43, False),
    ("event.properties.amount", "eq", "42", True),  # numeric string vs number
    ("event.properties.count", "eq", 7, True),
    ("event.properties.count", "eq", 7.0, True),
    ("event.properties.price", "eq", 19.99, True),
    ("event.properties.zip", "eq", 7, False),  # "007" is not a JSON number
    ("event.properties.count", "eq", "7.0", False),  # two strings compare as text
    ("event.name", "eq", "order.completed", True),
    ("event.name", "eq", "order", False),
    ("event.properties.flag", "eq", False, True),
    ("event.properties.flag", "eq", 0, False),  # booleans are not numbers
    ("contact.traits.vip", "eq", 1, False),
    ("contact.traits.vip", "eq", "true", False),
    ("event.properties.none", "eq", None, True),
    ("event.properties.none", "eq", "", False),
    ("event.properties.items", "eq", ["a", "b", 3], True),
    ("event.properties.items", "eq", ["a", "b", "3"], False),
    ("event.properties.nested", "eq", {"x": [1, {"y": True}]}, True),
    ("event.properties.nested", "eq", {"x": [1, {"y": 1}]}, False),
    ("event.properties.nested", "eq", {"x": [1.0, {"y": True}]}, True),
    ("event.properties.amount", "ne", 41, True),
    ("event.properties.amount", "ne", 42, False),
    ("event.properties.amount", "ne", "42", False),
    ("event.properties.none", "ne", "x", True),
    ("event.name", "ne", 5, True),
    # gt / gte / lt / lte
    ("event.properties.amount", "gt", 40, True),
    ("event.properties.amount", "gt", 42, False),
    ("event.properties.amount", "gte", 42, True),
    ("event.properties.amount", "gte", 42.5, False),
    ("event.properties.amount", "lt", 42.5, True),
    ("event.properties.amount", "lt", 42, False),
    ("event.properties.amount", "lte", 42, True),
    ("event.properties.amount", "lte", 41, False),
    ("event.properties.price", "gt", 19, True),  # numeric string vs number: numeric
    ("event.properties.price", "lt", 19, False),
    ("event.properties.amount", "gt", "9", True),  # 42 > 9 numerically
    ("event.properties.count", "gt", "10", True),  # two strings: "7" > "10" as text
    ("event.properties.count", "lt", "10", False),
    ("event.properties.code", "gt", "A", True),
    ("event.properties.code", "lt", "A", False),
    ("event.properties.ratio", "lt", 1, True),
    ("event.properties.flag", "lt", 1, False),  # booleans are not numbers
    ("event.properties.flag", "gte", 0, False),
    ("event.properties.items", "gt", 1, False),
    ("event.properties.none", "lt", 1, False),
    ("event.properties.sku", "gt", 1, False),  # a non-numeric string vs a number
    ("event.properties.sku", "lt", 1, False),
    # in / not_in
    ("contact.traits.plan", "in", ["pro", "team"], True),
    ("contact.traits.plan", "in", ["free", "team"], False),
    ("contact.traits.plan", "in", [], False),
    ("event.properties.amount", "in", [1, 42], True),
    ("event.properties.amount", "in", ["42"], True),
    ("event.properties.count", "in", [7], True),
    ("event.properties.count", "in", [8, "x"], False),
    ("contact.traits.vip", "in", [1, "true"], False),
    ("contact.traits.vip", "in", [True], True),
    ("event.properties.none", "in", [None], True),
    ("contact.traits.plan", "not_in", ["free"], True),
    ("contact.traits.plan", "not_in", ["pro"], False),
    ("event.properties.amount", "not_in", ["42"], False),
    # contains / not_contains
    ("event.name", "contains", "der.comp", True),
    ("event.name", "contains", "refund", False),
    ("event.name", "contains", "", True),
    ("event.properties.items", "contains", "a", True),
    ("event.properties.items", "contains", "z", False),
    ("event.properties.items", "contains", "3", True),  # list items compare like eq
    ("event.properties.amount", "contains", 4, False),  # a number contains nothing
    ("event.name", "contains", 5, False),
    ("event.name", "not_contains", "refund", True),
    ("event.name", "not_contains", "order", False),
    ("event.properties.items", "not_contains", "z", True),
    ("event.properties.items", "not_contains", "b", False),
    ("event.properties.amount", "not_contains", 4, False),  # type mismatch: false
    ("event.name", "not_contains", 5, False),
    # starts_with / ends_with
    ("event.name", "starts_with", "order.", True),
    ("event.name", "starts_with", "completed", False),
    ("event.properties.amount", "starts_with", "4", False),
    ("event.name", "ends_with", ".completed", True),
    ("event.name", "ends_with", "order", False),
    ("event.properties.items", "ends_with", "3", False),
    # wildcard
    ("event.properties.sku", "wildcard", "AB-*", True),
    ("event.properties.sku", "wildcard", "*-XY", True),
    ("event.properties.sku", "wildcard", "AB-*-XY", True),
    ("event.properties.sku", "wildcard", "*", True),
    ("event.properties.sku", "wildcard", "AB-123-XY", True),
    ("event.properties.sku", "wildcard", "AB", False),  # whole-string match
    ("event.properties.sku", "wildcard", "ab-*", False),  # case-sensitive
    ("event.properties.sku", "wildcard", "AB-???-XY", False),  # only * is special
    ("event.properties.sku", "wildcard", "AB.*", False),  # . is literal
    ("event.properties.amount", "wildcard", "*", False),
    # eq_ignore_case
    ("contact.email", "eq_ignore_case", "ann@example.COM", True),
    ("contact.email", "eq_ignore_case", "bob@example.com", False),
    ("contact.traits.plan", "eq_ignore_case", "PRO", True),
    ("event.properties.amount", "eq_ignore_case", "42", False),
    # between (inclusive)
    ("event.properties.amount", "between", [40, 50], True),
    ("event.properties.amount", "between", [42, 42], True),
    ("event.properties.amount", "between", [43, 50], False),
    ("event.properties.amount", "between", [10, 41.9], False),
    ("event.properties.price", "between", [19, 20], True),
    ("event.properties.amount", "between", ["40", "50"], True),
    ("event.properties.code", "between", ["A", "C"], True),
    ("event.properties.code", "between", ["C", "D"], False),
    ("event.properties.amount", "between", [50, 40], False),
    ("event.properties.flag", "between", [0, 1], False),
    # before / after
    ("event.timestamp", "before", "2026-11-23T17:30:00Z", True),
    ("event.timestamp", "before", "2026-11-23T17:00:00Z", False),  # strict
    ("event.timestamp", "after", "2026-11-23T16:00:00+00:00", True),
    ("event.timestamp", "after", "2026-11-23T19:00:00Z", False),
    ("event.timestamp", "after", "2026-11-23T17:00:00Z", False),  # strict
    ("event.timestamp", "after", "2026-11-23T16:59:59.999Z", True),
    ("event.timestamp", "after", "-PT2H", True),  # within the last two hours
    ("event.timestamp", "after", "-PT30M", False),
    ("event.timestamp", "before", "-PT30M", True),
    ("event.timestamp", "before", "PT1H", True),  # a positive duration: an hour from now
    ("event.timestamp", "before", "+PT1H", True),
    ("event.timestamp", "after", "P1D", False),
    ("contact.traits.signed_up", "after", "-P7D", True),
    ("contact.traits.signed_up", "after", "-P1D", False),
    ("contact.traits.signed_up", "before", "-P1D", True),
    ("event.properties.at_ms", "before", "-P1D", True),  # epoch ms fields
    ("event.properties.at_ms", "after", "-P1D", False),
    ("event.properties.at_ms", "after", "-P3D", True),
    ("event.name", "after", "-P7D", False),  # not a time
    ("contact.traits.vip", "after", "-P7D", False),
    ("event.properties.items", "before", "P1D", False),
    ("event.properties.none", "before", "P1D", False),
])
def test_ops(field, op, value, expected):
    assert check(field, op, value) is expected


def test_numeric_strings_compare_exactly():
    scope = Scope({"vars": {"big": "9007199254740993", "n": 9007199254740993}})
    assert check("vars.big", "eq", 9007199254740993, scope=scope) is True
    assert check("vars.big", "eq", 9007199254740992, scope=scope) is False
    assert check("vars.n", "gt", "9007199254740992", scope=scope) is True


def test_after_with_offset_value():
    # 18:30+01:00 is 17:30Z, after the event's 17:00Z: so `after` is false.
    assert check("event.timestamp", "after", "2026-11-23T18:30:00+01:00") is False
    assert check("event.timestamp", "before", "2026-11-23T18:30:00+01:00") is True


def test_relative_times_follow_now_ms():
    cond = compile_condition(leaf("event.timestamp", "after", "-P1D"))
    assert cond.evaluate(SCOPE, NOW) is True
    assert cond.evaluate(SCOPE, NOW + 2 * DAY) is False


def test_date_only_and_naive_times_in_fields_are_not_times():
    scope = Scope({"event": {"properties": {"d": "2026-11-23", "naive": "2026-11-23T10:00:00"}}})
    assert check("event.d", "before", "2030-01-01T00:00:00Z", scope=scope) is False
    assert check("event.naive", "before", "2030-01-01T00:00:00Z", scope=scope) is False


@pytest.mark.parametrize("field,op,expected", [
    ("contact.email", "exists", True),
    ("contact.nothing", "exists", False),
    ("contact.phone", "exists", False),  # null is no value
    ("contact.traits.nick", "exists", True),  # "" is a value
    ("contact.email", "not_exists", False),
    ("contact.nothing", "not_exists", True),
    ("contact.phone", "not_exists", True),
    ("contact.traits.nick", "empty", True),
    ("contact.traits.tags", "empty", True),
    ("contact.traits.meta", "empty", True),
    ("contact.phone", "empty", True),
    ("contact.nothing", "empty", True),
    ("contact.email", "empty", False),
    ("contact.traits.age", "empty", False),
    ("event.properties.flag", "empty", False),  # false is a value
    ("contact.traits.nick", "not_empty", False),
    ("contact.traits.tags", "not_empty", False),
    ("contact.nothing", "not_empty", False),
    ("contact.email", "not_empty", True),
    ("event.properties.items", "not_empty", True),
    ("event.properties.flag", "not_empty", True),
])
def test_unary_ops(field, op, expected):
    assert check(field, op) is expected


def test_unary_ops_ignore_a_value():
    assert check("contact.email", "exists", None) is True
    assert check("contact.email", "exists", "{{ broken") is True


# --- missing fields --------------------------------------------------------------------------

MISSING_CASES = [
    ("eq", None), ("eq", ""), ("ne", "x"), ("ne", None), ("gt", 0), ("gte", 0), ("lt", 0),
    ("lte", 0), ("in", ["a"]), ("not_in", ["a"]), ("contains", "a"), ("not_contains", "a"),
    ("starts_with", ""), ("ends_with", ""), ("wildcard", "*"), ("eq_ignore_case", ""),
    ("between", [0, 1]), ("before", "P1D"), ("after", "-P1D"), ("exists", _NO_VALUE),
    ("not_empty", _NO_VALUE), ("eq", "{{ vars.nothing }}"), ("ne", "{{ vars.threshold }}"),
    ("in", "{{ vars.allowed }}"), ("not_in", "{{ vars.allowed }}"),
]


@pytest.mark.parametrize("op,value", MISSING_CASES)
def test_a_missing_field_is_false_for_every_op_but_two(op, value):
    for field in ("contact.nothing", "event.properties.nothing.deeper", "steps.s9.output",
                  "vars.allowed.9", "event.name.x"):
        assert check(field, op, value) is False


def test_only_not_exists_and_empty_are_true_of_a_missing_field():
    for op in OPS:
        if op in ("not_exists", "empty"):
            assert check("contact.nothing", op) is True
    assert {op for op, _ in MISSING_CASES} | {"not_exists", "empty"} == set(OPS)


def test_missing_roots_are_missing_fields():
    empty = Scope({})
    assert check("event.amount", "gt", 1, scope=empty) is False
    assert check("event.amount", "not_exists", scope=empty) is True
    assert check("contact.email", "ne", "x", scope=empty) is False


# --- aliases ---------------------------------------------------------------------------------

def test_field_aliases():
    assert check("event.amount", "eq", 42) is True  # event.properties.amount
    assert check("event.name", "eq", "order.completed") is True
    assert check("user.plan", "eq", "pro") is True  # contact.traits.plan
    assert check("profile.email", "eq", "Ann@Example.com") is True
    assert check("trait.age", "gte", 18) is True


# --- templates in values ---------------------------------------------------------------------

@pytest.mark.parametrize("field,op,value,expected", [
    ("event.properties.amount", "gt", "{{ vars.threshold }}", True),
    ("event.properties.amount", "lt", "{{ vars.threshold }}", False),
    ("contact.traits.plan", "in", "{{ vars.allowed }}", True),
    ("contact.traits.plan", "not_in", "{{ vars.allowed }}", False),
    ("event.properties.amount", "between", ["{{ vars.low }}", "{{ vars.high }}"], True),
    ("event.properties.amount", "between", ["{{ vars.threshold }}", 41], False),
    ("contact.traits.signed_up", "after", "{{ vars.since }}", True),
    ("event.timestamp", "before", "{{ vars.deadline }}", True),
    ("event.timestamp", "after", "{{ vars.deadline }}", False),
    ("event.timestamp", "before", "{{ vars.when_ms }}", True),  # a template may give epoch ms
    ("event.properties.sku", "wildcard", "{{ vars.pattern }}", True),
    ("event.name", "starts_with", "{{ vars.word }}.", True),
    ("event.name", "eq", "{{ vars.word }}.completed", True),
    ("event.name", "eq_ignore_case", "{{ vars.word | upper }}.COMPLETED", True),
    ("event.name", "eq", "{{ event.name }}", True),
    ("contact.email", "eq", "{{ user.email }}", True),
    # A rendered value that does not fit the op is false, never an error.
    ("contact.traits.plan", "in", "{{ vars.word }}", False),
    ("contact.traits.plan", "not_in", "{{ vars.word }}", False),
    ("event.properties.amount", "gt", "{{ vars.allowed }}", False),
    ("event.timestamp", "before", "{{ vars.word }}", False),
    ("event.properties.sku", "wildcard", "{{ vars.threshold }}", False),
    ("event.properties.amount", "between", "{{ vars.allowed }}", False),
    # A missing template value renders as "".
    ("contact.traits.nick", "eq", "{{ vars.nothing }}", True),
    ("contact.traits.plan", "eq", "{{ vars.nothing }}", False),
])
def test_templates_in_values(field, op, value, expected):
    assert check(field, op, value) is expected


def test_template_values_see_the_scope_at_evaluation_time():
    cond = compile_condition(leaf("event.properties.amount", "gte", "{{ vars.threshold }}"))
    assert cond.evaluate(SCOPE, NOW) is True
    assert cond.evaluate(SCOPE.with_roots(vars={"threshold": 100}), NOW) is False


def test_condition_lists_the_paths_it_reads():
    cond = compile_condition({"all": [leaf("event.amount", "gt", "{{ vars.threshold }}"),
                                      {"not": {"field": "steps.s1.status", "op": "exists"}}]})
    assert [p.text for p in cond.paths] == ["event.amount", "vars.threshold", "steps.s1.status"]


# --- groups ----------------------------------------------------------------------------------

T = leaf("event.properties.amount", "eq", 42)
F = leaf("event.properties.amount", "eq", 0)


@pytest.mark.parametrize("cond,expected", [
    ({"all": [T, T]}, True),
    ({"all": [T, F]}, False),
    ({"all": [T]}, True),
    ({"all": [F]}, False),
    ({"all": []}, True),
    ({"any": [F, T]}, True),
    ({"any": [F, F]}, False),
    ({"any": [T]}, True),
    ({"any": []}, False),
    ({"not": T}, False),
    ({"not": F}, True),
    ({"not": {"not": T}}, True),
    ({"all": [{"any": [F, {"not": F}]}, {"not": {"all": [T, F]}}]}, True),
    ({"any": [{"all": []}, F]}, True),
])
def test_groups(cond, expected):
    assert compile_condition(cond).evaluate(SCOPE, NOW) is expected


def test_groups_short_circuit():
    # The second part would be false; what matters is that all/any stop at the first answer.
    calls = []

    class Spy(dict):
        def get(self, key, default=None):
            calls.append(key)
            return super().get(key, default)

    scope = Scope({"vars": Spy(a=1, b=2)})
    compile_condition({"any": [leaf("vars.a", "eq", 1), leaf("vars.b", "eq", 2)]}).evaluate(scope, NOW)
    assert calls == ["a"]
    calls.clear()
    compile_condition({"all": [leaf("vars.a", "eq", 0), leaf("vars.b", "eq", 2)]}).evaluate(scope, NOW)
    assert calls == ["a"]


def test_nesting_limit():
    cond = T
    for _ in range(MAX_CONDITION_DEPTH - 1):
        cond = {"not": cond}
    assert compile_condition(cond).evaluate(SCOPE, NOW) is ((MAX_CONDITION_DEPTH - 1) % 2 == 0)
    too_deep = {"not": cond}
    with pytest.raises(ConditionError) as info:
        compile_condition(too_deep, "f")
    assert info.value.problems == [
        Problem("f" + ".not" * MAX_CONDITION_DEPTH, "must not nest deeper than 32 levels")]


def test_hostile_nesting_stops_at_the_limit():
    cond: dict = T
    for _ in range(5000):  # far beyond the Python stack, if compiling recursed all the way
        cond = {"all": [cond]}
    problems = validate_condition(cond)
    assert len(problems) == 1 and "deeper than 32" in problems[0].message


def test_parts_limit():
    ok = {"any": [T] * (MAX_CONDITION_PARTS - 1)}  # plus the group itself
    assert compile_condition(ok).evaluate(SCOPE, NOW) is True
    too_many = {"any": [T] * MAX_CONDITION_PARTS}
    problems = validate_condition(too_many, "f")
    assert problems == [Problem(f"f.any[{MAX_CONDITION_PARTS - 1}]",
                                f"a condition may have at most {MAX_CONDITION_PARTS} parts")]


# --- errors and their paths ------------------------------------------------------------------

@pytest.mark.parametrize("cond,path,needle", [
    ("amount > 4", "", "must be an object"),
    (None, "", "must be an object"),
    ([T], "", "must be an object"),
    ({}, "", "exactly one of field, all, any or not"),
    ({"op": "eq", "value": 1}, ".field", "is required"),
    ({"all": [], "any": []}, "", "exactly one of"),
    ({"field": "event.name", "all": []}, "", "exactly one of"),
    ({"field": "event.name", "op": "exists", "extra": 1}, ".extra", "unknown field"),
    ({"all": [], "op": "eq"}, ".op", "unknown field"),
    ({"not": T, "value": 1}, ".value", "unknown field"),
    ({"all": T}, ".all", "must be an array of conditions"),
    ({"any": "x"}, ".any", "must be an array of conditions"),
    ({"not": [T]}, ".not", "must be an object"),
    ({"field": "event.name"}, ".op", "is required"),
    ({"field": "event.name", "op": "equals", "value": 1}, ".op", "must be one of: eq, ne"),
    ({"field": "event.name", "op": ["eq"], "value": 1}, ".op", "must be one of"),
    ({"field": "event.name", "op": None, "value": 1}, ".op", "must be one of"),
    ({"field": "event.name", "op": "eq"}, ".value", "is required for eq"),
    ({"field": "event.name", "op": "between"}, ".value", "is required for between"),
    ({"field": 5, "op": "exists"}, ".field", "must be a string"),
    ({"field": "", "op": "exists"}, ".field", "must not be empty"),
    ({"field": "amount", "op": "exists"}, ".field", "unknown root 'amount'"),
    ({"field": "event..x", "op": "exists"}, ".field", "bad path"),
    ({"field": "event.{{ x }}", "op": "exists"}, ".field", "bad path"),
    (leaf("event.amount", "between", [1]), ".value", "two-item array"),
    (leaf("event.amount", "between", [1, 2, 3]), ".value", "two-item array"),
    (leaf("event.amount", "between", 5), ".value", "two-item array"),
    (leaf("event.amount", "between", "1..5"), ".value", "two-item array"),
    (leaf("event.amount", "between", [1, None]), ".value", "number or a string"),
    (leaf("event.amount", "between", ["{{ vars.a }}"]), ".value", "two-item array"),
    (leaf("event.amount", "in", "pro"), ".value", "must be an array"),
    (leaf("event.amount", "not_in", {"a": 1}), ".value", "must be an array"),
    (leaf("event.amount", "in", {"a": "{{ vars.a }}"}), ".value", "must be an array"),
    (leaf("event.amount", "gt", [1]), ".value", "number or a string"),
    (leaf("event.amount", "lte", True), ".value", "number or a string"),
    (leaf("event.amount", "gte", None), ".value", "number or a string"),
    (leaf("event.amount", "lt", ["{{ vars.a }}"]), ".value", "number or a string"),
    (leaf("event.name", "starts_with", 5), ".value", "must be a string"),
    (leaf("event.name", "ends_with", None), ".value", "must be a string"),
    (leaf("event.name", "wildcard", ["a*"]), ".value", "must be a string"),
    (leaf("event.name", "wildcard", ["{{ vars.a }}"]), ".value", "must be a string"),
    (leaf("event.name", "eq_ignore_case", 1), ".value", "must be a string"),
    (leaf("event.timestamp", "before", "yesterday"), ".value", "must be a time such as"),
    (leaf("event.timestamp", "before", "2026-11-23"), ".value", "must be a time such as"),
    (leaf("event.timestamp", "before", "2026-11-23T10:00:00"), ".value", "must be a time"),
    (leaf("event.timestamp", "after", NOW), ".value", "must be a time such as"),
    (leaf("event.timestamp", "after", ["{{ vars.a }}"]), ".value", "must be a string"),
    (leaf("event.timestamp", "after", "-P"), ".value", "ISO 8601 duration"),
    (leaf("event.timestamp", "after", "--P1D"), ".value", "ISO 8601 duration"),
    (leaf("event.timestamp", "after", "P1.5DT1H"), ".value", "last component"),
    (leaf("event.name", "eq", "{{ event.name"), ".value", "unclosed {{"),
    (leaf("event.name", "eq", "{{ nobody }}"), ".value", "unknown root"),
    (leaf("event.name", "eq", "{{ event.name | shout }}"), ".value", "unknown filter"),
    (leaf("event.amount", "between", [1, "{{ }}"]), ".value[1]", "empty {{ }}"),
    (leaf("event.amount", "in", ["a", {"b": "{{"}]), ".value[1].b", "unclosed"),
])
def test_errors(cond, path, needle):
    with pytest.raises(ConditionError) as info:
        compile_condition(cond, "trigger.filter")
    assert len(info.value.problems) == 1, info.value.problems
    problem = info.value.problems[0]
    assert problem.path == "trigger.filter" + path
    assert needle in problem.message
    assert isinstance(info.value, ValidationError)
    assert validate_condition(cond, "trigger.filter") == info.value.problems


def test_all_problems_are_collected_with_their_paths():
    cond = {"all": [
        T,
        {"field": "event.amount", "op": "nope"},
        {"any": [leaf("event.amount", "between", [1]), {"not": "x"}, {"field": "z.y", "op": "exists"}]},
        {"field": "event.amount", "op": "gt"},
        {"field": "event.amount", "op": "eq", "value": 1, "label": "x"},
    ], "name": "x"}
    problems = validate_condition(cond, "steps[2].config.if")
    assert [(p.path) for p in problems] == [
        "steps[2].config.if.name",
        "steps[2].config.if.all[1].op",
        "steps[2].config.if.all[2].any[0].value",
        "steps[2].config.if.all[2].any[1].not",
        "steps[2].config.if.all[2].any[2].field",
        "steps[2].config.if.all[3].value",
        "steps[2].config.if.all[4].label",
    ]


def test_paths_without_a_prefix():
    assert validate_condition({"all": [{"field": "event.x", "op": "nope"}]}) == [
        Problem("all[0].op", f"must be one of: {', '.join(OPS)}")]
    assert validate_condition("x")[0].path == ""


def test_valid_conditions_have_no_problems():
    assert validate_condition({"all": [T, {"not": F}, {"field": "contact.email", "op": "exists"}]}) == []


def test_error_message_names_the_first_problem():
    with pytest.raises(ConditionError) as info:
        compile_condition({"all": [{"field": "event.x", "op": "nope"}, 5]}, "filter")
    assert info.value.message.startswith("invalid request at filter.all[0].op: must be one of")
    assert "(and 1 more)" in info.value.message


# --- evaluation never raises -----------------------------------------------------------------

ODD_VALUES = [None, True, False, 0, -1, 1.5, 10 ** 30, "", "x", "42", "1e999", "2026-11-23T18:00:00Z",
              [], [1, [2]], {}, {"a": {"b": None}}, "é" * 100, float("inf")]
CONSTANTS = {
    "eq": [1, "x", None, [1], {"a": 1}], "ne": [1, "x", None], "gt": [1, "x"], "gte": [0, "0"],
    "lt": [1.5, "z"], "lte": [-1, ""], "in": [[1, "x", None, [1], {}]],
    "not_in": [[1, "x", None]], "contains": ["x", 1, None, [1]],
    "not_contains": ["x", 1, None], "starts_with": ["", "x"], "ends_with": ["x"],
    "wildcard": ["*x*", "*"], "eq_ignore_case": ["X"], "between": [[0, 10], ["a", "z"]],
    "before": ["-P1D", "2026-01-01T00:00:00Z"], "after": ["P1D", "+PT1S"],
    "exists": [None], "not_exists": [None], "empty": [None], "not_empty": [None],
}


def test_no_field_value_makes_any_op_raise():
    assert set(CONSTANTS) == set(OPS)
    for op, values in CONSTANTS.items():
        for value in values:
            constant = compile_condition(leaf("vars.v", op, value))
            templated = compile_condition(leaf("vars.v", op, "{{ vars.w }}"))
            for field in ODD_VALUES:
                for rendered in ODD_VALUES:
                    scope = Scope({"vars": {"v": field, "w": rendered}})
                    assert constant.evaluate(scope, NOW) in (True, False)
                    assert templated.evaluate(scope, NOW) in (True, False)


# --- name patterns ---------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,name,expected", [
    ("auth.*", "auth.user_created", True),
    ("auth.*", "auth.", True),
    ("auth.*", "auth", False),
    ("auth.*", "authx.user_created", False),
    ("auth.*", "oauth.user_created", False),
    ("*", "anything.at.all", True),
    ("*", "", True),
    ("**", "x", True),
    ("*.completed", "order.completed", True),
    ("*.completed", "order.completed.not", False),
    ("order.completed", "order.completed", True),
    ("order.completed", "orderXcompleted", False),  # "." is literal
    ("order.completed", "order.completed2", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "a-b-b-c", True),
    ("a*b*c", "acb", False),
    ("a*a", "a", False),  # the prefix and suffix cannot share a character
    ("a*a", "aa", True),
    ("*a*a*", "a", False),
    ("*a*a*", "baab", True),
    ("*aa*aa*", "aaa", False),
    ("*aba*aba*", "ababaxx", False),  # the parts may not overlap
    ("*aa*aa*", "aaaa", True),
    ("x+(y)?[z]^$|\\", "x+(y)?[z]^$|\\", True),  # regex specials are literal
    ("x+(y)?[z]^$|\\", "xx(y)[z]", False),
    ("user.*.created", "user.a.b.created", True),
    ("user.*.created", "user.created", False),
    ("Auth.*", "auth.x", False),  # case-sensitive
    ("", "", True),
    ("", "x", False),
])
def test_name_patterns(pattern, name, expected):
    assert compile_name_pattern(pattern)(name) is expected


def test_name_patterns_do_not_backtrack():
    match = compile_name_pattern("*a" * 30 + "*b")
    assert match("a" * 5000) is False  # a backtracking regex would not finish


def test_is_wildcard():
    assert is_wildcard("auth.*") and is_wildcard("*")
    assert not is_wildcard("auth.user_created") and not is_wildcard("")
