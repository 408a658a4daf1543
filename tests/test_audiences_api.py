"""Audiences through the API and everywhere they are used: CRUD, filters that must read the
contact (422 with the path), count and contacts evaluated at the call (paged), a send_email
step's check at send time, schedule fires and bulk jobs over the members, references checked
against the project (unknown_audience, 409 on delete), test runs and bundles."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest

from flowd.audience_service import AudienceLimits, AudienceService, TooManyMembers
from flowd.schedules import Schedules
from flowd.store.records import RunStatus
from flowd.workflows import WorkflowService
from tests.conftest import Api, eventually
from tests.core import START, Core, close_core, make_core

PROS = {"name": "pros", "description": "Paying customers",
        "filter": {"field": "contact.traits.plan", "op": "eq", "value": "pro"}}


async def _audience(api: Api, body: dict[str, Any] = PROS) -> dict[str, Any]:
    status, audience = await api.post("/v1/audiences", json=body)
    assert status == 201, audience
    return audience


async def _contacts(api: Api, plans: dict[str, str]) -> None:
    for contact_id, plan in plans.items():
        status, body = await api.put(f"/v1/contacts/{contact_id}", json={
            "email": f"{contact_id}@example.com", "traits": {"plan": plan}})
        assert status in (200, 201), body


async def test_create_read_list_replace_delete(api: Api):
    pros = await _audience(api)
    assert pros["id"].startswith("aud_") and pros["filter"] == PROS["filter"]
    assert (pros["name"], pros["description"]) == ("pros", "Paying customers")
    await _audience(api, {"name": "free", "filter": {"field": "contact.traits.plan", "op": "eq",
                                                     "value": "free"}})
    await _audience(api, {"name": "all", "filter": {"all": []}})
    status, got = await api.get(f"/v1/audiences/{pros['id']}")
    assert status == 200 and got == pros
    assert (await api.get("/v1/audiences/pros"))[0] == 404   # the resource path takes an id

    _, first = await api.get("/v1/audiences?limit=2")
    assert [a["name"] for a in first["data"]] == ["all", "free"]      # newest first
    _, rest = await api.get(f"/v1/audiences?limit=2&cursor={first['next_cursor']}")
    assert [a["name"] for a in rest["data"]] == ["pros"] and rest["next_cursor"] is None

    changed = {**got, "name": "payers", "description": "",     # GET → edit → PUT
               "filter": {"field": "contact.traits.plan", "op": "in", "value": ["pro", "team"]}}
    status, replaced = await api.put(f"/v1/audiences/{pros['id']}", json=changed)
    assert status == 200, replaced
    assert (replaced["name"], replaced["filter"]["op"], replaced["created_at"]) == (
        "payers", "in", pros["created_at"])
    status, error = await api.post("/v1/audiences", json={**PROS, "name": "free"})
    assert status == 409 and error["error"]["code"] == "conflict"
    status, error = await api.put(f"/v1/audiences/{pros['id']}", json={**changed, "name": "all"})
    assert status == 409

    viewer = await api.new_key("viewer")
    assert (await api.post("/v1/audiences", json={**PROS, "name": "x"}, key=viewer))[0] == 403
    assert (await api.get(f"/v1/audiences/{pros['id']}/count", key=viewer))[0] == 200
    assert (await api.delete(f"/v1/audiences/{pros['id']}", key=viewer))[0] == 403
    assert (await api.delete(f"/v1/audiences/{pros['id']}"))[0] == 204
    for path in ("", "/count", "/contacts"):
        assert (await api.get(f"/v1/audiences/{pros['id']}{path}"))[0] == 404


async def test_another_projects_audience_is_404(api: Api, config):
    from flowd.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["keys", "create", "--role", "admin", "--project", "other",
              "--db", config.storage.path])
    other = out.getvalue().strip()
    pros = await _audience(api)
    for method, path in [("GET", ""), ("GET", "/count"), ("GET", "/contacts"), ("DELETE", "")]:
        status, _ = await api.request(method, f"/v1/audiences/{pros['id']}{path}", key=other)
        assert status == 404, (method, path)
    assert (await api.get("/v1/audiences", key=other))[1]["data"] == []


@pytest.mark.parametrize("body,path", [
    ({"name": "x", "filter": {"field": "event.name", "op": "eq", "value": "a"}}, "filter.field"),
    ({"name": "x", "filter": {"field": "contact.plan", "op": "eq", "value": "a"}},
     "filter.field"),
    ({"name": "x", "filter": {"any": [{"field": "contact.email", "op": "eq", "value": 1},
                                      {"field": "vars.x", "op": "exists"}]}},
     "filter.any[1].field"),
    ({"name": "x", "filter": {"all": [{"field": "contact.email", "op": "bigger", "value": 1}]}},
     "filter.all[0].op"),
    ({"name": "x", "filter": {"field": "contact.email", "op": "eq",
                              "value": "{{ event.properties.email }}"}}, "filter.value"),
    ({"name": "x", "filter": {"field": "contact.traits.signup", "op": "after",
                              "value": "yesterday"}}, "filter.value"),
    ({"name": "x", "filter": {"field": "contact.traits.plan", "op": "in", "value": "pro"}},
     "filter.value"),
    ({"name": "x", "filter": "plan = pro"}, "filter"),
    ({"name": "x"}, "filter"),
    ({"name": "", "filter": {"all": []}}, "name"),
    ({"name": "x", "filter": {"all": []}, "owner": "me"}, "owner"),
])
async def test_a_filter_must_be_a_condition_over_the_contact(api: Api, body, path):
    status, error = await api.post("/v1/audiences", json=body)
    assert status == 422 and error["error"]["code"] == "validation_error", error
    assert path in [d["path"] for d in error["error"]["details"]], error
    assert (await api.get("/v1/audiences"))[1]["data"] == []


async def test_count_and_contacts_are_evaluated_at_the_call_and_paged(api: Api):
    await _contacts(api, {"u1": "pro", "u2": "free", "u3": "pro", "u4": "pro", "u5": "free"})
    pros = await _audience(api)
    base = f"/v1/audiences/{pros['id']}"
    assert await api.get(f"{base}/count") == (200, {"count": 3})
    status, first = await api.get(f"{base}/contacts?limit=2")
    assert status == 200 and [c["id"] for c in first["data"]] == ["u4", "u3"]
    assert first["data"][0] == (await api.get("/v1/contacts/u4"))[1]   # as GET /v1/contacts
    _, rest = await api.get(f"{base}/contacts?limit=2&cursor={first['next_cursor']}")
    assert [c["id"] for c in rest["data"]] == ["u1"] and rest["next_cursor"] is None

    # No cache: a changed trait, a new contact, a deleted one count at once.
    await _contacts(api, {"u2": "pro", "u6": "pro"})
    assert (await api.delete("/v1/contacts/u1"))[0] == 204
    assert (await api.get(f"{base}/count"))[1] == {"count": 4}
    _, page = await api.get(f"{base}/contacts")
    assert [c["id"] for c in page["data"]] == ["u6", "u4", "u3", "u2"]
    # A changed filter, too; a relative time counts from now.
    status, _ = await api.put(base, json={"name": "recent", "filter": {"all": [
        PROS["filter"], {"field": "contact.created_at", "op": "after", "value": "-PT1H"}]}})
    assert status == 200
    assert (await api.get(f"{base}/count"))[1] == {"count": 4}
    assert (await api.get(f"{base}/contacts?cursor=nonsense"))[0] == 422


async def test_a_filter_python_must_decide_for_too_many_contacts_is_refused(tmp_path,
                                                                            aiohttp_client):
    import dataclasses

    from flowd.app import create_app
    from flowd.config import AudiencesConfig
    from tests.conftest import ADMIN_KEY, make_config
    config = dataclasses.replace(make_config(tmp_path),
                                 audiences=AudiencesConfig(max_python_rows=2))
    api = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
    for i, name in enumerate(["Ärger", "ärger", "Ann", "Öl"]):
        await api.put(f"/v1/contacts/u{i}", json={"traits": {"name": name,
                                                             "plan": "pro" if i < 2 else "x"}})
    folded = await _audience(api, {"name": "ärger", "filter": {
        "field": "contact.traits.name", "op": "eq_ignore_case", "value": "ÄRGER"}})
    status, error = await api.get(f"/v1/audiences/{folded['id']}/count")
    assert status == 422, error
    assert error["error"]["details"] == [{"path": "filter", "code": "audience_too_costly",
                                          "message": error["error"]["details"][0]["message"]}]
    assert "max_python_rows" in error["error"]["message"]
    # Narrowed by a condition SQL decides, only two contacts reach Python.
    narrowed = await _audience(api, {"name": "pro ärger", "filter": {"all": [
        {"field": "contact.traits.plan", "op": "eq", "value": "pro"}, folded["filter"]]}})
    assert (await api.get(f"/v1/audiences/{narrowed['id']}/count"))[1] == {"count": 2}


def _mailing(audience: str) -> dict[str, Any]:
    return {"name": "mailing", "trigger": {"type": "event", "event": "go"}, "steps": [
        {"id": "mail", "type": "send_email", "config": {
            "subject": "For pros", "text": "Hi", "audience": audience}}]}


async def test_a_send_email_step_sends_to_members_and_suppresses_the_others(api: Api):
    await _contacts(api, {"pro1": "pro", "free1": "free"})
    pros = await _audience(api)
    await api.workflow(_mailing("pros"))
    runs = {}
    for contact_id in ("pro1", "free1"):
        [runs[contact_id]] = (await api.send("go", contact_id))["runs_started"]
    sent = await api.run_until(runs["pro1"], "completed", "failed")
    skipped = await api.run_until(runs["free1"], "completed", "failed")
    assert sent["status"] == skipped["status"] == "completed"
    assert sent["steps"][0]["outcome"] == "sent"
    assert skipped["steps"][0]["outcome"] == "suppressed"
    assert skipped["steps"][0]["output"] == {"status": "suppressed", "reason": "not_in_audience"}
    _, messages = await api.get("/v1/messages")
    assert [m["to"] for m in messages["data"]] == ["pro1@example.com"]

    # Checked at send time: free1 upgrades, and its next send goes out.
    await _contacts(api, {"free1": "pro"})
    [again] = (await api.send("go", "free1"))["runs_started"]
    assert (await api.run_until(again, "completed"))["steps"][0]["outcome"] == "sent"
    # By id as well as by name.
    status, workflow = await api.post("/v1/workflows", json={**_mailing(pros["id"]),
                                                             "name": "by id"})
    assert status == 201 and workflow["issues"] == []


async def test_references_are_checked_and_an_audience_in_use_is_not_deleted(api: Api):
    status, draft = await api.post("/v1/workflows", json=_mailing("vips"))
    assert status == 201
    assert [(i["code"], i["path"]) for i in draft["issues"]] == [
        ("unknown_audience", "steps[0].config.audience")]
    status, error = await api.post(f"/v1/workflows/{draft['id']}/activate")
    assert status == 422 and error["error"]["details"][0]["code"] == "unknown_audience"
    status, error = await api.post("/v1/workflows", json={**_mailing("vips"), "status": "active"})
    assert status == 422

    vips = await _audience(api, {**PROS, "name": "vips"})
    status, active = await api.post(f"/v1/workflows/{draft['id']}/activate")
    assert status == 200 and active["issues"] == []    # found again on activation
    scheduled = await api.workflow({"name": "weekly", "trigger": {
        "type": "schedule", "cron": "0 9 * * 1", "audience": vips["id"]},
        "steps": [{"id": "x", "type": "exit"}]})
    status, error = await api.delete(f"/v1/audiences/{vips['id']}")
    assert status == 409, error
    assert sorted(d["workflow_id"] for d in error["error"]["details"]) == sorted(
        [draft["id"], scheduled["id"]])
    for workflow in (draft, scheduled):
        assert (await api.post(f"/v1/workflows/{workflow['id']}/deactivate"))[0] == 200
    assert (await api.delete(f"/v1/audiences/{vips['id']}"))[0] == 204
    status, error = await api.post(f"/v1/workflows/{scheduled['id']}/activate")
    assert status == 422 and error["error"]["details"][0]["path"] == "trigger.audience"


async def test_a_bulk_job_over_an_audience_starts_its_members_listed_at_creation(api: Api):
    await _contacts(api, {"a": "pro", "b": "free", "c": "pro", "d": "pro"})
    await _audience(api)
    workflow = await api.workflow({"name": "bulk", "steps": [
        {"id": "w", "type": "wait", "config": {"duration": "P1D"}}]})
    status, job = await api.post(f"/v1/workflows/{workflow['id']}/bulk-runs",
                                 json={"audience": "pros", "require_approval": True})
    assert status == 201, job
    assert (job["source"], job["total"], job["status"]) == ("audience", 3, "approval")
    assert job["audience"].startswith("aud_")
    # Listed at creation: a contact that becomes a member meanwhile is not in this job.
    await _contacts(api, {"b": "pro"})
    status, job = await api.patch(f"/v1/bulk-jobs/{job['id']}", json={"action": "approve"})
    assert status == 200, job

    async def finished() -> dict[str, Any] | None:
        _, current = await api.get(f"/v1/bulk-jobs/{job['id']}")
        return current if current["status"] == "finished" else None
    done = await eventually(finished)
    assert (done["started"], done["skipped"]) == (3, 0)
    _, runs = await api.get(f"/v1/runs?workflow_id={workflow['id']}")
    assert sorted(r["contact_id"] for r in runs["data"]) == ["a", "c", "d"]

    status, error = await api.post(f"/v1/workflows/{workflow['id']}/bulk-runs",
                                   json={"audience": "nobody"})
    assert status == 422 and error["error"]["details"][0]["code"] == "unknown_audience"


async def test_a_test_run_checks_the_audience_on_its_own_contact(api: Api):
    pros = await _audience(api)
    definition = {"trigger": {"type": "event", "event": "go"}, "steps": [
        {"id": "mail", "type": "send_email", "config": {"subject": "S", "text": "T",
                                                       "audience": pros["id"]}}]}
    for plan, outcome, kinds in (("pro", "sent", ["email"]), ("free", "suppressed", [])):
        status, result = await api.post("/v1/workflows/test-run", json={
            "definition": definition, "contact": {"email": "t@example.com",
                                                  "traits": {"plan": plan}}})
        assert status == 200, result
        assert result["trace"][0]["outcome"] == outcome, result
        assert [e["kind"] for e in result["effects"]] == kinds
    assert (await api.get("/v1/messages"))[1]["data"] == []   # nothing was sent


async def test_bundles_carry_audiences_and_refuse_a_bad_filter(api: Api):
    await _audience(api)
    status, result = await api.post("/v1/import", json={
        "format": "flowd.bundle/1", "workflows": [], "audiences": [
            {"name": "pros", "description": "Paying customers",
             "filter": {"field": "contact.traits.plan", "op": "in", "value": ["pro"]}},
            {"name": "new", "filter": {"field": "contact.tags", "op": "contains",
                                       "value": "vip"}}]})
    assert status == 200, result
    assert [(e["type"], e["name"]) for e in result["updated"]] == [("audience", "pros")]
    assert [(e["type"], e["name"]) for e in result["created"]] == [("audience", "new")]
    status, error = await api.post("/v1/import", json={
        "format": "flowd.bundle/1", "workflows": [], "audiences": [
            {"name": "bad", "filter": {"field": "event.name", "op": "exists"}}]})
    assert status == 422
    assert [d["path"] for d in error["error"]["details"]] == ["audiences[0].filter.field"]
    _, bundle = await api.get("/v1/export")
    assert [a["name"] for a in bundle["audiences"]] == ["new", "pros"]


# ------------------------------------------------------------------ schedules (virtual clock)

MINUTE = 60_000


@pytest.fixture
async def core(tmp_path):
    core = await make_core(tmp_path)
    yield core
    await close_core(core)


async def test_a_schedule_over_an_audience_starts_one_run_per_member_at_each_fire(core: Core):
    audiences = AudienceService(core.store, core.clock, AudienceLimits(100, 3))
    schedules = Schedules(core.store, core.clock, lambda: core.registry.index,
                          on_started=core.scheduler.start_new, audiences=audiences)
    core.registry.listeners.append(schedules.notify)

    def seed(tx: Any) -> None:
        for i, plan in enumerate(["pro", "free", "pro"]):
            tx.contacts.upsert("default", f"u{i}", {"traits": {"plan": plan}}, START)
        tx.audiences.create(project_id="default", name="pros", description="",
                            filter=PROS["filter"], now=START)
    await core.store.write(seed)
    service = WorkflowService(core.store, core.clock, core.registry.changed,
                              core.scheduler.notify_now)
    workflow = await service.create("default", {
        "name": "every ten minutes", "status": "active",
        "trigger": {"type": "schedule", "cron": "*/10 * * * *", "audience": "pros"},
        "steps": [{"id": "mark", "type": "set", "config": {"vars": {
            "plan": "{{ contact.traits.plan }}"}}}]})
    assert workflow.issues == []

    async def runs() -> list[Any]:
        page = await core.store.list_runs("default", workflow_id=workflow.id, status=None,
                                          contact_id=None, before=None, limit=100)
        return sorted(page.items, key=lambda r: (r.trigger["scheduled_at"], r.contact_id))

    await schedules.tick(START)
    await schedules.tick(START + 10 * MINUTE)
    await core.settle()
    first = await runs()
    assert [(r.contact_id, r.status) for r in first] == [("u0", RunStatus.COMPLETED),
                                                         ("u2", RunStatus.COMPLETED)]
    assert first[0].trigger["event"]["contact_id"] == "u0" and first[0].vars == {"plan": "pro"}
    # The members are read at each fire.
    await core.store.write(lambda tx: tx.contacts.upsert("default", "u1",
                                                         {"traits": {"plan": "pro"}}, START))
    await schedules.tick(START + 20 * MINUTE)
    await core.settle()
    assert [r.contact_id for r in await runs()][2:] == ["u0", "u1", "u2"]
    # More members than [audiences] max_members: the fire starts nothing (and says so).
    await core.store.write(lambda tx: tx.contacts.upsert("default", "u3",
                                                         {"traits": {"plan": "pro"}}, START))
    await schedules.tick(START + 30 * MINUTE)
    assert len(await runs()) == 5
    audience = await core.store.read(lambda tx: tx.audiences.get("default", "pros"))
    with pytest.raises(TooManyMembers):
        await core.store.read(lambda tx: audiences.member_ids_in(tx, audience, START))
