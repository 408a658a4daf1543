"""Workflow definitions: every kind of issue with its code and path, and the 422 rules."""

from __future__ import annotations

import pytest

from flowd.definitions import analyze, audience_issues, normalize
from tests.conftest import Api


def issues_of(definition: dict) -> dict[tuple[str, str], str]:
    _, issues = analyze(normalize(definition))
    return {(i.code, i.path): i.severity for i in issues}


def steps(*items: dict) -> dict:
    return {"trigger": {"type": "event", "event": "go"}, "steps": list(items)}


def scheduled(cron: str, timezone: str | None = None, **more: object) -> dict:
    trigger = {"type": "schedule", "cron": cron, **more}
    if timezone is not None:
        trigger["timezone"] = timezone
    return {"trigger": trigger, "steps": [{"id": "a", "type": "exit"}]}


@pytest.mark.parametrize("definition,code,path,severity", [
    (steps({"id": "a", "type": "wait", "config": {"duration": "PT1H"}, "next": "nowhere"}),
     "unknown_next_step", "steps[0].next", "error"),
    (steps({"id": "a", "type": "condition", "config": {"if": {"field": "contact.x", "op": "exists"}},
            "next": {"yes": "b", "no": "ghost"}}, {"id": "b", "type": "exit"}),
     "unknown_next_step", "steps[0].next.no", "error"),
    (steps({"id": "a", "type": "exit"}, {"id": "a", "type": "exit"}),
     "duplicate_step_id", "steps[1].id", "error"),
    (steps({"id": "a", "type": "exit", "next": None}, {"id": "b", "type": "exit"}),
     "unreachable_step", "steps[1]", "warning"),
    (steps({"id": "a", "type": "set", "config": {"vars": {}}},
           {"id": "b", "type": "set", "config": {"vars": {}}, "next": "a"}),
     "cycle_without_wait", "steps[0].next", "error"),
    (steps({"id": "a", "type": "wait", "config": {}}), "missing_config", "steps[0].config", "error"),
    (steps({"id": "a", "type": "webhook", "config": {}}), "missing_config", "steps[0].config.url", "error"),
    (steps({"id": "a", "type": "wait", "config": {"duration": 5}}),
     "invalid_config", "steps[0].config.duration", "error"),
    (steps({"id": "a", "type": "wait", "config": {"duration": "an hour"}}),
     "invalid_duration", "steps[0].config.duration", "error"),
    (steps({"id": "a", "type": "wait_for_event", "config": {"event": "x", "timeout": "P3X"}}),
     "invalid_duration", "steps[0].config.timeout", "error"),
    (steps({"id": "a", "type": "condition", "config": {"if": {"field": "contact.x", "op": "bigger"}}}),
     "invalid_condition", "steps[0].config.if.op", "error"),
    (steps({"id": "a", "type": "set", "config": {"vars": {"x": "{{ contact.email "}}}),
     "invalid_template", "steps[0].config.vars.x", "error"),
    (steps({"id": "a", "type": "teleport"}), "unknown_step_type", "steps[0].type", "error"),
    ({"trigger": {"type": "event", "event": ""}, "steps": [{"id": "a", "type": "exit"}]},
     "empty_trigger_pattern", "trigger.event", "error"),
    ({"trigger": {"type": "event"}, "steps": [{"id": "a", "type": "exit"}]},
     "empty_trigger_pattern", "trigger.event", "error"),
    ({"trigger": {"type": "event", "event": "x", "filter": {"any": "nope"}},
      "steps": [{"id": "a", "type": "exit"}]}, "invalid_condition", "trigger.filter.any", "error"),
    (steps({"id": "a", "type": "wait", "config": {"duration": "PT1S"}, "retry": {"backoff": "soon"}}),
     "invalid_duration", "steps[0].retry.backoff", "error"),
    (steps({"id": "a", "type": "condition", "config": {"if": {"field": "contact.x", "op": "exists"}},
            "next": {"maybe": "a"}}), "unknown_branch", "steps[0].next.maybe", "warning"),
    ({"trigger": {"type": "event", "event": "x"}, "steps": []}, "no_steps", "steps", "error"),
    (scheduled("0 25 * * *"), "invalid_cron", "trigger.cron", "error"),
    (scheduled(""), "invalid_cron", "trigger.cron", "error"),
    (scheduled("0 0 31 4 *"), "invalid_cron", "trigger.cron", "error"),
    (scheduled("@daily", "Europe/Atlantis"), "unknown_time_zone", "trigger.timezone", "error"),
])
def test_each_issue_has_its_code_and_path(definition, code, path, severity):
    found = issues_of(definition)
    assert found.get((code, path)) == severity, found


