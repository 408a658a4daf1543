"""Orchestration across `kill -9`: a subprocess server is killed at a chosen moment and
restarted on the same database file.

- A parent waits for a child whose timer comes due while the server is down: after the
  restart the child ends, and its final unit wakes the parent exactly once (one child run, one
  trace entry for the parent's `run_workflow` step, one visit of the step after it).
- A loop whose body calls a webhook is killed while an iteration's delivery is in flight:
  after the restart every item is delivered, none skipped, the in-flight one at least once
  (with the same `webhook-id`), and every iteration is in the trace exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Iterator

import pytest

from tests.e2e.conftest import ServerProcess, wait_until
from tests.e2e.test_engine_crash import GatedSink

ENV = {"FLOWD_HTTP_ALLOW_PRIVATE_NETWORKS": "true"}
ITEMS = 30
ANSWERED_BEFORE_KILL = 10


def _create(server: ServerProcess, definition: dict[str, Any]) -> dict[str, Any]:
    response = server.post("/v1/workflows", {**definition, "status": "active"})
    assert response.status == 201, response.body
    return response.body


def _fire(server: ServerProcess, workflow_id: str, payload: dict[str, Any]) -> str:
    response = server.post(f"/v1/workflows/{workflow_id}/runs",
                           {"contact_id": "c1", "payload": payload})
    assert response.status == 201, response.body
    return response.body["id"]


def _run(server: ServerProcess, run_id: str) -> dict[str, Any]:
    response = server.get(f"/v1/runs/{run_id}")
    assert response.status == 200, response.body
    return response.body


def _status_is(server: ServerProcess, run_id: str, *statuses: str) -> Callable[[], bool]:
    return lambda: _run(server, run_id)["status"] in statuses


def test_a_child_ending_after_a_crash_wakes_its_parent_exactly_once(
        start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(env=ENV, log_name="before-kill.log")
    _create(server, {"name": "child", "trigger": {"type": "manual"}, "steps": [
        {"id": "nap", "type": "wait", "config": {"duration": "PT1.5S"}},
        {"id": "mark", "type": "set", "config": {"vars": {"done": True}}}]})
    parent = _create(server, {"name": "parent", "trigger": {"type": "manual"}, "steps": [
        {"id": "call", "type": "run_workflow", "config": {"workflow": "child"},
         "next": {"completed": "after", "failed": None}},
        {"id": "after", "type": "set", "config": {"vars": {"child_done": "{{ steps.call.vars.done }}"}}}]})
    parent_id = _fire(server, parent["id"], {})
    wait_until(_status_is(server, parent_id, "waiting"), 10, "the parent waits for its child")
    child_id = _run(server, parent_id)["wait"]["child_run_id"]
    wait_until(_status_is(server, child_id, "waiting"), 10, "the child waits at its timer")
    server.kill9()
    time.sleep(2.0)   # the child's timer comes due while nothing runs

    restarted = start_server(admin_key=server.key, db=server.db, env=ENV,
                             log_name="after-restart.log")
    wait_until(_status_is(restarted, parent_id, "completed", "failed"), 30,
               "the parent completes after the restart")
    parent_run = _run(restarted, parent_id)
    assert parent_run["status"] == "completed", parent_run
    assert parent_run["vars"] == {"child_done": True}
    steps = Counter(entry["step_id"] for entry in parent_run["steps"])
    assert steps == {"call": 1, "after": 1}, parent_run["steps"]
    [call] = [e for e in parent_run["steps"] if e["step_id"] == "call"]
    assert call["status"] == "ok" and call["branch"] == "completed"
    assert call["output"]["run_id"] == child_id
    assert [c["id"] for c in parent_run["child_runs"]] == [child_id]
    assert _run(restarted, child_id)["status"] == "completed"


@pytest.fixture
def gated() -> Iterator[GatedSink]:
    recorder = GatedSink(answer_first=ANSWERED_BEFORE_KILL).start()
    yield recorder
    recorder.stop()


def test_a_loop_killed_mid_iteration_processes_every_item(
        start_server: Callable[..., ServerProcess], gated: GatedSink) -> None:
    server = start_server(env=ENV, log_name="before-kill.log")
    workflow = _create(server, {"name": "loop", "trigger": {"type": "manual"}, "steps": [
        {"id": "items", "type": "loop", "config": {"items": "{{ event.properties.items }}"},
         "next": {"each": "deliver", "done": None}},
        # The sink holds deliveries of "step": "first" beyond the first ANSWERED_BEFORE_KILL.
        {"id": "deliver", "type": "webhook",
         "config": {"url": gated.url, "timeout": "PT60S",
                    "body": {"step": "first", "item": "{{ loop.item }}",
                             "index": "{{ loop.index }}"}},
         "next": "items"}]})
    run_id = _fire(server, workflow["id"], {"items": [f"item-{i}" for i in range(ITEMS)]})
    wait_until(lambda: gated.counts()[1] >= 1, 15, "a delivery held in flight")
    server.kill9()
    gated.drop_held()

    restarted = start_server(admin_key=server.key, db=server.db, env=ENV,
                             log_name="after-restart.log")
    wait_until(_status_is(restarted, run_id, "completed", "failed"), 30,
               "the loop completes after the restart")
    run = _run(restarted, run_id)
    assert run["status"] == "completed", run

    delivered = Counter(r["body"]["index"] for r in gated.snapshot())
    assert set(delivered) == set(range(ITEMS)), "an item was skipped"
    in_flight = ANSWERED_BEFORE_KILL   # the index held when the server died
    assert delivered[in_flight] >= 1
    assert all(delivered[i] == 1 for i in range(ITEMS) if i != in_flight), delivered
    ids = {r["headers"]["webhook-id"] for r in gated.snapshot() if r["body"]["index"] == in_flight}
    assert len(ids) == 1, "a re-delivery carries the same webhook-id"

    loop_visits = [e for e in run["steps"] if e["step_id"] == "items"]
    assert [e["output"].get("index") for e in loop_visits[:-1]] == list(range(ITEMS))
    assert loop_visits[-1]["output"] == {"iterations": ITEMS}
    bodies = [e for e in run["steps"] if e["step_id"] == "deliver" and e["status"] == "ok"]
    assert [e["input"]["body"]["index"] for e in bodies] == list(range(ITEMS))
