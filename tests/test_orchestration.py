"""Child workflows, loops and emitted events, through the API on a real server."""

from __future__ import annotations

import dataclasses
from typing import Any

from flowd.app import create_app
from tests.conftest import ADMIN_KEY, Api, eventually, make_config

CHILD = {"name": "child", "trigger": {"type": "manual"}, "steps": [
    {"id": "double", "type": "set",
     "config": {"vars": {"doubled": "{{ event.properties.n }}{{ event.properties.n }}",
                         "contact": "{{ run.contact_id }}", "parent": "{{ run.parent_run_id }}"}}},
]}


def parent_flow(child_ref: str, **config: Any) -> dict[str, Any]:
    return {"name": "parent", "trigger": {"type": "manual"}, "steps": [
        {"id": "call", "type": "run_workflow",
         "config": {"workflow": child_ref, "input": {"n": "{{ event.properties.n }}"}, **config},
         "next": {"completed": "after", "failed": "broken"}},
        {"id": "after", "type": "set",
         "config": {"vars": {"got": "{{ steps.call.vars.doubled }}"}}, "next": None},
        {"id": "broken", "type": "set", "config": {"vars": {"got": "failed"}}, "next": None},
    ]}


async def fire(api, workflow: dict[str, Any], payload: dict[str, Any] | None = None,
               contact: str | None = "c1") -> dict[str, Any]:
    status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs",
                                 json={"contact_id": contact, "payload": payload or {}})
    assert status == 201, run
    return run


async def test_a_parent_waits_for_its_child_and_gets_its_vars(api):
    await api.workflow(CHILD)
    parent = await api.workflow(parent_flow("child"))
    run = await fire(api, parent, {"n": 21})
    done = await api.run_until(run["id"], "completed")
    assert done["vars"]["got"] == "2121"
    call = done["steps"][0]
    assert call["branch"] == "completed"
    child_id = call["output"]["run_id"]
    assert call["output"]["status"] == "completed"
    assert done["child_runs"] == [{"id": child_id, "workflow_id": call["output"]["workflow_id"],
                                   "status": "completed", "created_at": done["child_runs"][0][
                                       "created_at"],
                                   "completed_at": done["child_runs"][0]["completed_at"]}]
    child = await api.run(child_id)
    assert child["parent_run_id"] == run["id"] and child["contact_id"] == "c1"
    assert child["vars"] == {"doubled": "2121", "contact": "c1", "parent": run["id"]}
    assert child["trigger"]["type"] == "workflow" and child["trigger"]["depth"] == 1
    assert child["trigger"]["event"]["properties"] == {"n": 21}


async def test_a_failed_child_takes_the_failed_branch(api):
    await api.workflow({"name": "child", "trigger": {"type": "manual"}, "steps": [
        {"id": "boom", "type": "run_workflow", "config": {"workflow": "no such workflow"}}]})
    parent = await api.workflow(parent_flow("child"))
    run = await fire(api, parent, {"n": 1})
    done = await api.run_until(run["id"], "completed")
    assert done["vars"]["got"] == "failed"
    assert done["steps"][0]["output"]["status"] == "failed"
    assert done["steps"][0]["output"]["error"]["code"]


async def test_wait_false_starts_the_child_and_goes_on(api):
    child_wf = await api.workflow({"name": "slow", "trigger": {"type": "manual"}, "steps": [
        {"id": "w", "type": "wait", "config": {"duration": "P1D"}}]})
    parent = await api.workflow({"name": "p", "trigger": {"type": "manual"}, "steps": [
        {"id": "call", "type": "run_workflow", "config": {"workflow": child_wf["id"],
                                                          "wait": False}},
        {"id": "after", "type": "set", "config": {"vars": {"child": "{{ steps.call.run_id }}"}}},
    ]})
    run = await fire(api, parent)
    done = await api.run_until(run["id"], "completed")
    child = await api.run_until(done["vars"]["child"], "waiting")
    assert child["parent_run_id"] == run["id"]


async def test_cancelling_a_parent_cancels_the_child_it_waits_for(api):
    await api.workflow({"name": "slow", "trigger": {"type": "manual"}, "steps": [
        {"id": "w", "type": "wait", "config": {"duration": "P1D"}}]})
    parent = await api.workflow(parent_flow("slow"))
    run = await fire(api, parent)
    waiting = await api.run_until(run["id"], "waiting")
    assert waiting["wait"]["kind"] == "child"
    child_id = waiting["wait"]["child_run_id"]
    await api.run_until(child_id, "waiting")
    status, _ = await api.post(f"/v1/runs/{run['id']}/cancel")
    assert status == 200
    assert (await api.run(child_id))["status"] == "cancelled"