def test_audiences_named_are_checked_against_the_projects_own():
    """Whether an audience exists is the project's to say (the workflow service asks on save
    and on activation): a schedule trigger's and a messaging step's, by id or name; a template
    is only known when the step runs."""
    definition = normalize({"trigger": {"type": "schedule", "cron": "@daily", "audience": "vip"},
                            "steps": [{"id": "a", "type": "send_email", "config": {
                                "subject": "s", "text": "t", "audience": "aud_1"}},
                                {"id": "b", "type": "send_email", "config": {
                                    "subject": "s", "text": "t",
                                    "audience": "{{ vars.which }}"}}]})
    assert issues_of(definition) == {}
    found = {(i.code, i.path, i.step_id) for i in audience_issues(definition, {})}
    assert found == {("unknown_audience", "trigger.audience", None),
                     ("unknown_audience", "steps[0].config.audience", "a")}
    assert audience_issues(definition, {"aud_1": "vip"}) == []


def test_a_cycle_through_a_wait_is_fine():
    found = issues_of(steps({"id": "a", "type": "set", "config": {"vars": {}}},
                            {"id": "b", "type": "wait", "config": {"duration": "P1D"}, "next": "a"}))
    assert found == {}


def test_which_steps_may_read_the_contact():
    """The engine loads a run's contact only for steps that may read it."""
    compiled, _ = analyze(normalize(steps(
        {"id": "plain", "type": "set", "config": {"vars": {"a": "{{ event.properties.n }}"}}},
        {"id": "direct", "type": "set", "config": {"vars": {"a": "x {{ contact.email }}"}}},
        {"id": "alias", "type": "set", "config": {"vars": {"a": {"b": ["{{ user.plan }}"]}}}},
        {"id": "branch", "type": "condition",
         "config": {"if": {"field": "vars.a", "op": "exists"}}},
        {"id": "literal", "type": "update_contact", "config": {"traits": {"a": 1}}})))
    assert compiled is not None
    assert {step_id: step.reads_contact for step_id, step in compiled.steps.items()} == {
        "plain": False, "direct": True, "alias": True, "branch": True, "literal": False}
    assert compiled.reads_contact
    only_plain, _ = analyze(normalize(steps(
        {"id": "plain", "type": "webhook", "config": {"url": "https://example.com/hook",
                                                     "body": {"run": "{{ run.id }}"}}})))
    assert only_plain is not None and not only_plain.reads_contact


def test_aliases_are_normalized():
    definition = normalize(steps({"id": "a", "type": "delay", "config": {"duration": "PT1S"}},
                                 {"id": "b", "type": "branch", "config": {"if": {"field": "x.y", "op": "exists"}}},
                                 {"id": "c", "type": "update_profile", "config": {"traits": {"a": 1}}}))
    assert [s["type"] for s in definition["steps"]] == ["wait", "condition", "update_contact"]


def test_a_schedule_trigger_compiles_with_its_zone_utc_by_default():
    definition = normalize(scheduled("0 9 * * 1"))
    assert definition["trigger"] == {"type": "schedule", "cron": "0 9 * * 1", "timezone": "UTC"}
    compiled, issues = analyze(definition)
    assert issues == [] and compiled is not None and compiled.schedule is not None
    assert compiled.schedule.key == ("0 9 * * 1", "UTC")
    compiled, _ = analyze(normalize(scheduled("@hourly", "America/New_York")))
    assert compiled is not None and compiled.schedule is not None
    assert compiled.schedule.zone.key == "America/New_York"
    assert compiled.trigger is None   # no event starts it


