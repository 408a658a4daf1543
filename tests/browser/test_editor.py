"""The workflow editor in a real browser: every edit goes through the page's own controls and
the test then asks the server what it holds."""

from __future__ import annotations

import json
from typing import Any

from tests.browser.conftest import sign_in, unique


def _workflow(flowd: Any, wf_id: str) -> dict[str, Any]:
    response = flowd.get(f"/v1/workflows/{wf_id}")
    assert response.status == 200, response.body
    return response.body


def _step(workflow: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in workflow["steps"] if s["id"] == step_id)


def _open(page: Any, flowd: Any, wf_id: str, tab: str = "") -> None:
    sign_in(page, flowd.key, f"#/workflows/{wf_id}" + (f"?tab={tab}" if tab else ""))


def test_blueprint_edit_shows_and_clears_issue_then_activates(page: Any, flowd: Any,
                                                             viewer_key: str) -> None:
    clone = flowd.post("/v1/blueprints/cart-abandonment/clone", {"name": unique("Cart")})
    assert clone.status == 201, clone.body
    wf_id = clone.body["id"]
    _open(page, flowd, wf_id)

    node = page.locator('.graph-node[data-step-id="reminder"]')
    node.click()
    template = page.locator('[data-form="config"] [name="template"]')
    original = template.input_value()
    assert original.endswith("reminder")
    template.fill("")
    page.click('form[data-form="step"] button[type=submit]')
    page.wait_for_selector('.graph-node[data-step-id="reminder"].has-error')
    assert "error" in (node.get_attribute("aria-label") or "")
    issues = _workflow(flowd, wf_id)["issues"]
    assert any(i["step_id"] == "reminder" and i["severity"] == "error" for i in issues), issues

    page.locator('[data-form="config"] [name="template"]').fill(original)
    page.click('form[data-form="step"] button[type=submit]')
    page.wait_for_selector('.graph-node[data-step-id="reminder"]:not(.has-error)')
    assert _step(_workflow(flowd, wf_id), "reminder")["config"] == {"template": original}

    page.click('[data-action="activate"]')
    page.wait_for_selector(".editor-meta .status-active")
    assert _workflow(flowd, wf_id)["status"] == "active"

    # A viewer sees the same editor with every edit control disabled.
    sign_in(page, viewer_key, f"#/workflows/{wf_id}")
    page.wait_for_selector("main[data-ready] .graph-node")
    page.click('.graph-node[data-step-id="reminder"]')
    for selector in ('form[data-form="step"] button[type=submit]', '[name="template"]',
                     '[data-action="remove"]', 'form[data-form="add-step"] button', "#workflow-name",
                     '[data-action="undo"]', '[data-action="pause"]'):
        assert page.locator(selector).is_disabled(), selector


def test_add_step_on_a_branch_then_undo_and_redo(page: Any, flowd: Any) -> None:
    created = flowd.post("/v1/workflows", {
        "name": unique("Branchy"), "trigger": {"type": "event", "event": "order.placed"},
        "steps": [
            {"id": "check", "type": "condition",
             "config": {"if": {"field": "event.properties.amount", "op": "gt", "value": 40}},
             "next": {"yes": "big", "no": "small"}},
            {"id": "big", "type": "exit", "config": {"reason": "big"}, "next": None},
            {"id": "small", "type": "exit", "config": {"reason": "small"}, "next": None},
        ]})
    assert created.status == 201, created.body
    wf_id = created.body["id"]
    _open(page, flowd, wf_id)

    page.click('.graph-node[data-step-id="check"]')
    form = page.locator('form[data-form="add-step"]')
    form.locator('[name="new_type"]').select_option("wait")
    form.locator('[name="branch"]').select_option("no")
    form.locator("button[type=submit]").click()
    page.wait_for_selector('.graph-node[aria-pressed="true"]:not([data-step-id="check"])')

    after = _workflow(flowd, wf_id)
    added = [s for s in after["steps"] if s["id"] not in ("check", "big", "small")]
    assert len(added) == 1 and added[0]["type"] == "wait"
    new_id = added[0]["id"]
    assert _step(after, "check")["next"] == {"yes": "big", "no": new_id}
    assert added[0]["next"] == "small"
    # The new step is selected and its missing duration shows on its node at once.
    page.wait_for_selector(f'.graph-node[data-step-id="{new_id}"][aria-pressed="true"]')

    # Undo with the keyboard (focus on the canvas, not in a field), redo with the button.
    page.locator(".graph-viewport").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    page.wait_for_selector(f'.graph-node[data-step-id="{new_id}"]', state="detached")
    undone = _workflow(flowd, wf_id)
    assert _step(undone, "check")["next"] == {"yes": "big", "no": "small"}
    assert undone["version"] == after["version"] + 1

    page.click('[data-action="redo"]')
    page.wait_for_selector(f'.graph-node[data-step-id="{new_id}"]')
    assert _step(_workflow(flowd, wf_id), "check")["next"] == {"yes": "big", "no": new_id}