async def test_cancelling_a_child_wakes_its_parent_along_failed(api):
    await api.workflow({"name": "slow", "trigger": {"type": "manual"}, "steps": [
        {"id": "w", "type": "wait", "config": {"duration": "P1D"}}]})
    parent = await api.workflow(parent_flow("slow"))
    run = await fire(api, parent)
    waiting = await api.run_until(run["id"], "waiting")
    await api.post(f"/v1/runs/{waiting['wait']['child_run_id']}/cancel")
    done = await api.run_until(run["id"], "completed")
    assert done["vars"]["got"] == "failed"
    assert done["steps"][0]["output"]["status"] == "cancelled"


async def test_an_unknown_workflow_fails_the_step(api):
    parent = await api.workflow(parent_flow("nope"))
    run = await fire(api, parent)
    failed = await api.run_until(run["id"], "failed")
    assert failed["error"]["code"] == "unknown_workflow"


async def test_recursion_stops_at_depth_ten(api):
    status, wf = await api.post("/v1/workflows", json={
        "name": "rec", "trigger": {"type": "manual"}, "steps": [
            {"id": "again", "type": "run_workflow", "config": {"workflow": "rec"}}]})
    status, wf = await api.post(f"/v1/workflows/{wf['id']}/activate")
    assert status == 200, wf
    run = await fire(api, wf)

    async def deepest() -> dict[str, Any] | None:
        status, page = await api.get(f"/v1/runs?workflow_id={wf['id']}&status=failed")
        return page["data"][0] if page["data"] else None

    failed = await eventually(deepest)
    assert failed["error"]["code"] == "depth_exceeded"
    assert failed["trigger"]["depth"] == 10
    # Every run above it wakes along `failed`, which this definition does not map: they end.
    top = await api.run_until(run["id"], "completed")
    assert top["steps"][0]["output"]["status"] in ("failed", "completed")


async def test_a_loop_visits_each_item_with_loop_item_and_index(api):
    flow = {"name": "loop", "trigger": {"type": "manual"}, "steps": [
        {"id": "each_item", "type": "loop", "config": {"items": "{{ event.properties.items }}"},
         "next": {"each": "collect", "done": "finish"}},
        {"id": "collect", "type": "set",
         "config": {"vars": {"seen_{{ loop.index }}": "{{ loop.item.sku }}#{{ loop.index }}"}},
         "next": "each_item"},
        {"id": "finish", "type": "set",
         "config": {"vars": {"count": "{{ steps.each_item.iterations }}"}}, "next": None},
    ]}
    status, wf = await api.post("/v1/workflows", json={**flow, "status": "active"})
    if status != 201:   # keys of vars may not be templates: fall back to a list
        raise AssertionError(wf)
    run = await fire(api, wf, {"items": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]})
    done = await api.run_until(run["id"], "completed")
    assert done["vars"]["count"] == 3
    visits = [e for e in done["steps"] if e["step_id"] == "each_item"]
    assert [e["branch"] for e in visits] == ["each", "each", "each", "done"]
    assert [e["output"].get("index") for e in visits[:3]] == [0, 1, 2]
    assert visits[-1]["output"] == {"iterations": 3}
    # The trace keeps the list's length, not the list again at every visit.
    assert {e["input"]["items"] for e in visits} == {"[3 items]"}
    collects = [e["input"] for e in done["steps"] if e["step_id"] == "collect"]
    assert [list(c["vars"].values())[0] for c in collects] == ["a#0", "b#1", "c#2"]


LOOP_OVER = {"name": "loop", "trigger": {"type": "manual"}, "steps": [
    {"id": "l", "type": "loop",
     "config": {"items": "{{ event.properties.items }}", "max_items": 3},
     "next": {"each": "body", "done": None}},
    {"id": "body", "type": "set", "config": {"vars": {"last": "{{ loop.item }}"}}, "next": "l"},
]}


async def test_a_loop_passes_validation_and_an_empty_list_is_done_at_once(api):
    wf = await api.workflow(LOOP_OVER)
    assert not [i for i in wf["issues"] if i["severity"] == "error"]
    run = await fire(api, wf, {"items": []})
    done = await api.run_until(run["id"], "completed")
    assert [e["branch"] for e in done["steps"]] == ["done"]


async def test_too_many_items_fail_the_step_never_truncate(api):
    wf = await api.workflow(LOOP_OVER)
    run = await fire(api, wf, {"items": [1, 2, 3, 4]})
    failed = await api.run_until(run["id"], "failed")
    assert failed["error"]["code"] == "too_many_items"
    run = await fire(api, wf, {"items": "not a list"}, contact="c2")
    failed = await api.run_until(run["id"], "failed")
    assert failed["error"]["code"] == "invalid_items"


