"""GET /v1/workflows counts each listed workflow's active and failed runs."""

from __future__ import annotations

from tests.conftest import Api

WAITING = {"trigger": {"type": "manual"},
           "steps": [{"id": "w", "type": "wait", "config": {"duration": "PT1H"}}]}
FAILING = {"trigger": {"type": "manual"},
           "steps": [{"id": "call", "type": "http_request",
                      "config": {"url": "http://127.0.0.1:1/"}}]}


async def fire(api: Api, workflow_id: str, contact: str) -> str:
    status, body = await api.post(f"/v1/workflows/{workflow_id}/runs",
                                  json={"contact_id": contact})
    assert status in (200, 201, 202), body
    return body["run_id"] if "run_id" in body else body["id"]


async def test_each_listed_workflow_counts_its_active_and_failed_runs(api: Api):
    waiting = await api.workflow({**WAITING, "name": "waits"})
    failing = await api.workflow({**FAILING, "name": "fails"})
    idle = await api.workflow({**WAITING, "name": "idle"})
    first = await fire(api, waiting["id"], "u1")
    await fire(api, waiting["id"], "u2")
    third = await fire(api, waiting["id"], "u3")
    for run_id in (first, third):
        await api.run_until(run_id, "waiting")
    status, _ = await api.post(f"/v1/runs/{third}/cancel")
    assert status == 200
    await api.run_until(await fire(api, failing["id"], "u1"), "failed")
    await api.run_until(await fire(api, failing["id"], "u2"), "failed")

    status, body = await api.get("/v1/workflows")
    assert status == 200
    counts = {item["name"]: item["runs"] for item in body["data"]}
    assert counts == {"waits": {"active": 2, "failed": 0}, "fails": {"active": 0, "failed": 2},
                      "idle": {"active": 0, "failed": 0}}
    status, page = await api.get("/v1/workflows?limit=1")
    assert [item["runs"] for item in page["data"]] == [{"active": 0, "failed": 0}]
    assert page["data"][0]["id"] == idle["id"]


async def test_the_counts_are_documented_in_the_summary_shape(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    summary = doc["components"]["schemas"]["WorkflowSummary"]
    assert summary["properties"]["runs"] == {"$ref": "#/components/schemas/WorkflowRunCounts"}
    counts = doc["components"]["schemas"]["WorkflowRunCounts"]
    assert counts["required"] == ["active", "failed"]