async def test_a_schedule_with_errors_saves_as_a_draft_and_cannot_activate(api: Api):
    status, body = await api.post("/v1/workflows", json={
        "name": "bad schedule", "status": "active", **scheduled("0 9 * * 1", "Mars/Base")})
    assert status == 422 and body["error"]["details"][0]["code"] == "unknown_time_zone"
    status, workflow = await api.post("/v1/workflows", json={
        "name": "bad schedule", **scheduled("0 9 * * Monday")})
    assert status == 201 and [(i["code"], i["path"]) for i in workflow["issues"]] == [
        ("invalid_cron", "trigger.cron")]
    assert "day-of-week 'Monday'" in workflow["issues"][0]["message"]
    status, _ = await api.post(f"/v1/workflows/{workflow['id']}/activate")
    assert status == 422
    status, body = await api.post("/v1/workflows", json={
        "name": "typed", **scheduled("0 9 * * 1", timezone=5)})   # the shape: a 422 at once
    assert status == 422 and body["error"]["details"][0]["path"] == "trigger.timezone"


async def test_draft_saves_with_issues_but_cannot_activate(api: Api):
    status, workflow = await api.post("/v1/workflows", json={"name": "broken", **steps(
        {"id": "a", "type": "wait", "config": {"duration": "whenever"}})})
    assert status == 201 and workflow["status"] == "draft"
    assert [(i["code"], i["step_id"], i["severity"]) for i in workflow["issues"]] == [
        ("invalid_duration", "a", "error")]
    status, body = await api.post(f"/v1/workflows/{workflow['id']}/activate")
    assert status == 422 and body["error"]["details"][0]["path"] == "steps[0].config.duration"
    status, body = await api.post("/v1/workflows", json={"name": "broken", "status": "active", **steps(
        {"id": "a", "type": "wait", "config": {"duration": "whenever"}})})
    assert status == 422
    _, listed = await api.get("/v1/workflows")
    assert len(listed["data"]) == 1 and "steps" not in listed["data"][0]


async def test_active_workflow_refuses_a_broken_definition_and_keeps_the_old(api: Api):
    workflow = await api.workflow(steps({"id": "a", "type": "wait", "config": {"duration": "PT1S"}}))
    broken = {"name": "test", **steps({"id": "a", "type": "wait", "config": {"duration": "nope"}})}
    status, body = await api.put(f"/v1/workflows/{workflow['id']}", json=broken)
    assert status == 422
    assert body["error"]["details"] == [{"path": "steps[0].config.duration",
                                         "message": body["error"]["details"][0]["message"],
                                         "code": "invalid_duration"}]
    _, after = await api.get(f"/v1/workflows/{workflow['id']}")
    assert after["version"] == 1 and after["steps"] == workflow["steps"]


async def test_get_edit_put_round_trip_and_versions(api: Api):
    workflow = await api.workflow(steps({"id": "a", "type": "wait", "config": {"duration": "PT1S"}}),
                                  activate=False)
    _, current = await api.get(f"/v1/workflows/{workflow['id']}")
    current["description"] = "renamed only"
    status, same = await api.put(f"/v1/workflows/{workflow['id']}", json=current)
    assert status == 200 and same["version"] == 1 and same["description"] == "renamed only"
    current["steps"][0]["config"]["duration"] = "PT2S"
    status, changed = await api.put(f"/v1/workflows/{workflow['id']}", json=current)
    assert status == 200 and changed["version"] == 2
    status, v1 = await api.get(f"/v1/workflows/{workflow['id']}/versions/1")
    assert status == 200 and v1["steps"][0]["config"]["duration"] == "PT1S"
    assert (await api.get(f"/v1/workflows/{workflow['id']}/versions/9"))[0] == 404


async def test_request_shape_errors_are_422(api: Api):
    status, body = await api.post("/v1/workflows", json={"name": "x", "steps": [{"type": "wait"}]})
    assert status == 422 and body["error"]["details"][0]["path"] == "steps[0].id"
    status, body = await api.post("/v1/workflows", json={"name": "x", "steps": [
        {"id": "has space", "type": "wait"}]})
    assert status == 422 and body["error"]["details"][0]["path"] == "steps[0].id"
    status, body = await api.post("/v1/workflows", json={"name": "x", "steps": "no"})
    assert status == 422 and body["error"]["details"][0]["path"] == "steps"
    status, body = await api.post("/v1/workflows", json={"name": "x", "trigger": {"type": "sometimes"}})
    assert status == 422 and body["error"]["details"][0]["path"] == "trigger.type"


