"""The blueprint gallery: every blueprint is a well-formed journey that clones into a draft
with its templates, activates, and runs its first steps; cloning names things predictably."""

from __future__ import annotations

import pytest

from flowd.blueprints import BLUEPRINTS, KEYS
from flowd.definition_schema import validate_definition_parts
from flowd.definitions import analyze, normalize
from flowd.message_templates import compile_content
from tests.conftest import Api

# Per blueprint: where a fresh run first waits (None: it completes at once), and the
# send_email steps that go before that.
FIRST_STEPS = {
    "welcome-series": ("wait_2d", ["welcome"]),
    "cart-abandonment": ("wait_1h", []),
    "order-confirmation": (None, ["receipt", "welcome_customer"]),
    "post-purchase-feedback": ("wait_3d", []),
    "trial-ending": ("wait_upgrade", ["heads_up"]),
    "re-engagement": ("wait_return", ["miss_you"]),
    "birthday": ("wait_order", ["greet"]),
    "password-reset": ("wait_reset", ["send_link"]),
}
PAYLOAD = {"order_id": "o-1", "total": 42, "currency": "EUR", "cart_url": "https://shop.example/c",
           "review_url": "https://shop.example/r", "upgrade_url": "https://app.example/up",
           "trial_ends_at": "2026-12-01", "reset_url": "https://app.example/reset/x",
           "coupon_code": "BDAY10"}


def test_the_data_is_well_formed():
    assert tuple(BLUEPRINTS) == KEYS == tuple(FIRST_STEPS)
    for blueprint in BLUEPRINTS.values():
        problems: list = []
        validate_definition_parts(blueprint.definition, problems)
        assert problems == [], (blueprint.key, problems)
        shorts = [t["name"] for t in blueprint.templates]
        for template in blueprint.templates:
            compile_content(template["channel"],
                            {k: v for k, v in template.items() if k not in ("name", "channel")})
        used = {s["config"]["template"] for s in blueprint.definition["steps"]
                if s["type"] == "send_email"}
        assert used == set(shorts), blueprint.key


async def test_the_gallery_lists_eight_blueprints_to_viewers(api: Api):
    viewer = await api.new_key("viewer")
    status, page = await api.get("/v1/blueprints", key=viewer)
    assert status == 200, page
    assert [b["key"] for b in page["data"]] == list(KEYS) and page["next_cursor"] is None
    welcome = page["data"][0]
    assert welcome["name"] == "Welcome series"
    assert welcome["trigger_summary"] == "when event user.signed_up arrives"
    assert welcome["step_count"] == len(welcome["definition"]["steps"]) == 6
    assert "welcome-series: welcome" in welcome["templates"]
    status, _ = await api.post("/v1/blueprints/welcome-series/clone", key=viewer)
    assert status == 403


@pytest.mark.parametrize("key", KEYS)
async def test_each_blueprint_clones_activates_and_runs(api: Api, key: str):
    status, workflow = await api.post(f"/v1/blueprints/{key}/clone")
    assert status == 201, workflow
    assert workflow["status"] == "draft" and workflow["name"] == BLUEPRINTS[key].name
    assert [i for i in workflow["issues"] if i["severity"] == "error"] == []
    status, activated = await api.post(f"/v1/workflows/{workflow['id']}/activate")
    assert status == 200, activated

    await api.put("/v1/contacts/u_1", json={"email": "ada@example.com",
                                            "traits": {"first_name": "Ada"}})
    status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs",
                                 json={"contact_id": "u_1", "payload": PAYLOAD})
    assert status == 201, run
    wait_step, emails = FIRST_STEPS[key]
    run = await api.run_until(run["id"], "waiting" if wait_step else "completed")
    assert run["current_step_id"] == wait_step or wait_step is None
    assert run["error"] is None
    _, messages = await api.get(f"/v1/messages?run_id={run['id']}")
    sent = messages["data"][::-1]      # listed newest first
    assert [m["step_id"] for m in sent] == emails
    assert all(m["status"] == "sent" and m["to"] == "ada@example.com" for m in sent), sent
    assert all("{{" not in m["subject"] and "{{" not in m["body"] for m in sent), sent
    if key == "birthday":
        assert "Ada" in sent[0]["subject"] and "BDAY10" in sent[0]["body"]


async def test_names_default_to_the_blueprint_and_are_made_unique(api: Api):
    names = []
    for _ in range(3):
        _, workflow = await api.post("/v1/blueprints/birthday/clone", json={})
        names.append(workflow["name"])
    assert names == ["Birthday", "Birthday (2)", "Birthday (3)"]
    status, named = await api.post("/v1/blueprints/birthday/clone", json={"name": "Birthday"})
    assert status == 201 and named["name"] == "Birthday"    # a given name is used as given
    status, error = await api.post("/v1/blueprints/nope/clone")
    assert status == 404 and error["error"]["code"] == "not_found"
    status, error = await api.post("/v1/blueprints/birthday/clone", json={"title": "x"})
    assert status == 422


async def test_templates_are_reused_when_unchanged_and_never_overwritten(api: Api):
    await api.post("/v1/blueprints/password-reset/clone")
    _, page = await api.get("/v1/templates")
    assert sorted(t["name"] for t in page["data"]) == ["password-reset: changed",
                                                        "password-reset: link"]
    await api.post("/v1/blueprints/password-reset/clone")
    _, again = await api.get("/v1/templates")
    assert len(again["data"]) == 2                          # the same content: reused

    link = next(t for t in page["data"] if t["name"] == "password-reset: link")
    edited = {**link, "subject": "Our own subject"}
    status, _ = await api.put(f"/v1/templates/{link['id']}", json=edited)
    assert status == 200
    status, workflow = await api.post("/v1/blueprints/password-reset/clone")
    assert status == 201
    assert workflow["steps"][0]["config"]["template"] == "password-reset: link (2)"
    _, kept = await api.get(f"/v1/templates/{link['id']}")
    assert kept["subject"] == "Our own subject"
    _, final = await api.get("/v1/templates")
    assert len(final["data"]) == 3


def test_no_blueprint_has_even_a_warning():
    for blueprint in BLUEPRINTS.values():
        _, issues = analyze(normalize(blueprint.definition))
        assert issues == [], (blueprint.key, issues)
