"""Bulk runs: one workflow fired for many contacts as a job — approval, exact counts, reentry per
contact, cancel while running, a restart in the middle, and every refusal."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from flowd.api.middleware import SERVICES
from flowd.app import create_app
from tests.conftest import ADMIN_KEY, Api, eventually
from tests.test_api_input import assert_error

WAITS = {"steps": [{"id": "w", "type": "wait", "config": {"duration": "P1D"}}]}


async def runs_of(api: Api, workflow_id: str) -> list[Any]:
    """Every run of the workflow, straight from the store (the API pages 100 at a time)."""
    store = api.app[SERVICES].store
    page = await store.read(lambda tx: tx.runs.page("default", workflow_id=workflow_id,
                                                    status=None, contact_id=None, before=None,
                                                    limit=1_000_000))
    return page.items


async def job_until(api: Api, job_id: str, *statuses: str, timeout: float = 30.0) -> dict:
    async def check() -> dict | None:
        status, job = await api.get(f"/v1/bulk-jobs/{job_id}")
        assert status == 200, job
        return job if job["status"] in statuses else None
    return await eventually(check, timeout)


async def bulk(api: Api, workflow_id: str, **body: Any) -> tuple[int, Any]:
    return await api.post(f"/v1/workflows/{workflow_id}/bulk-runs", json=body)


async def test_20000_contacts_wait_for_approval_then_all_start_with_exact_counts(api: Api):
    workflow = await api.workflow(WAITS)
    ids = [f"u{i}" for i in range(20_000)]
    status, job = await bulk(api, workflow["id"], contact_ids=ids + ids[:50],
                             payload={"campaign": "spring"}, require_approval=True)
    assert status == 201, job
    assert job["id"].startswith("job_") and job["status"] == "approval"
    assert (job["total"], job["started"], job["skipped"]) == (20_000, 0, 0)
    assert job["workflow_id"] == workflow["id"] and job["finished_at"] is None
    # Nothing starts before the approval, however long it takes.
    await asyncio.sleep(0.3)
    status, waiting = await api.get(f"/v1/bulk-jobs/{job['id']}")
    assert status == 200 and waiting["status"] == "approval" and waiting["started"] == 0
    assert await runs_of(api, workflow["id"]) == []

    began = time.monotonic()
    status, approved = await api.patch(f"/v1/bulk-jobs/{job['id']}", json={"action": "approve"})
    assert status == 200 and approved["status"] == "running"
    # 20,000 runs take ~25 s alone on two cores; a loaded machine (the suite's other worker)
    # may need several times that: this deadline only catches a job that never finishes.
    done = await job_until(api, job["id"], "finished", timeout=180.0)
    elapsed = time.monotonic() - began
    print(f"\n20,000 contacts enrolled in {elapsed:.2f} s ({20_000 / elapsed:,.0f}/s)")
    assert (done["started"], done["skipped"], done["total"]) == (20_000, 0, 20_000)
    assert done["finished_at"] is not None and done["error"] is None
    runs = await runs_of(api, workflow["id"])
    assert Counter(run.contact_id for run in runs) == Counter(ids)   # one run per contact
    assert runs[0].trigger["type"] == "bulk" and runs[0].trigger["job_id"] == job["id"]
    assert runs[0].trigger["event"]["properties"] == {"campaign": "spring"}
    # The runs really go: one of them reaches its wait.
    await api.run_until(runs[0].id, "waiting")


async def test_reentry_applies_per_contact_and_kept_out_contacts_count_as_skipped(api: Api):
    workflow = await api.workflow(WAITS)   # reentry after_completion (the default)
    fire = f"/v1/workflows/{workflow['id']}/runs"
    for contact_id in ("u1", "u3"):
        status, _ = await api.post(fire, json={"contact_id": contact_id})
        assert status == 201
    status, job = await bulk(api, workflow["id"], contact_ids=["u0", "u1", "u2", "u3", "u4"])
    assert status == 201 and job["status"] == "running"
    done = await job_until(api, job["id"], "finished")
    assert (done["started"], done["skipped"], done["total"]) == (3, 2, 5)
    runs = await runs_of(api, workflow["id"])
    assert sorted(Counter(run.contact_id for run in runs).items()) == [
        ("u0", 1), ("u1", 1), ("u2", 1), ("u3", 1), ("u4", 1)]

    # reentry once: everyone who ever had a run is kept out; `always` starts everyone again.
    once = await api.workflow({**WAITS, "settings": {"reentry": "once"}})
    await api.post(f"/v1/workflows/{once['id']}/runs", json={"contact_id": "u1"})
    await api.post(f"/v1/runs/{(await runs_of(api, once['id']))[0].id}/cancel")
    _, job = await bulk(api, once["id"], contact_ids=["u1", "u2"])
    done = await job_until(api, job["id"], "finished")
    assert (done["started"], done["skipped"]) == (1, 1)
    always = await api.workflow({**WAITS, "settings": {"reentry": "always"}})
    for _ in range(2):
        _, job = await bulk(api, always["id"], contact_ids=["u1", "u2"])
        done = await job_until(api, job["id"], "finished")
        assert (done["started"], done["skipped"]) == (2, 0)


async def test_cancel_while_running_stops_the_rest_and_keeps_what_started(api: Api):
    workflow = await api.workflow(WAITS)
    ids = [f"c{i}" for i in range(50_000)]
    status, job = await bulk(api, workflow["id"], contact_ids=ids)
    assert status == 201 and job["status"] == "running"

    async def some_started() -> dict | None:
        _, seen = await api.get(f"/v1/bulk-jobs/{job['id']}")
        return seen if seen["started"] > 0 else None
    await eventually(some_started, timeout=20, interval=0.005)
    status, cancelled = await api.patch(f"/v1/bulk-jobs/{job['id']}", json={"action": "cancel"})
    assert status == 200 and cancelled["status"] == "cancelled", cancelled
    assert 0 < cancelled["started"] < 50_000 and cancelled["finished_at"] is not None
    # Nothing starts after the cancel was answered: counts and runs stay where they were.
    await asyncio.sleep(0.3)
    _, later = await api.get(f"/v1/bulk-jobs/{job['id']}")
    assert later == cancelled
    runs = await runs_of(api, workflow["id"])
    assert len(runs) == cancelled["started"]
    assert {run.contact_id for run in runs} == set(ids[:len(runs)])   # a prefix, in order
    assert all(run.status.value != "cancelled" for run in runs)       # started runs stay
    # Cancelling again changes nothing; approving or cancelling a finished job is a conflict.
    assert await api.patch(f"/v1/bulk-jobs/{job['id']}", json={"action": "cancel"}) == (
        200, cancelled)
    status, error = await api.patch(f"/v1/bulk-jobs/{job['id']}", json={"action": "approve"})
    assert_error(status, error, 409, "conflict")


async def test_a_running_job_resumes_after_a_restart_with_exact_counts(aiohttp_client, config):
    client = await aiohttp_client(create_app(config, admin_key=ADMIN_KEY))
    api = Api(client)
    workflow = await api.workflow(WAITS)
    ids = [f"r{i}" for i in range(3_000)]
    _, job = await bulk(api, workflow["id"], contact_ids=ids, require_approval=True)
    # The server's processor stops; the job is approved and two chunks are done by hand, as
    # if the server went down after committing them.
    processor = api.app[SERVICES].bulk_processor
    await processor.stop()
    status, _ = await api.patch(f"/v1/bulk-jobs/{job['id']}", json={"action": "approve"})
    assert status == 200
    for _ in range(2):
        await processor.process_chunk(job["id"])
    _, halfway = await api.get(f"/v1/bulk-jobs/{job['id']}")
    assert (halfway["status"], halfway["started"]) == ("running", 1_000)
    await client.close()

    api = Api(await aiohttp_client(create_app(config, admin_key=ADMIN_KEY)))
    done = await job_until(api, job["id"], "finished")
    assert (done["started"], done["skipped"], done["total"]) == (3_000, 0, 3_000)
    runs = await runs_of(api, workflow["id"])
    assert Counter(run.contact_id for run in runs) == Counter(ids)


async def test_a_workflow_that_stops_running_fails_its_job(api: Api):
    workflow = await api.workflow(WAITS)
    _, job = await bulk(api, workflow["id"], contact_ids=["a", "b"], require_approval=True)
    status, _ = await api.post(f"/v1/workflows/{workflow['id']}/deactivate")
    assert status == 200
    await api.patch(f"/v1/bulk-jobs/{job['id']}", json={"action": "approve"})
    failed = await job_until(api, job["id"], "failed")
    assert failed["error"]["code"] == "workflow_not_running"
    assert "draft" in failed["error"]["message"] and failed["started"] == 0
    assert await runs_of(api, workflow["id"]) == []
    status, error = await api.patch(f"/v1/bulk-jobs/{job['id']}", json={"action": "cancel"})
    assert_error(status, error, 409, "conflict")


async def test_a_workflow_deactivated_mid_job_fails_it_after_the_chunks_done(api: Api):
    workflow = await api.workflow(WAITS)
    processor = api.app[SERVICES].bulk_processor
    await processor.stop()   # chunks by hand, so the deactivation falls between two of them
    _, job = await bulk(api, workflow["id"], contact_ids=[f"m{i}" for i in range(1_200)])
    await processor.process_chunk(job["id"])
    await api.post(f"/v1/workflows/{workflow['id']}/deactivate")
    await processor.process_chunk(job["id"])
    _, failed = await api.get(f"/v1/bulk-jobs/{job['id']}")
    assert (failed["status"], failed["started"], failed["skipped"]) == ("failed", 500, 0)
    assert "after 500 of 1200 contacts" in failed["error"]["message"]
    assert len(await runs_of(api, workflow["id"])) == 500


async def test_a_paused_workflow_gets_paused_runs(api: Api):
    workflow = await api.workflow(WAITS)
    await api.post(f"/v1/workflows/{workflow['id']}/pause")
    _, job = await bulk(api, workflow["id"], contact_ids=["p1", "p2"])
    done = await job_until(api, job["id"], "finished")
    assert done["started"] == 2
    assert {run.status.value for run in await runs_of(api, workflow["id"])} == {"paused"}


async def test_refusals(api: Api):
    workflow = await api.workflow(WAITS)
    path = f"/v1/workflows/{workflow['id']}/bulk-runs"
    for body, where in [
        ({}, ""),
        ({"audience": "aud_1", "contact_ids": ["a"]}, ""),
        ({"contact_ids": []}, "contact_ids"),
        ({"contact_ids": ["ok", "tab\there"]}, "contact_ids[1]"),
        ({"contact_ids": ["x" * 201]}, "contact_ids[0]"),
        ({"contact_ids": "a"}, "contact_ids"),
        ({"contact_ids": ["a"] * 100_001}, "contact_ids"),
        ({"contact_ids": ["a"], "payload": [1]}, "payload"),
        ({"contact_ids": ["a"], "require_approval": "yes"}, "require_approval"),
        ({"contact_ids": ["a"], "extra": 1}, "extra"),
    ]:
        status, error = await api.post(path, json=body)
        assert_error(status, error, 422, "validation_error")
        assert where in {d["path"] for d in error["error"]["details"]}, (body, error)
    status, error = await api.post(path, json={"audience": "aud_1"})
    assert_error(status, error, 422, "validation_error")
    assert error["error"]["details"][0]["code"] == "unknown_audience"
    assert "no audience has the id or name 'aud_1'" in error["error"]["message"]

    status, error = await api.post("/v1/workflows/wf_nope/bulk-runs", json={"contact_ids": ["a"]})
    assert_error(status, error, 404, "not_found")
    draft = await api.workflow(WAITS, activate=False)
    status, error = await bulk(api, draft["id"], contact_ids=["a"])
    assert_error(status, error, 409, "conflict")
    for method, body in (("GET", None), ("PATCH", {"action": "cancel"})):
        status, error = await api.request(method, "/v1/bulk-jobs/job_nope", json=body)
        assert_error(status, error, 404, "not_found")
    status, error = await api.get("/v1/workflows/wf_nope/bulk-jobs")
    assert_error(status, error, 404, "not_found")

    _, job = await bulk(api, workflow["id"], contact_ids=["a"], require_approval=True)
    for body in ({}, {"action": "start"}, {"action": "approve", "total": "x", "zz": 1}):
        status, error = await api.patch(f"/v1/bulk-jobs/{job['id']}", json=body)
        assert_error(status, error, 422, "validation_error")
    # GET → PATCH: the job's own fields come along and are ignored.
    status, approved = await api.patch(f"/v1/bulk-jobs/{job['id']}",
                                       json={**job, "action": "approve"})
    assert status == 200 and approved["status"] == "running"
    done = await job_until(api, job["id"], "finished")
    for action in ("approve", "cancel"):
        status, error = await api.patch(f"/v1/bulk-jobs/{job['id']}", json={"action": action})
        assert_error(status, error, 409, "conflict")
    assert (await api.get(f"/v1/bulk-jobs/{job['id']}"))[1] == done


async def test_roles_and_the_list(api: Api):
    workflow = await api.workflow(WAITS)
    viewer, editor = await api.new_key("viewer"), await api.new_key("editor")
    status, error = await api.post(f"/v1/workflows/{workflow['id']}/bulk-runs",
                                   json={"contact_ids": ["a"]}, key=viewer)
    assert_error(status, error, 403, "forbidden")
    status, first = await api.post(f"/v1/workflows/{workflow['id']}/bulk-runs",
                                   json={"contact_ids": ["a"], "require_approval": True},
                                   key=editor)
    assert status == 201
    status, error = await api.patch(f"/v1/bulk-jobs/{first['id']}", json={"action": "approve"},
                                    key=viewer)
    assert_error(status, error, 403, "forbidden")
    status, second = await api.post(f"/v1/workflows/{workflow['id']}/bulk-runs",
                                    json={"contact_ids": ["b"]}, key=editor)
    status, seen = await api.get(f"/v1/bulk-jobs/{first['id']}", key=viewer)
    assert status == 200 and seen["status"] == "approval"
    status, page = await api.get(f"/v1/workflows/{workflow['id']}/bulk-jobs?limit=1", key=viewer)
    assert status == 200 and [j["id"] for j in page["data"]] == [second["id"]]
    status, rest = await api.get(f"/v1/workflows/{workflow['id']}/bulk-jobs?limit=1&cursor="
                                 f"{page['next_cursor']}")
    assert [j["id"] for j in rest["data"]] == [first["id"]] and rest["next_cursor"] is None
