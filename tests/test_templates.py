"""Templates: paths, aliases, filters, type keeping, whole config values and every error kind."""

from __future__ import annotations

import pytest

from flowd.errors import Problem, ValidationError
from flowd.templates import (
    MAX_EXPRESSIONS,
    MAX_FILTERS,
    MAX_PATH_SEGMENTS,
    MISSING,
    PathError,
    Scope,
    TemplateError,
    compile_path,
    compile_template,
    compile_value,
    has_templates,
    to_text,
)

CONTACT = {
    "id": "u_1", "email": "ann@example.com", "phone": None,
    "traits": {"first_name": "Ann", "plan": "pro", "phone": "+15550100", "nick": "",
               "Plan Name": "Gold", "score": 7},
    "tags": ["vip", "beta"],
}
EVENT = {
    "id": "evt_1", "name": "order.completed", "contact_id": "u_1",
    "properties": {"amount": 42.5, "count": 3, "items": [{"sku": "a"}, {"sku": "b"}],
                   "name": "shadowed", "flag": True, "none": None, "empty": [], "obj": {"k": "v"}},
}
SCOPE = Scope({
    "contact": CONTACT, "event": EVENT,
    "vars": {"greeting": "Hello", "n": 0, "zero": 0, "falsy": False, "list": [1, "two", None]},
    "steps": {"s1": {"status": 200, "body": {"ok": True}}, "send-email": {"id": "msg_1"}},
    "run": {"id": "run_1", "workflow_id": "wf_1"},
    "now": "2026-11-23T18:00:00.000Z",
    "loop": {"item": {"name": "x"}, "index": 2},
})


def render(text, scope=SCOPE):
    return compile_template(text).render(scope)


# --- paths -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,expected", [
    ("contact.email", (True, "ann@example.com")),
    ("contact.traits.plan", (True, "pro")),
    ("contact.tags.1", (True, "beta")),
    ("contact.tags[1]", (True, "beta")),
    ("contact.tags[2]", (False, None)),
    ("contact.phone", (True, None)),
    ("contact.phone.x", (False, None)),
    ("contact.nothing", (False, None)),
    ("contact.email.x", (False, None)),
    ('contact.traits["Plan Name"]', (True, "Gold")),
    ("event.name", (True, "order.completed")),
    ("event.properties.items.1.sku", (True, "b")),
    ("event.properties.items[0].sku", (True, "a")),
    ("event.items[0].sku", (True, "a")),
    ("event.amount", (True, 42.5)),
    ("event.properties.none", (True, None)),
    ("event.nothing", (False, None)),
    ("steps.s1.body.ok", (True, True)),
    ("steps.send-email.id", (True, "msg_1")),
    ("steps.s2", (False, None)),
    ("run.id", (True, "run_1")),
    ("now", (True, "2026-11-23T18:00:00.000Z")),
    ("loop.index", (True, 2)),
    ("loop.item.name", (True, "x")),
    ("vars", (True, SCOPE.roots["vars"])),
])
def test_lookup(path, expected):
    assert SCOPE.lookup(path) == expected
    assert SCOPE.lookup(compile_path(path)) == expected


def test_event_alias_prefers_the_event_own_keys():
    # `event.name` is the event's name, not properties.name; `event.amount` falls through.
    assert SCOPE.lookup("event.name") == (True, "order.completed")
    assert SCOPE.lookup("event.properties.name") == (True, "shadowed")
    scope = Scope({"event": {"name": "x"}})  # no properties at all
    assert scope.lookup("event.amount") == (False, None)


@pytest.mark.parametrize("root", ["user", "profile", "trait"])
def test_contact_aliases(root):
    assert SCOPE.lookup(f"{root}.email") == (True, "ann@example.com")
    assert SCOPE.lookup(f"{root}.first_name") == (True, "Ann")  # from traits
    assert SCOPE.lookup(f"{root}.phone") == (True, "+15550100")  # contact.phone is null
    assert SCOPE.lookup(f"{root}.tags.0") == (True, "vip")
    assert SCOPE.lookup(f"{root}.missing") == (False, None)
    assert SCOPE.lookup(root) == (True, CONTACT)


def test_lookup_with_missing_roots():
    empty = Scope({})
    for path in ("contact.email", "event.amount", "user.email", "now", "vars.x"):
        assert empty.lookup(path) == (False, None)
    assert Scope().lookup("event") == (False, None)
    assert Scope({"contact": None}).lookup("user.email") == (False, None)


def test_lookup_never_indexes_dicts_by_position_or_strings_by_index():
    scope = Scope({"vars": {"d": {"0": "zero"}, "s": "text", "l": ["a"]}})
    assert scope.lookup("vars.d.0") == (True, "zero")
    assert scope.lookup("vars.d[0]") == (True, "zero")
    assert scope.lookup("vars.s.0") == (False, None)
    assert scope.lookup("vars.l.x") == (False, None)