def test_json_tab_round_trip(page: Any, flowd: Any) -> None:
    created = flowd.post("/v1/workflows", {
        "name": unique("Jsonny"), "trigger": {"type": "manual"},
        "steps": [{"id": "pause", "type": "wait", "config": {"duration": "PT1H"}},
                  {"id": "done", "type": "exit", "config": {}}]})
    assert created.status == 201, created.body
    wf_id = created.body["id"]
    _open(page, flowd, wf_id, "json")

    area = page.locator("#json-definition")
    definition = json.loads(area.input_value())
    assert set(definition) == {"name", "description", "trigger", "settings", "steps"}
    definition["steps"][0]["name"] = "Take a <b>breath</b>"
    area.fill(json.dumps(definition, indent=2))
    page.click('[data-action="save-json"]')
    page.wait_for_selector('[data-version="2"]')
    saved = _workflow(flowd, wf_id)
    assert saved["version"] == 2 and _step(saved, "pause")["name"] == "Take a <b>breath</b>"

    # Saving it unchanged makes no new version.
    page.click('[data-action="save-json"]')
    page.wait_for_selector(".toast-ok >> text=no change")
    assert _workflow(flowd, wf_id)["version"] == 2

    # A 422 is shown beside the text with its path.
    definition["steps"][0]["config"] = {"duration": 5}
    area.fill(json.dumps(definition))
    page.click('[data-action="save-json"]')
    page.wait_for_selector(".json-problems .error code")
    assert "steps[0]" in page.inner_text(".json-problems .error")
    assert _workflow(flowd, wf_id)["version"] == 2

    page.click("#tab-canvas")
    node = page.locator('.graph-node[data-step-id="pause"] .node-name')
    assert node.inner_text() == "Take a <b>breath</b>"   # text, never markup
    assert "tab=canvas" in page.url

    # Versions: the two newest are preselected; their diff names the changed field; v1 opens
    # read-only on a graph of its own.
    page.click("#tab-versions")
    page.click('[data-action="compare"]')
    page.wait_for_selector(".version-diff code")
    assert "pause (name)" in page.inner_text(".version-diff")
    page.click('.version-list a >> text="v1"')
    page.wait_for_selector('.version-view .graph-node[data-step-id="pause"]')
    assert page.inner_text('.version-view .graph-node[data-step-id="pause"] .node-name') == "pause"

    # Move up: one PATCH batch (remove + add after) that keeps the moved step's id and name.
    page.click("#tab-canvas")
    page.click('.graph-node[data-step-id="done"]')
    page.click('[data-action="move-up"]')
    page.wait_for_selector('[data-version="3"]')
    moved = _workflow(flowd, wf_id)
    assert [s["id"] for s in moved["steps"]] == ["done", "pause"]
    assert _step(moved, "pause")["name"] == "Take a <b>breath</b>"


def test_render_150_steps(page: Any, flowd: Any) -> None:
    steps = []
    for i in range(150):
        if i % 10 == 3 and i + 2 < 150:
            steps.append({"id": f"s{i}", "type": "condition",
                          "config": {"if": {"field": "event.properties.n", "op": "gt", "value": i}},
                          "next": {"yes": f"s{i + 1}", "no": f"s{i + 2}"}})
        else:
            steps.append({"id": f"s{i}", "type": "wait", "config": {"duration": "PT1M"}})
    created = flowd.post("/v1/workflows", {"name": unique("Big"), "trigger": {"type": "manual"},
                                           "steps": steps})
    assert created.status == 201, created.body
    _open(page, flowd, created.body["id"])
    page.wait_for_selector('.graph-node[data-step-id="s149"]')
    assert page.locator(".graph-node").count() == 151
    ms = float(page.get_attribute(".graph", "data-render-ms"))
    print(f"\n150-step workflow: graph.draw took {ms:.1f} ms")
    # Fit then walk down with the keyboard: selection follows the edges.
    page.click('[data-action="fit"]')
    page.locator('.graph-node[data-step-id="trigger"]').click()
    page.keyboard.press("ArrowDown")
    page.wait_for_selector('.graph-node[data-step-id="s0"][aria-pressed="true"]')
    assert page.evaluate("document.activeElement.dataset.stepId") == "s0"


def test_a_change_made_through_the_api_appears_in_the_open_editor(page: Any, flowd: Any) -> None:
    created = flowd.post("/v1/workflows", {"name": unique("Live"), "trigger": {"type": "manual"},
                                           "steps": [{"id": "first", "type": "exit"}]})
    assert created.status == 201, created.body
    wf_id = created.body["id"]
    _open(page, flowd, wf_id)
    page.wait_for_selector('.graph-node[data-step-id="first"]')
    patched = flowd.request("PATCH", f"/v1/workflows/{wf_id}", {"operations": [
        {"op": "add_step", "after": "first", "step": {"id": "later", "type": "wait",
                                                        "config": {"duration": "PT1H"}}}]})
    assert patched.status == 200, patched.body
    # The page polls every 5 s; no reload, no click.
    page.wait_for_selector('.graph-node[data-step-id="later"]')
    page.wait_for_selector('[data-version="2"]')


def test_undo_takes_back_a_json_save_after_switching_tabs(page: Any, flowd: Any) -> None:
    created = flowd.post("/v1/workflows", {"name": unique("Undo JSON"),
                                           "trigger": {"type": "manual"},
                                           "steps": [{"id": "only", "type": "exit",
                                                      "name": "before"}]})
    assert created.status == 201, created.body
    wf_id = created.body["id"]
    _open(page, flowd, wf_id, "json")
    area = page.locator("#json-definition")
    definition = json.loads(area.input_value())
    definition["steps"][0]["name"] = "after"
    area.fill(json.dumps(definition))
    page.click('[data-action="save-json"]')
    page.wait_for_selector('[data-version="2"]')
    page.click("#tab-canvas")
    page.click('[data-action="undo"]')
    page.wait_for_selector('[data-version="3"]')
    restored = _workflow(flowd, wf_id)
    assert restored["version"] == 3 and _step(restored, "only")["name"] == "before"