async def test_patch_operations_apply_atomically_with_aliases(api: Api):
    workflow = await api.workflow(steps(
        {"id": "check", "type": "condition", "config": {"if": {"field": "contact.traits.vip", "op": "eq", "value": True}}},
        {"id": "end", "type": "exit"}), activate=False)
    wf = workflow["id"]
    status, patched = await api.patch(f"/v1/workflows/{wf}", json={"operations": [
        {"op": "add_step", "after": "check", "branch": "yes", "as": "gift",
         "step": {"type": "set", "config": {"vars": {"gift": True}}}},
        {"op": "add_step", "after": "$gift", "as": "mark",
         "step": {"id": "mark", "type": "update_contact", "config": {"add_tags": ["gifted"]}}},
        {"op": "update_step", "id": "$gift", "set": {"name": "Give a gift"}},
    ]})
    assert status == 200, patched
    assert patched["version"] == 2
    by_id = {s["id"]: s for s in patched["steps"]}
    gift_id = next(s["id"] for s in patched["steps"] if s.get("name") == "Give a gift")
    assert by_id["check"]["next"] == {"yes": gift_id, "no": "end"}
    assert by_id[gift_id]["next"] == "mark" and by_id["mark"]["next"] == "end"
    assert patched["issues"] == []

    # One bad operation: nothing applies.
    status, body = await api.patch(f"/v1/workflows/{wf}", json={"operations": [
        {"op": "remove_step", "id": "mark"}, {"op": "update_step", "id": "ghost", "set": {"name": "x"}}]})
    assert status == 422 and body["error"]["details"][0]["path"] == "operations[1].id"
    _, unchanged = await api.get(f"/v1/workflows/{wf}")
    assert unchanged["version"] == 2 and "mark" in {s["id"] for s in unchanged["steps"]}

    status, removed = await api.patch(f"/v1/workflows/{wf}", json={"operations": [
        {"op": "remove_step", "id": "mark"},
        {"op": "set_trigger", "trigger": {"type": "event", "event": "vip.*"}}]})
    assert status == 200 and removed["version"] == 3
    assert {s["id"]: s.get("next") for s in removed["steps"]}[gift_id] == "end"
    assert removed["trigger"] == {"type": "event", "event": "vip.*"}
    status, renamed = await api.patch(f"/v1/workflows/{wf}", json={"name": "Renamed"})
    assert status == 200 and renamed["name"] == "Renamed" and renamed["version"] == 3


async def test_lifecycle_transitions_and_delete(api: Api):
    workflow = await api.workflow(steps({"id": "a", "type": "wait", "config": {"duration": "PT1S"}}))
    wf = workflow["id"]
    assert (await api.post(f"/v1/workflows/{wf}/activate"))[1]["status"] == "active"  # idempotent
    assert (await api.delete(f"/v1/workflows/{wf}"))[0] == 409
    assert (await api.post(f"/v1/workflows/{wf}/deactivate"))[1]["status"] == "draft"
    assert (await api.post(f"/v1/workflows/{wf}/pause"))[0] == 409
    assert (await api.post(f"/v1/workflows/{wf}/archive"))[1]["status"] == "archived"
    assert (await api.get("/v1/workflows"))[1]["data"] == []
    assert len((await api.get("/v1/workflows?status=archived"))[1]["data"]) == 1
    await api.post(f"/v1/workflows/{wf}/activate")
    await api.send("go", "u1")
    assert (await api.delete(f"/v1/workflows/{wf}?force=true"))[0] == 204
    assert (await api.get(f"/v1/workflows/{wf}"))[0] == 404
    assert (await api.get(f"/v1/runs?workflow_id={wf}"))[1]["data"] == []
    assert (await api.send("go", "u1"))["runs_started"] == []


async def test_another_projects_workflow_is_404(api: Api, config):
    import contextlib
    import io

    from flowd.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["keys", "create", "--role", "admin", "--project", "other", "--db", config.storage.path])
    other = out.getvalue().strip()
    workflow = await api.workflow(steps({"id": "a", "type": "exit"}))
    for method, path in [("GET", f"/v1/workflows/{workflow['id']}"),
                         ("POST", f"/v1/workflows/{workflow['id']}/pause"),
                         ("POST", f"/v1/workflows/{workflow['id']}/runs")]:
        status, _ = await api.request(method, path, key=other)
        assert status == 404, (method, path)
    # Its events do not trigger this project's workflows.
    assert (await api.post("/v1/events", key=other, json={"name": "go", "contact_id": "u"}))[1]["runs_started"] == []