def test_with_roots_replaces_without_touching_the_original():
    child = SCOPE.with_roots(loop={"item": 5, "index": 0})
    assert child.lookup("loop.item") == (True, 5)
    assert child.lookup("contact.email") == (True, "ann@example.com")
    assert SCOPE.lookup("loop.index") == (True, 2)


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("nobody.x", "unknown root 'nobody'"),
    ("Contact.email", "unknown root"),
    ("contact..email", "bad path"),
    ("contact.", "bad path"),
    (".contact", "bad path"),
    ("contact.email x", "bad path"),
    ("contact[x]", "bad path"),
    ("contact.tags[-1]", "bad path"),
    ("contact.a.b(c)", "bad path"),
    ("x" * 300, "at most 256"),
    ("contact" + ".a" * (MAX_PATH_SEGMENTS + 1), f"at most {MAX_PATH_SEGMENTS} parts"),
])
def test_bad_paths(text, needle):
    with pytest.raises(PathError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        compile_path(text)


def test_compile_path_rejects_non_strings():
    with pytest.raises(PathError):
        compile_path(["contact"])  # type: ignore[arg-type]


def test_path_has_the_limit_number_of_parts():
    assert len(compile_path("contact" + ".a" * MAX_PATH_SEGMENTS).segments) == MAX_PATH_SEGMENTS


def test_scope_lookup_of_bad_path_raises():
    with pytest.raises(PathError):
        SCOPE.lookup("nobody")


# --- rendering -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("Hi {{ contact.traits.first_name }}!", "Hi Ann!"),
    ("Hi {{contact.traits.first_name}}!", "Hi Ann!"),
    ("{{ vars.greeting }}, {{ user.first_name }}", "Hello, Ann"),
    ("amount={{ event.amount }}", "amount=42.5"),
    ("count={{ event.count }}", "count=3"),
    ("flag={{ event.flag }}", "flag=true"),
    ("falsy={{ vars.falsy }}", "falsy=false"),
    ("zero={{ vars.zero }}", "zero=0"),
    ("none=[{{ event.properties.none }}]", "none=[]"),
    ("missing=[{{ event.nope }}]", "missing=[]"),
    ("items={{ event.items }}", 'items=[{"sku":"a"},{"sku":"b"}]'),
    ("obj={{ event.obj }}", 'obj={"k":"v"}'),
    ("{{ run.id }}/{{ run.workflow_id }}", "run_1/wf_1"),
    ("{{ loop.index }}:{{ loop.item.name }}", "2:x"),
    ("now {{ now }}", "now 2026-11-23T18:00:00.000Z"),
    ("no templates here", "no templates here"),
    ("closing }} alone is text", "closing }} alone is text"),
    ("", ""),
    ("{{ contact.tags.0 }}{{ contact.tags.1 }}", "vipbeta"),
])
def test_render_text(text, expected):
    assert render(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("{{ event.items }}", [{"sku": "a"}, {"sku": "b"}]),
    ("{{ event.amount }}", 42.5),
    ("{{ event.count }}", 3),
    ("{{ event.flag }}", True),
    ("{{ vars.falsy }}", False),
    ("{{ event.obj }}", {"k": "v"}),
    ("{{ event.properties.none }}", None),
    ("{{ event.nope }}", ""),
    ("{{ contact.email }}", "ann@example.com"),
    ("{{ vars.list }}", [1, "two", None]),
])
def test_single_expression_keeps_the_json_type(text, expected):
    result = render(text)
    assert result == expected and type(result) is type(expected)


def test_surrounding_text_or_whitespace_makes_it_text():
    assert render(" {{ event.count }}") == " 3"
    assert render("{{ event.count }} ") == "3 "
    assert render("{{ event.count }}{{ event.count }}") == "33"


def test_render_never_copies_or_mutates_scope_values():
    assert render("{{ event.items }}") is EVENT["properties"]["items"]


