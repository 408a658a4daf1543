"""Runs in the builder: a real run (started by a posted event) drawn on its workflow's graph —
the path it took, the branch it did not take, the wait it stands in — cancelled from the page;
and the project's runs list with its status filter kept in the address."""

from __future__ import annotations

import secrets
from typing import Any

from tests.browser.conftest import sign_in, unique
from tests.e2e.conftest import wait_until


def _waiting_run(flowd: Any) -> tuple[str, str]:
    """An active workflow trigger → condition (yes: update_contact, no: set) → wait PT1H, and
    the run one event started on it, now waiting."""
    event = f"order.placed.{secrets.token_hex(4)}"   # the server is shared: no other workflow matches
    created = flowd.post("/v1/workflows", {
        "name": unique("Runs graph"), "status": "active",
        "trigger": {"type": "event", "event": event},
        "steps": [
            {"id": "big", "type": "condition",
             "config": {"if": {"field": "event.properties.amount", "op": "gt", "value": 40}},
             "next": {"yes": "vip", "no": "regular"}},
            {"id": "vip", "type": "update_contact", "config": {"add_tags": ["vip"]}, "next": "pause"},
            {"id": "regular", "type": "set", "config": {"vars": {"plain": True}}, "next": "pause"},
            {"id": "pause", "type": "wait", "config": {"duration": "PT1H"}, "next": None},
        ],
    })
    assert created.status == 201, created.body
    posted = flowd.post("/v1/events", {"name": event, "contact_id": f"u_{secrets.token_hex(3)}",
                                       "properties": {"amount": 50}})
    assert posted.status == 202, posted.body
    [run_id] = posted.body["runs_started"]
    # The run goes on in the background once the event is stored.
    wait_until(lambda: flowd.get(f"/v1/runs/{run_id}").body["status"] == "waiting", 10,
               "the run to wait")
    return created.body["id"], run_id


def test_a_run_is_drawn_on_its_graph_and_cancelled_from_the_page(page: Any, flowd: Any) -> None:
    workflow_id, run_id = _waiting_run(flowd)
    sign_in(page, flowd.key, f"#/workflows/{workflow_id}/runs/{run_id}")

    graph = page.locator(".run-detail .graph")
    node = lambda step: graph.locator(f'.graph-node[data-step-id="{step}"]')  # noqa: E731
    page.wait_for_selector('.run-detail .graph-node[data-step-id="pause"].state-waiting')
    for taken in ("trigger", "big", "vip"):
        assert "state-ok" in node(taken).get_attribute("class")
    untaken = node("regular").get_attribute("class")
    assert "state-" not in untaken
    # The condition's outcome and the wait's end are written under the nodes.
    assert "yes" in node("big").locator(".node-label").inner_text()
    assert "ends in" in node("pause").locator(".node-label").inner_text()
    assert "ends in" in page.locator(".run-facts").inner_text()
    # The path: trigger → big → vip → pause, and not big → regular.
    taken = page.locator(".run-detail path.edge.taken")
    pairs = {(p.get_attribute("data-from"), p.get_attribute("data-to")) for p in taken.all()}
    assert {("trigger", "big"), ("big", "vip"), ("vip", "pause")} <= pairs
    assert ("big", "regular") not in pairs

    # A node's visits: its resolved input as JSON text.
    node("vip").click()
    assert '"vip"' in page.locator(".run-step").inner_text()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_selector('.run-facts .badge.status-cancelled')
    assert flowd.get(f"/v1/runs/{run_id}").body["status"] == "cancelled"
    assert page.locator(f'.runs-tab-side tr[data-run="{run_id}"] .badge').inner_text() == "cancelled"
    # A cancelled run keeps its position and offers no more actions.
    assert page.locator(".run-actions button").count() == 0