# ---------------------------------------------------------------- lints

LINTS = ("unknown_field", "branch_falls_through")


def lints_of(definition: dict) -> list[tuple[str, str, str | None, str]]:
    """(code, path, step_id, message) of each lint warning, in report order."""
    _, issues = analyze(normalize(definition))
    assert all(i.severity == "warning" for i in issues if i.code in LINTS)
    return [(i.code, i.path, i.step_id, i.message) for i in issues if i.code in LINTS]


def cond(field: str, op: str = "eq", value: object = "pro") -> dict:
    return {"field": field, "op": op, "value": value}


DATA_PLAN = cond("contact.data.plan")
TRAITS_PLAN = "Did you mean 'contact.traits.plan'?"


@pytest.mark.parametrize("definition,path,step_id,suggestion", [
    # Reference 004's CONDITION, in each place a condition is read.
    (steps({"id": "a", "type": "exit"},
           {"id": "b", "type": "condition", "config": {"if": DATA_PLAN}}),
     "steps[1].config.if.field", "b", TRAITS_PLAN),
    ({"trigger": {"type": "event", "event": "go", "filter": DATA_PLAN},
      "steps": [{"id": "a", "type": "exit"}]}, "trigger.filter.field", None, TRAITS_PLAN),
    ({"trigger": {"type": "event", "event": "go"},
      "settings": {"exit_on": [{"event": "x"},
                               {"event": "y", "filter": {"all": [cond("event.n"), DATA_PLAN]}}]},
      "steps": [{"id": "a", "type": "exit"}]}, "settings.exit_on[1].filter.all[1].field", None,
     TRAITS_PLAN),
    (steps({"id": "w", "type": "wait_for_event",
            "config": {"event": "upgraded", "filter": {"not": DATA_PLAN}, "timeout": "P1D"}}),
     "steps[0].config.filter.not.field", "w", TRAITS_PLAN),
    (steps({"id": "s", "type": "split", "config": {"branches": [
        {"name": "vip", "if": cond("contact.traits.vip", "exists")},
        {"name": "pro", "if": DATA_PLAN}]}}),
     "steps[0].config.branches[1].if.field", "s", TRAITS_PLAN),
    # Templates: in any config string, and inside a condition's value.
    (steps({"id": "h", "type": "webhook", "config": {
        "url": "https://example.com/hook", "body": {"user": {"plan": "{{ contact.data.plan }}"}}}}),
     "steps[0].config.body.user.plan", "h", TRAITS_PLAN),
    (steps({"id": "c", "type": "condition",
            "config": {"if": cond("event.plan", value="{{ contact.attributes.plan }}")}}),
     "steps[0].config.if.value", "c", TRAITS_PLAN),
    (steps({"id": "c", "type": "set",
            "config": {"vars": {"p": 'plan: {{ contact.properties["Plan name"] | upper }}'}}}),
     "steps[0].config.vars.p", "c", """Did you mean 'contact.traits["Plan name"]'?"""),
    # A close typo of a real field; a name that is no field at all.
    (steps({"id": "c", "type": "condition", "config": {"if": cond("contact.emial", "exists")}}),
     "steps[0].config.if.field", "c", "Did you mean 'contact.email'?"),
    (steps({"id": "c", "type": "condition", "config": {"if": cond("contact.plan")}}),
     "steps[0].config.if.field", "c", TRAITS_PLAN),
    # Other roots: a step that does not exist, run and now fields the scope does not have.
    (steps({"id": "send", "type": "webhook", "config": {"url": "https://example.com"}},
           {"id": "c", "type": "condition", "config": {"if": cond("steps.sned.status", "exists")}}),
     "steps[1].config.if.field", "c", "Did you mean 'steps.send.status'?"),
    (steps({"id": "s", "type": "set", "config": {"vars": {"w": "{{ run.workflow }}"}}}),
     "steps[0].config.vars.w", "s", "Did you mean 'run.workflow_id'?"),
    (steps({"id": "s", "type": "set", "config": {"vars": {"w": "{{ run.status }}"}}}),
     "steps[0].config.vars.w", "s", "a run has only id, workflow_id, workflow_version, contact_id"),
    (steps({"id": "s", "type": "set", "config": {"vars": {"y": "{{ now.year }}"}}}),
     "steps[0].config.vars.y", "s", "Did you mean 'now'?"),
    # Filters matched against an incoming event see only that event and the contact.
    ({"trigger": {"type": "event", "event": "go", "filter": cond("vars.plan")},
      "steps": [{"id": "a", "type": "exit"}]}, "trigger.filter.field", None,
     "a trigger filter sees only the event and the contact"),
    ({"trigger": {"type": "event", "event": "go", "filter": cond("event.n", value="{{ steps.a.n }}")},
      "steps": [{"id": "a", "type": "exit"}]}, "trigger.filter.value", None,
     "a trigger filter sees only the event and the contact"),
    (steps({"id": "w", "type": "wait_for_event",
            "config": {"event": "paid", "filter": cond("vars.order_id", value="x")}}),
     "steps[0].config.filter.field", "w", '"value": "{{ vars.order_id }}"'),
])
def test_a_path_that_is_always_missing_is_an_unknown_field_warning(definition, path, step_id,
                                                                    suggestion):
    found = lints_of(definition)
    assert [(code, where, sid) for code, where, sid, _ in found] == [
        ("unknown_field", path, step_id)], found
    assert suggestion in found[0][3]