# --- filters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ('{{ contact.traits.first_name | default: "there" }}', "Ann"),
    ('{{ contact.traits.last_name | default: "there" }}', "there"),
    ('{{ contact.traits.nick | default: "there" }}', "there"),  # "" counts as empty
    ('{{ event.properties.none | default: "n/a" }}', "n/a"),  # null too
    ("{{ contact.traits.last_name | default: 'single' }}", "single"),
    ('{{ vars.zero | default: 5 }}', 0),  # 0 and false are values, not empty
    ('{{ vars.falsy | default: true }}', False),
    ('{{ vars.nope | default: 5 }}', 5),
    ('{{ vars.nope | default: -1.5 }}', -1.5),
    ('{{ vars.nope | default: true }}', True),
    ('{{ vars.nope | default: false }}', False),
    ('{{ vars.nope | default: null }}', None),
    ('{{ vars.nope | default: "" }}', ""),
    ('{{ vars.nope | default: "a \\"quoted\\" }} | word" }}', 'a "quoted" }} | word'),
    ('{{ vars.nope|default:"tight" }}', "tight"),
    ("{{ contact.traits.first_name | upper }}", "ANN"),
    ("{{ contact.traits.first_name | lower }}", "ann"),
    ("{{ event.flag | upper }}", "TRUE"),
    ("{{ event.items | json }}", '[{"sku":"a"},{"sku":"b"}]'),
    ("{{ contact.email | json }}", '"ann@example.com"'),
    ("{{ event.count | json }}", "3"),
    ("{{ vars.nope | json }}", "null"),
    ("{{ event.properties.none | json }}", "null"),
    ('{{ vars.nope | default: "x" | upper }}', "X"),
    ('{{ vars.nope | upper | default: "x" }}', "x"),  # upper keeps missing missing
    ('{{ vars.nope | lower }}', ""),
    ('{{ contact.traits.first_name | upper | lower }}', "ann"),
    ('Dear {{ contact.traits.last_name | default: "friend" | upper }}.', "Dear FRIEND."),
    ('{"a": {{ vars.nope | json }}, "b": {{ vars.list | json }}}', '{"a": null, "b": [1,"two",null]}'),
])
def test_filters(text, expected):
    result = render(text)
    assert result == expected and type(result) is type(expected)


def test_json_filter_keeps_unicode():
    scope = Scope({"vars": {"name": "Zoë ✓"}})
    assert compile_template("{{ vars.name | json }}").render(scope) == '"Zoë ✓"'
    assert compile_template("{{ vars }}!").render(scope) == '{"name":"Zoë ✓"}!'


def test_templates_never_execute_code():
    scope = Scope({"vars": {"x": "{{ contact.email }}", "y": "__import__('os')"}})
    assert compile_template("{{ vars.x }}").render(scope) == "{{ contact.email }}"
    assert compile_template("a {{ vars.y }}").render(scope) == "a __import__('os')"
    for text in ("{{ vars.x() }}", "{{ vars.__class__ }}x", "{{ 1 + 1 }}", "{{ vars.x | eval }}"):
        try:
            result = compile_template(text).render(scope)
        except TemplateError:
            continue
        assert result in ("", "x")  # `__class__` is just a key that does not exist


# --- template errors -------------------------------------------------------------------------

@pytest.mark.parametrize("text,needle", [
    ("Hi {{ contact.email", "unclosed {{ at character 4"),
    ("Hi {{ contact.email }", "unexpected '}' in {{ … }} at character 4"),
    ("{{", "unclosed {{ at character 1"),
    ("ok {{ contact.email }} then {{", "unclosed {{ at character 29"),
    ("{{ }}", "empty {{ }} at character 1"),
    ("{{}}", "empty {{ }}"),
    ('{{ "text" }}', "expected a path"),
    ("{{ | upper }}", "expected a path"),
    ("{{ nobody.x }}", "unknown root 'nobody'"),
    ("{{ contact..email }}", "bad path"),
    ("{{ contact.email | shout }}", "unknown filter 'shout'"),
    ("{{ contact.email | }}", "expected a filter name"),
    ("{{ contact.email | default }}", "default needs a value"),
    ("{{ contact.email | default: }}", "default needs a quoted string"),
    ("{{ contact.email | default: there }}", "default needs a quoted string"),
    ("{{ contact.email | default: 01 }}", "default needs a quoted string"),
    ('{{ contact.email | default: "bad \\q escape" }}', "bad string"),
    ('{{ contact.email | default: "unterminated }}', "unexpected"),
    ("{{ contact.email contact.phone }}", "expected | or }}"),
    ("{{ contact.email | upper: 1 }}", "expected | or }}"),
    ("{{ contact.email : x }}", "expected | or }}"),
    ("{{ contact.email | upper" + " | upper" * MAX_FILTERS + " }}", f"at most {MAX_FILTERS} filters"),
    ("{{ run.id }}" * (MAX_EXPRESSIONS + 1), f"at most {MAX_EXPRESSIONS}"),
])
def test_template_errors(text, needle):
    with pytest.raises(TemplateError) as info:
        compile_template(text)
    assert needle in str(info.value)
    assert info.value.problems == [Problem("", info.value.message)]
    assert isinstance(info.value, ValidationError)


def test_template_limits_allow_the_maximum():
    compile_template("{{ contact.email | upper" + " | upper" * (MAX_FILTERS - 1) + " }}")
    assert render("{{ run.id }}" * MAX_EXPRESSIONS) == "run_1" * MAX_EXPRESSIONS


