"""POST /v1/workflows/{id}/migrate: waiting runs move to a newer version and go on there;
a dry run changes nothing; unmapped steps are reported; bad versions and maps are refused."""

from __future__ import annotations

from typing import Any

import flowd.run_migration
from tests.conftest import Api, eventually

V1 = {
    "trigger": {"type": "manual"},
    "steps": [
        {"id": "hold", "type": "wait_for_event", "config": {"event": "go"},
         "next": {"event": "after"}},
        {"id": "after", "type": "set", "config": {"vars": {"path": "v1"}}},
        {"id": "park", "type": "wait_for_event", "config": {"event": "never"}, "next": None},
    ],
}
V2 = {
    "name": "test", "trigger": {"type": "manual"},
    "steps": [
        {"id": "hold2", "type": "wait_for_event", "config": {"event": "go"},
         "next": {"event": "after2"}},
        {"id": "after2", "type": "set", "config": {"vars": {"path": "v2"}}, "next": None},
        # Same id as v1's park, another type: no default mapping.
        {"id": "park", "type": "wait", "config": {"duration": "P1D"}, "next": None},
    ],
}


async def _setup(api: Api) -> tuple[dict[str, Any], list[str], str]:
    workflow = await api.workflow(V1)
    runs = []
    for contact in ("u1", "u2", "u3"):
        status, run = await api.post(f"/v1/workflows/{workflow['id']}/runs",
                                     json={"contact_id": contact})
        assert status == 201, run
        runs.append(run["id"])
        await api.run_until(run["id"], "waiting")
    await api.send("go", "u3")                       # u3 goes on to wait at `park`

    async def parked() -> bool:
        return (await api.run(runs[2]))["current_step_id"] == "park"
    await api.run_until(runs[2], "waiting")
    await eventually(parked)
    status, _ = await api.put(f"/v1/workflows/{workflow['id']}", json=V2)
    assert status == 200
    return workflow, runs[:2], runs[2]


async def test_a_dry_run_counts_and_changes_nothing(api: Api):
    workflow, held, parked = await _setup(api)
    before = [await api.run(r) for r in (*held, parked)]
    status, result = await api.post(f"/v1/workflows/{workflow['id']}/migrate", json={
        "from_version": 1, "to_version": 2, "step_map": {"hold": "hold2"}, "dry_run": True})
    assert status == 200, result
    assert result["runs"] == 3 and result["moved"] == 2
    assert result["unmapped"] == [{"step_id": "park", "runs": 1}]
    assert result["step_map"] == {"hold": "hold2"} and result["dry_run"] is True
    assert [await api.run(r) for r in (*held, parked)] == before


async def test_moved_runs_go_on_with_the_new_versions_steps(api: Api, monkeypatch):
    monkeypatch.setattr(flowd.run_migration, "CHUNK", 1)   # one transaction per run
    workflow, held, parked = await _setup(api)
    editor = await api.new_key("editor")
    status, result = await api.post(f"/v1/workflows/{workflow['id']}/migrate", key=editor, json={
        "from_version": 1, "to_version": 2, "step_map": {"hold": "hold2"}})
    assert status == 200, result
    assert result == {"runs": 3, "moved": 2, "unmapped": [{"step_id": "park", "runs": 1}],
                      "step_map": {"hold": "hold2"}, "dry_run": False}
    for run_id in held:
        run = await api.run(run_id)
        assert (run["workflow_version"], run["current_step_id"], run["status"]) == (
            2, "hold2", "waiting")
        assert run["wait"]["kind"] == "event" and run["wait"]["event"] == "go"
    stayed = await api.run(parked)
    assert (stayed["workflow_version"], stayed["current_step_id"]) == (1, "park")

    await api.send("go", "u1")                       # the event wait still holds
    done = await api.run_until(held[0], "completed")
    assert done["vars"] == {"path": "v2"}
    assert [(s["step_id"], s["status"], s["branch"]) for s in done["steps"]] == [
        ("hold2", "ok", "event"), ("after2", "ok", None)]

    _, stats = await api.get(f"/v1/workflows/{workflow['id']}/stats")
    by_step = {s["step_id"]: s for s in stats["steps"]}
    assert by_step["hold2"]["entered"] == 2 and by_step["hold2"]["waiting"] == 1

    status, again = await api.post(f"/v1/workflows/{workflow['id']}/migrate", json={
        "from_version": 1, "to_version": 2, "step_map": {"hold": "hold2"}})
    assert (again["runs"], again["moved"]) == (1, 0)


async def test_same_id_and_type_is_the_default_mapping(api: Api):
    workflow = await api.workflow(V1)
    _, run = await api.post(f"/v1/workflows/{workflow['id']}/runs", json={"contact_id": "u1"})
    await api.run_until(run["id"], "waiting")
    renamed_after = {**V1, "name": "test", "steps": [
        V1["steps"][0], {**V1["steps"][1], "config": {"vars": {"path": "new"}}},
        V1["steps"][2]]}
    await api.put(f"/v1/workflows/{workflow['id']}", json=renamed_after)
    status, result = await api.post(f"/v1/workflows/{workflow['id']}/migrate",
                                    json={"from_version": 1, "to_version": 2})
    assert status == 200 and result["moved"] == 1 and result["unmapped"] == []
    assert result["step_map"] == {"hold": "hold", "after": "after", "park": "park"}
    await api.send("go", "u1")
    moved = await api.run_until(run["id"], "waiting")   # now parked, having taken v2's path
    assert moved["vars"] == {"path": "new"} and moved["workflow_version"] == 2


async def test_bad_requests_are_refused(api: Api):
    workflow, _, _ = await _setup(api)
    url = f"/v1/workflows/{workflow['id']}/migrate"
    cases = [
        ({"from_version": 2, "to_version": 1}, 422),
        ({"from_version": 1, "to_version": 1}, 422),
        ({"from_version": 1, "to_version": 9}, 404),
        ({"from_version": 9, "to_version": 2}, 404),
        ({"from_version": 1, "to_version": 2, "step_map": {"hold": "after2"}}, 422),
        ({"from_version": 1, "to_version": 2, "step_map": {"nope": "hold2"}}, 422),
        ({"from_version": 1, "to_version": 2, "step_map": {"hold": "nope"}}, 422),
        ({"from_version": 1}, 422),
        ({"from_version": 1, "to_version": 2, "extra": 1}, 422),
    ]
    for body, expected in cases:
        status, error = await api.post(url, json=body)
        assert status == expected, (body, error)
    status, error = await api.post(url, json={"from_version": 1, "to_version": 2,
                                              "step_map": {"hold": "after2"}})
    assert error["error"]["details"][0]["path"] == "step_map.hold"
    status, _ = await api.post("/v1/workflows/wf_nope/migrate",
                               json={"from_version": 1, "to_version": 2})
    assert status == 404
    viewer = await api.new_key("viewer")
    status, _ = await api.post(url, key=viewer, json={"from_version": 1, "to_version": 2})
    assert status == 403
    _, run_page = await api.get(f"/v1/runs?workflow_id={workflow['id']}&status=waiting")
    assert {r["workflow_version"] for r in run_page["data"]} == {1}   # nothing moved