def test_a_custom_attribute_bag_name_suggests_traits():
    [(_, _, _, message)] = lints_of(steps(
        {"id": "c", "type": "condition", "config": {"if": DATA_PLAN}}))
    assert message == ("'contact.data.plan' is always missing: a contact keeps custom attributes "
                       "in traits, not data. Did you mean 'contact.traits.plan'?")


def test_paths_that_may_hold_a_value_do_not_warn():
    definition = {
        "trigger": {"type": "event", "event": "order.*", "filter": {"all": [
            cond("event.properties.amount", "gt", 10), cond("event.amount", "gt", 10),
            cond("contact.traits.plan"), cond("user.plan"), cond("profile.plan"),
            cond("trait.vip", "exists"), cond("contact.tags", "contains", "{{ event.tag }}")]}},
        "settings": {"exit_on": [{"event": "x", "filter": cond("contact.subscribed.email", "exists")}]},
        "steps": [
            {"id": "check", "type": "condition", "config": {"if": {"any": [
                cond("contact.email", "exists"), cond("contact", "exists"),
                cond("vars.anything.at.all", value="{{ vars.other }}"),
                cond("steps.call.status", value=200), cond("now", "after", "-P1D"),
                cond("run.contact_id", value="{{ contact.id }}")]}},
             "next": {"yes": "call", "no": None}},
            {"id": "call", "type": "webhook", "config": {
                "url": "https://example.com/{{ run.id }}",
                "body": {"v": "{{ run.workflow_version }}", "at": "{{ now }}", "e": "{{ event.name }}",
                         "out": "{{ steps.check.output.result }}", "all": "{{ steps | json }}",
                         "item": "{{ loop.item }}", "t": "{{ contact.traits.first_name | default: 'x' }}"}}},
            {"id": "wait", "type": "wait_for_event", "config": {
                "event": "paid", "filter": cond("event.properties.order", value="{{ vars.order }}")}},
        ]}
    _, issues = analyze(normalize(definition))
    assert [i.to_json() for i in issues] == []


def test_an_unknown_root_is_reported_once_as_the_error_it_already_was():
    found = issues_of(steps(
        {"id": "c", "type": "condition", "config": {"if": cond("x.y", "exists")}},
        {"id": "s", "type": "set", "config": {"vars": {"a": "{{ foo.bar }}", "b": "{{ contact.data.x"}}}))
    assert found == {("invalid_condition", "steps[0].config.if.field"): "error",
                     ("invalid_template", "steps[1].config.vars.a"): "error",
                     ("invalid_template", "steps[1].config.vars.b"): "error"}