def test_the_runs_list_filters_by_status_in_the_address(page: Any, flowd: Any,
                                                       viewer_key: str) -> None:
    workflow_id, run_id = _waiting_run(flowd)
    sign_in(page, viewer_key, f"#/runs?workflow_id={workflow_id}")
    row = page.locator(f'tr[data-run="{run_id}"]')
    row.wait_for()
    assert row.locator(".badge").inner_text() == "waiting"
    link = row.get_by_role("link", name=run_id)
    assert link.get_attribute("href") == f"#/workflows/{workflow_id}/runs/{run_id}"

    page.get_by_label("Status").select_option("completed")
    page.wait_for_url("**status=completed**")
    page.wait_for_selector("text=No runs match.")
    page.reload()
    page.wait_for_selector("text=No runs match.")
    assert page.get_by_label("Status").input_value() == "completed"

    page.get_by_label("Status").select_option("waiting")
    row.wait_for()
    listed = flowd.get(f"/v1/runs?workflow_id={workflow_id}&status=waiting").body["data"]
    assert [r["id"] for r in listed] == [run_id]
    assert page.locator("tbody tr").count() == 1

    # The row leads to the run on its graph, where a viewer may look but not act.
    link.click()
    page.wait_for_selector('.run-detail .graph-node[data-step-id="pause"].state-waiting')
    assert page.get_by_role("button", name="Cancel run").is_disabled()
    assert flowd.get(f"/v1/runs/{run_id}").body["status"] == "waiting"


def _run_of(flowd: Any, steps: list[dict[str, Any]]) -> tuple[str, str]:
    """An active workflow of `steps` (manual trigger) and one run fired on it."""
    created = flowd.post("/v1/workflows", {"name": unique("Runs actions"), "status": "active",
                                           "trigger": {"type": "manual"}, "steps": steps})
    assert created.status == 201, created.body
    fired = flowd.post(f"/v1/workflows/{created.body['id']}/runs",
                       {"contact_id": f"u_{secrets.token_hex(3)}"})
    assert fired.status == 201, fired.body
    return created.body["id"], fired.body["id"]


def test_an_approval_is_decided_and_a_failed_run_retried_from_the_page(page: Any,
                                                                      flowd: Any) -> None:
    workflow_id, run_id = _run_of(flowd, [
        {"id": "ask", "type": "approval", "config": {"message": "Refund 40 EUR?"},
         "next": {"approved": "yes", "rejected": None}},
        {"id": "yes", "type": "set", "config": {"vars": {"refunded": True}}, "next": None}])
    wait_until(lambda: flowd.get(f"/v1/runs/{run_id}").body["status"] == "waiting", 10,
               "the run to wait for its approval")
    sign_in(page, flowd.key, f"#/workflows/{workflow_id}/runs/{run_id}")
    page.click('.run-actions [data-action="approve"]')
    wait_until(lambda: flowd.get(f"/v1/runs/{run_id}").body["status"] == "completed", 10,
               "the approved run to complete")
    run = flowd.get(f"/v1/runs/{run_id}").body
    assert run["vars"] == {"refunded": True}
    assert run["steps"][0]["output"]["decided_by"].startswith("key:")
    page.wait_for_selector('.run-detail .graph-node[data-step-id="yes"].state-ok')

    # A run that failed because the child workflow it names does not exist yet goes on once
    # the child exists, retried from the page.
    child = unique("Refund child")
    workflow_id, run_id = _run_of(flowd, [
        {"id": "child", "type": "run_workflow", "config": {"workflow": child, "wait": False},
         "next": None}])
    wait_until(lambda: flowd.get(f"/v1/runs/{run_id}").body["status"] == "failed", 10,
               "the run to fail")
    created = flowd.post("/v1/workflows", {"name": child, "status": "active",
                                           "trigger": {"type": "manual"},
                                           "steps": [{"id": "s", "type": "exit"}]})
    assert created.status == 201, created.body
    page.goto(f"/#/workflows/{workflow_id}/runs/{run_id}")
    page.click('.run-actions [data-action="retry"]')
    wait_until(lambda: flowd.get(f"/v1/runs/{run_id}").body["status"] == "completed", 10,
               "the retried run to complete")
    page.wait_for_selector('.run-detail .graph-node[data-step-id="child"].state-ok')