async def test_nested_loops_see_their_own_item(api):
    flow = {"name": "nested", "trigger": {"type": "manual"}, "steps": [
        {"id": "rows", "type": "loop", "config": {"items": [[1, 2], [3]]},
         "next": {"each": "cells", "done": None}},
        {"id": "cells", "type": "loop", "config": {"items": "{{ loop.item }}"},
         "next": {"each": "cell", "done": "rows"}},
        {"id": "cell", "type": "set",
         "config": {"vars": {"last": "{{ loop.item }}"}}, "next": "cells"},
    ]}
    wf = await api.workflow(flow)
    assert not [i for i in wf["issues"] if i["severity"] == "error"], wf["issues"]
    run = await fire(api, wf)
    done = await api.run_until(run["id"], "completed")
    cells = [e["input"]["vars"]["last"] for e in done["steps"] if e["step_id"] == "cell"]
    assert cells == [1, 2, 3]


async def test_a_cycle_without_a_loop_or_wait_is_still_an_error(api):
    status, wf = await api.post("/v1/workflows", json={"name": "spin", "steps": [
        {"id": "a", "type": "set", "config": {"vars": {"x": 1}}, "next": "b"},
        {"id": "b", "type": "set", "config": {"vars": {"x": 2}}, "next": "a"}]})
    assert any(i["code"] == "cycle_without_wait" for i in wf["issues"])


async def test_an_emitted_event_triggers_other_workflows_and_is_stored(api):
    listener = await api.workflow({"name": "listener",
                                   "trigger": {"type": "event", "event": "order.escalated"},
                                   "steps": [{"id": "s", "type": "set", "config": {
                                       "vars": {"level": "{{ event.properties.level }}"}}}]})
    emitter = await api.workflow({"name": "emitter", "trigger": {"type": "manual"}, "steps": [
        {"id": "emit", "type": "emit_event",
         "config": {"name": "order.escalated", "properties": {"level": 2}}}]})
    run = await fire(api, emitter)
    done = await api.run_until(run["id"], "completed")
    output = done["steps"][0]["output"]
    assert output["name"] == "order.escalated" and output["event_id"].startswith("evt_")
    [started] = output["runs_started"]
    child = await api.run_until(started, "completed")
    assert child["workflow_id"] == listener["id"]
    assert child["vars"] == {"level": 2} and child["trigger"]["depth"] == 1
    status, events = await api.get("/v1/events?name=order.escalated")
    assert [e["id"] for e in events["data"]] == [output["event_id"]]
    assert events["data"][0]["contact_id"] == "c1"


async def test_an_emitted_event_resumes_a_waiting_run(api):
    waiter = await api.workflow({"name": "waiter", "trigger": {"type": "manual"}, "steps": [
        {"id": "w", "type": "wait_for_event", "config": {"event": "ping", "timeout": "P1D"}}]})
    emitter = await api.workflow({"name": "emitter", "trigger": {"type": "manual"}, "steps": [
        {"id": "emit", "type": "emit_event", "config": {"name": "ping"}}]})
    waiting = await fire(api, waiter)
    await api.run_until(waiting["id"], "waiting")
    run = await fire(api, emitter)
    done = await api.run_until(run["id"], "completed")
    assert done["steps"][0]["output"]["runs_resumed"] == [waiting["id"]]
    await api.run_until(waiting["id"], "completed")


async def test_workflows_emitting_to_each_other_stop_at_depth_ten(api):
    await api.workflow({"name": "ping", "trigger": {"type": "event", "event": "ping"},
                        "settings": {"reentry": "always"},
                        "steps": [{"id": "e", "type": "emit_event", "config": {"name": "ping"}}]})
    await api.send("ping", "c1")

    async def stopped() -> dict[str, Any] | None:
        status, page = await api.get("/v1/runs?status=failed")
        return page["data"][0] if page["data"] else None

    failed = await eventually(stopped)
    assert failed["error"]["code"] == "depth_exceeded"
    assert failed["trigger"]["depth"] == 10
    status, page = await api.get("/v1/runs?limit=100")
    assert len(page["data"]) == 11


async def test_the_step_limit_still_stops_a_loop(aiohttp_client, tmp_path):
    config = make_config(tmp_path)
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine,
                                                                    max_steps_per_run=20))
    api = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
    wf = await api.workflow({**LOOP_OVER, "steps": [
        {**LOOP_OVER["steps"][0], "config": {"items": "{{ event.properties.items }}"}},
        LOOP_OVER["steps"][1]]})
    run = await fire(api, wf, {"items": list(range(50))})
    failed = await api.run_until(run["id"], "failed")
    assert failed["error"]["code"] == "step_limit"
    assert len(failed["steps"]) == 20