def test_unknown_field_reports_a_path_once_per_place_and_at_most_100_in_all():
    found = lints_of(steps({"id": "s", "type": "set", "config": {"vars": {
        "same": "{{ contact.data.a }} and {{ contact.data.a }}",
        **{f"k{i}": f"{{{{ contact.data.k{i} }}}}" for i in range(150)}}}}))
    assert len(found) == 100
    assert [where for _, where, _, _ in found[:3]] == [
        "steps[0].config.vars.same", "steps[0].config.vars.k0", "steps[0].config.vars.k1"]


def test_a_draft_with_errors_still_gets_its_lints():
    found = issues_of(steps(
        {"id": "c", "type": "condition", "config": {"if": DATA_PLAN}, "next": {"yes": "pro", "no": "bye"}},
        {"id": "pro", "type": "wait", "config": {"duration": "soon"}},
        {"id": "bye", "type": "teleport"}))
    assert found == {("invalid_duration", "steps[1].config.duration"): "error",
                     ("unknown_step_type", "steps[2].type"): "error",
                     ("unknown_field", "steps[0].config.if.field"): "warning",
                     ("branch_falls_through", "steps[1]"): "warning"}


@pytest.mark.parametrize("definition", [
    {},
    {"trigger": "x", "settings": [], "steps": "no"},
    {"trigger": {"filter": "contact.data"}, "settings": {"exit_on": [1, {"filter": [None]}]},
     "steps": [1, None, {"id": 3, "type": ["x"], "next": ["a"]}, {"id": "a"}]},
    {"steps": [{"id": "c", "type": "condition", "config": {"if": {"all": {"field": 1}, "not": 5}},
                "next": {"yes": {"x": 1}, "no": ["y"], 3: None}},
               {"id": "s", "type": "split", "config": {"branches": 5}, "next": {"x": "c"}},
               {"id": "t", "type": "split", "config": {"branches": [5, {"if": "x"}, {"name": 1}]}},
               {"id": "w", "type": "wait_for_event", "config": "filter"},
               {"id": "h", "type": "webhook", "config": {"body": {"{{ k }}": ["{{ contact.", 7]}}}]},
])
def test_the_lints_never_raise_on_odd_input(definition):
    from flowd.lints import lint
    found: list[tuple] = []
    lint(definition, lambda *issue: found.append(issue))
    assert all(code in LINTS for code, *_ in found)


def test_the_lints_are_bounded_on_a_condition_too_deep_to_compile():
    from flowd.conditions import MAX_CONDITION_DEPTH
    from flowd.lints import lint

    def nested(depth: int) -> dict:
        node: dict = DATA_PLAN
        for _ in range(depth):
            node = {"not": node}
        return node
    found: list[str] = []
    for depth in (MAX_CONDITION_DEPTH - 1, MAX_CONDITION_DEPTH, 5000):  # no recursion: no limit hit
        lint(steps({"id": "c", "type": "condition", "config": {"if": nested(depth)}}),
             lambda code, path, message, step_id: found.append(path))
    assert found == ["steps[0].config.if" + ".not" * (MAX_CONDITION_DEPTH - 1) + ".field"]


FALLS_INTO_GOODBYE = ("the 'yes' branch of 'cond' reaches 'pro', which has no next, so the run "
                      "falls through into 'goodbye', where the 'no' branch goes: give 'pro' a "
                      "next (null to end the run there, or \"goodbye\" if both paths should go "
                      "on there)")


def branching(*rest: dict, next_: dict | None = None) -> dict:
    """Reference 000's example: a condition step, then `rest` in list order."""
    return steps({"id": "cond", "type": "condition", "config": {"if": cond("contact.traits.plan")},
                  "next": next_ or {"yes": "pro", "no": "goodbye"}}, *rest)


def test_a_branch_that_falls_through_into_another_branch_warns():
    found = lints_of(branching({"id": "pro", "type": "set", "config": {"vars": {"pro": True}}},
                               {"id": "goodbye", "type": "exit"}))
    assert found == [("branch_falls_through", "steps[1]", "pro", FALLS_INTO_GOODBYE)]