def test_compile_template_rejects_non_strings():
    with pytest.raises(TemplateError):
        compile_template(5)  # type: ignore[arg-type]


def test_template_exposes_its_paths():
    template = compile_template("{{ steps.s1.status }} {{ contact.email | upper }} x")
    assert [p.text for p in template.paths] == ["steps.s1.status", "contact.email"]
    assert template.paths[0].root == "steps"


# --- whole values ----------------------------------------------------------------------------

def test_compile_value_renders_structures():
    config = {
        "url": "https://example.com/u/{{ contact.id }}",
        "method": "POST",
        "headers": {"X-Plan": "{{ contact.traits.plan | upper }}", "X-Static": "1"},
        "body": {"items": "{{ event.items }}", "n": 3, "flag": None, "list": ["a", "{{ run.id }}"]},
        "static": {"deep": ["x", {"y": 1}]},
    }
    compiled = compile_value(config, "config")
    assert compiled.has_templates
    rendered = compiled.render(SCOPE)
    assert rendered == {
        "url": "https://example.com/u/u_1",
        "method": "POST",
        "headers": {"X-Plan": "PRO", "X-Static": "1"},
        "body": {"items": [{"sku": "a"}, {"sku": "b"}], "n": 3, "flag": None,
                 "list": ["a", "run_1"]},
        "static": {"deep": ["x", {"y": 1}]},
    }
    assert list(rendered) == list(config)  # key order kept (webhook bodies are signed)
    assert rendered["static"] is config["static"]  # template-free parts are not copied
    assert config["url"].startswith("https://example.com/u/{{")  # the definition is untouched
    assert sorted(p.text for p in compiled.paths) == [
        "contact.id", "contact.traits.plan", "event.items", "run.id"]


@pytest.mark.parametrize("value", ["plain", 5, None, True, [], {}, {"a": ["b", {"c": 1}]}])
def test_compile_value_without_templates_returns_the_value_itself(value):
    compiled = compile_value(value, "config")
    assert not compiled.has_templates
    assert compiled.render(SCOPE) is value
    assert compiled.paths == ()


def test_compile_value_of_a_bare_template_string():
    assert compile_value("{{ event.count }}").render(SCOPE) == 3


def test_compile_value_collects_every_problem_with_its_path():
    config = {
        "body": {"text": "Hi {{ contact.email", "ok": "{{ contact.email }}"},
        "items": ["a", "b", "{{ nobody.x }}"],
        "headers": {"X": "{{ contact.email | shout }}"},
        "nested": [[{"deep": "{{ }}"}]],
    }
    with pytest.raises(TemplateError) as info:
        compile_value(config, "config")
    paths = [p.path for p in info.value.problems]
    assert paths == ["config.body.text", "config.items[2]", "config.headers.X",
                     "config.nested[0][0].deep"]
    assert "unclosed" in info.value.problems[0].message
    assert "unknown root" in info.value.problems[1].message
    assert "unknown filter" in info.value.problems[2].message
    assert "empty" in info.value.problems[3].message
    assert "config.body.text" in info.value.message and "3 more" in info.value.message


def test_compile_value_paths_without_a_prefix():
    with pytest.raises(TemplateError) as info:
        compile_value({"a": ["{{"]})
    assert info.value.problems[0].path == "a[0]"


def nested(containers, leaf):
    """`leaf` inside that many nested lists."""
    value = leaf
    for _ in range(containers):
        value = [value]
    return value


def test_compile_value_nesting_limit():
    with pytest.raises(TemplateError) as info:
        compile_value({"a": nested(32, "{{ run.id }}")}, "config")  # 33 containers
    assert info.value.problems == [Problem("config.a" + "[0]" * 31,
                                           "must not nest deeper than 32 levels")]
    fine = {"a": nested(31, "{{ run.id }}")}  # 32 containers
    assert compile_value(fine, "config").render(SCOPE) == {"a": nested(31, "run_1")}


def test_has_templates():
    assert has_templates("{{ x }}")
    assert has_templates({"a": [1, {"b": "x {{ y"}]})
    assert not has_templates({"a": [1, {"b": "x { y }"}]})
    assert not has_templates("plain")
    assert not has_templates(None)
    assert not has_templates(nested(40, "{{ too deep to matter }}"))
    assert has_templates(nested(31, "{{ run.id }}"))


def test_to_text():
    assert to_text("a") == "a" and to_text(None) == "" and to_text(MISSING) == ""
    assert to_text(True) == "true" and to_text(1) == "1" and to_text(1.5) == "1.5"
    assert to_text({"a": [1, None]}) == '{"a":[1,null]}'


def test_missing_is_falsy_and_distinct_from_null():
    assert not MISSING and MISSING is not None and repr(MISSING) == "MISSING"