@pytest.mark.parametrize("definition,path,step_id", [
    # The branch is several steps long: the last one without `next` falls through.
    (branching({"id": "pro", "type": "exit"}, {"id": "more", "type": "exit"},
               {"id": "goodbye", "type": "exit"}), "steps[2]", "more"),
    # `split` branch names come from its config.
    (steps({"id": "s", "type": "split", "next": {"vip": "v", "default": "d"}, "config": {
        "branches": [{"name": "vip", "if": cond("contact.traits.vip", "exists")}]}},
        {"id": "v", "type": "exit"}, {"id": "d", "type": "exit"}), "steps[1]", "v"),
    # The success path of a step with an error handler runs into the handler.
    (steps({"id": "call", "type": "webhook", "config": {"url": "https://example.com"},
            "next": {"error": "alert"}},
           {"id": "done", "type": "set", "config": {"vars": {}}}, {"id": "alert", "type": "exit"}),
     "steps[1]", "done"),
])
def test_branch_falls_through_variants(definition, path, step_id):
    assert [(code, where, sid) for code, where, sid, _ in lints_of(definition)] == [
        ("branch_falls_through", path, step_id)]


@pytest.mark.parametrize("definition", [
    # `next` set on the branch's last step: ended, or converging on purpose.
    branching({"id": "pro", "type": "exit", "next": None}, {"id": "goodbye", "type": "exit"}),
    branching({"id": "pro", "type": "exit", "next": "goodbye"}, {"id": "goodbye", "type": "exit"}),
    # The step it falls into is only reached by falling through.
    branching({"id": "pro", "type": "exit"}, {"id": "thanks", "type": "exit", "next": None},
              {"id": "goodbye", "type": "exit"}),
    # The other branch's step comes first; the last one has nowhere to fall.
    branching({"id": "goodbye", "type": "exit", "next": None}, {"id": "pro", "type": "exit"}),
    # An unmapped label ends the run, and a label the type never takes leads nowhere.
    branching({"id": "pro", "type": "exit"}, {"id": "goodbye", "type": "exit"},
              next_={"yes": "pro"}),
    branching({"id": "pro", "type": "exit"}, {"id": "goodbye", "type": "exit"},
              next_={"yes": "pro", "maybe": "goodbye"}),
    # Both labels go to the same step.
    branching({"id": "pro", "type": "exit"}, {"id": "goodbye", "type": "exit"},
              next_={"yes": "pro", "no": "pro"}),
    # An error handler whose success path ends first.
    steps({"id": "call", "type": "webhook", "config": {"url": "https://example.com"},
           "next": {"error": "alert"}},
          {"id": "done", "type": "exit", "next": None}, {"id": "alert", "type": "exit"}),
])
def test_an_intended_fall_through_does_not_warn(definition):
    assert [code for code, *_ in lints_of(definition)] == []


async def test_lint_warnings_come_back_from_the_api_and_do_not_block_activation(api: Api):
    status, workflow = await api.post("/v1/workflows", json={"name": "pro upsell", "status": "active",
                                                             **branching(
        {"id": "pro", "type": "webhook", "config": {"url": "https://example.com/hook",
                                                     "body": {"plan": "{{ contact.data.plan }}"}}},
        {"id": "goodbye", "type": "exit"})})
    assert status == 201 and workflow["status"] == "active"
    assert workflow["issues"] == [
        {"severity": "warning", "code": "unknown_field", "step_id": "pro",
         "path": "steps[1].config.body.plan",
         "message": "'contact.data.plan' is always missing: a contact keeps custom attributes in "
                    "traits, not data. Did you mean 'contact.traits.plan'?"},
        {"severity": "warning", "code": "branch_falls_through", "step_id": "pro",
         "path": "steps[1]", "message": FALLS_INTO_GOODBYE}]
    _, fetched = await api.get(f"/v1/workflows/{workflow['id']}")
    assert fetched["issues"] == workflow["issues"]


async def test_the_lint_knows_the_fields_a_run_really_has(api: Api):
    """unknown_field judges contact.x and run.x by these lists: keep them true to the engine."""
    from flowd.lints import CONTACT_FIELDS, RUN_FIELDS
    workflow = await api.workflow({"trigger": {"type": "manual"}, "steps": [
        {"id": "s", "type": "set", "config": {"vars": {"contact": "{{ contact }}", "run": "{{ run }}"}}}]})
    status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs", json={"contact_id": "u1"})
    assert status == 201, run
    done = await api.run_until(run["id"], "completed")
    assert sorted(done["vars"]["contact"]) == sorted(CONTACT_FIELDS)
    assert sorted(done["vars"]["run"]) == sorted(RUN_FIELDS)
