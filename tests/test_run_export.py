"""GET /v1/workflows/{id}/runs/export: one streamed JSON download of a workflow's runs with
their traces — the shape, the filters, the errors, and that a large export streams in flat
memory."""

from __future__ import annotations

import asyncio
import json
import logging
import tracemalloc
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from flowd.api import run_export
from flowd.api.middleware import SERVICES
from flowd.app import create_app
from flowd.errors import Unavailable
from flowd.ids import new_id
from flowd.store.records import Run, RunStatus, TraceEntry, WorkflowStatus
from flowd.store.sqlite.runs import SqliteRuns
from tests.conftest import ADMIN_KEY, Api, eventually
from tests.test_api_input import assert_error

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
WAITS = {"steps": [{"id": "v", "type": "set", "config": {"vars": {"plan": "pro"}}},
                   {"id": "w", "type": "wait", "config": {"duration": "P1D"}}]}
T0 = 1_800_000_000_000


def export_path(workflow_id: str, query: str = "") -> str:
    return f"/v1/workflows/{workflow_id}/runs/export" + (f"?{query}" if query else "")


async def export(api: Api, workflow_id: str, query: str = "") -> dict[str, Any]:
    status, body = await api.get(export_path(workflow_id, query))
    assert status == 200, body
    return body


async def fired(api: Api, workflow_id: str, contacts: list[str]) -> list[str]:
    run_ids = []
    for contact_id in contacts:
        status, run = await api.post(f"/v1/workflows/{workflow_id}/runs",
                                     json={"contact_id": contact_id, "payload": {"n": 1}})
        assert status == 201, run
        run_ids.append(run["id"])
    for run_id in run_ids:
        await api.run_until(run_id, "waiting")
    return run_ids


async def bulk_runs(store: Any, count: int) -> tuple[str, list[str]]:
    """A draft workflow (nothing fires) and `count` completed runs of it with two trace entries
    each, written straight through the store in one unit."""
    workflow = await store.write(lambda tx: tx.workflows.create(
        project_id="default", name="bulk", description="", status=WorkflowStatus.DRAFT,
        definition={"trigger": {"type": "manual"}, "settings": {}, "steps": []}, issues=[],
        now=T0))
    runs, traces = [], []
    for i in range(count):
        at = T0 + i
        run = Run(id=new_id("run", at), project_id="default", workflow_id=workflow.id,
                  workflow_version=1, contact_id=f"user-{i}", status=RunStatus.COMPLETED,
                  current_step_id="w", trigger={"type": "api", "event": {"properties": {
                      "order": i, "note": "a note of some length " * 3}}},
                  created_at=at, updated_at=at + 10, vars={"plan": "pro", "i": i},
                  steps_executed=2, trace_len=2, completed_at=at + 10)
        runs.append(run)
        traces.append((run.id, TraceEntry(1, "v", "set", "ok", 1, 1, at, at + 1,
                                          input={"vars": {"plan": "pro"}},
                                          output={"plan": "pro"})))
        traces.append((run.id, TraceEntry(2, "w", "wait", "ok", 1, 1, at + 1, at + 10,
                                          outcome="waited", input={"duration": "P1D"},
                                          output={"waited_ms": 9})))

    def unit(tx: Any) -> None:
        tx.runs.insert(runs)
        for run_id, entry in traces:
            tx.runs.write_trace(run_id, entry)

    await store.write(unit)
    return workflow.id, [run.id for run in runs]


async def test_the_export_shows_every_run_as_get_shows_it_and_is_a_download(api: Api):
    workflow = await api.workflow(WAITS)
    run_ids = await fired(api, workflow["id"], ["u1", "u2", "u3"])
    await api.post(f"/v1/runs/{run_ids[1]}/cancel")
    other = await api.workflow(WAITS)
    await fired(api, other["id"], ["u1"])

    async with api.client.get(export_path(workflow["id"]), headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.headers["Content-Disposition"] == (
            f'attachment; filename="{workflow["id"]}-runs.json"')
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.headers["X-Request-Id"]
        body = json.loads(await resp.read())
    assert list(body) == ["workflow", "exported_at", "run_count", "runs"]
    _, listed = await api.get("/v1/workflows")
    summary = next(w for w in listed["data"] if w["id"] == workflow["id"])
    # The export's head is the list's summary without the list's live run counts.
    assert body["workflow"] == {k: v for k, v in summary.items() if k != "runs"}
    assert body["exported_at"].endswith("Z")
    assert body["run_count"] == 3
    # Newest first, each exactly as GET /v1/runs/{id} shows it (its trace included).
    # As GET shows each run, less the child runs (each run's parent_run_id says as much).
    shown = [await api.run(run_id) for run_id in reversed(run_ids)]
    assert body["runs"] == [{k: v for k, v in run.items() if k != "child_runs"} for run in shown]
    assert [len(run["steps"]) for run in body["runs"]] == [2, 2, 2]


async def test_a_workflow_without_runs_exports_an_empty_list(api: Api):
    workflow = await api.workflow(WAITS, activate=False)
    body = await export(api, workflow["id"])
    assert body["run_count"] == 0 and body["runs"] == []


async def test_status_and_run_id_filter_the_runs_and_the_count(api: Api):
    workflow = await api.workflow(WAITS)
    run_ids = await fired(api, workflow["id"], ["u1", "u2", "u3"])
    await api.post(f"/v1/runs/{run_ids[0]}/cancel")
    other = await api.workflow(WAITS)
    [stranger] = await fired(api, other["id"], ["u1"])

    def ids(body: dict[str, Any]) -> list[str]:
        assert body["run_count"] == len(body["runs"])
        return [run["id"] for run in body["runs"]]

    assert ids(await export(api, workflow["id"], "status=cancelled")) == [run_ids[0]]
    assert ids(await export(api, workflow["id"], "status=waiting")) == run_ids[:0:-1]
    assert ids(await export(api, workflow["id"], "status=waiting,cancelled")) == run_ids[::-1]
    assert ids(await export(api, workflow["id"], "status=cancelled,cancelled")) == [run_ids[0]]
    assert ids(await export(api, workflow["id"], "status=completed")) == []
    assert ids(await export(api, workflow["id"], f"run_id={run_ids[1]}")) == [run_ids[1]]
    assert ids(await export(api, workflow["id"], f"run_id={run_ids[1]}&status=cancelled")) == []
    # A run of another workflow is not in this workflow's export.
    assert ids(await export(api, workflow["id"], f"run_id={stranger}")) == []


async def test_unknown_workflows_bad_filters_and_roles(api: Api):
    status, body = await api.get(export_path("wf_nope"))
    assert_error(status, body, 404, "not_found")
    # Another project's workflow is not revealed.
    store = api.app[SERVICES].store

    def theirs(tx: Any) -> Any:
        tx.keys.ensure_project("other", T0)
        return tx.workflows.create(
            project_id="other", name="theirs", description="", status=WorkflowStatus.DRAFT,
            definition={"trigger": {"type": "manual"}, "settings": {}, "steps": []}, issues=[],
            now=T0)

    foreign = await store.write(theirs)
    status, body = await api.get(export_path(foreign.id))
    assert_error(status, body, 404, "not_found")

    workflow = await api.workflow(WAITS, activate=False)
    for query in ("status=done", "status=", "status=waiting,", "status=Waiting",
                  "status=waiting;cancelled", "run_id="):
        status, body = await api.get(export_path(workflow["id"], query))
        assert_error(status, body, 422, "validation_error")
        assert body["error"]["details"][0]["path"] in ("status", "run_id")

    status, body = await api.get(export_path(workflow["id"]), key=await api.new_key("viewer"))
    assert status == 200 and body["runs"] == []
    status, body = await api.get(export_path(workflow["id"]), key=await api.new_key("ingest"))
    assert_error(status, body, 403, "forbidden")
    status, body = await api.get(export_path(workflow["id"]), key=None)
    assert_error(status, body, 401, "unauthorized")


async def test_a_large_export_arrives_whole(api: Api):
    workflow_id, run_ids = await bulk_runs(api.app[SERVICES].store, 20_000)
    chunks = 0
    raw = bytearray()
    async with api.client.get(export_path(workflow_id), headers=AUTH) as resp:
        assert resp.status == 200
        async for data, _ in resp.content.iter_chunks():
            raw += data
            chunks += 1
    body = json.loads(raw)
    assert chunks > 1
    assert body["run_count"] == 20_000
    assert [run["id"] for run in body["runs"]] == run_ids[::-1]
    assert all(len(run["steps"]) == 2 for run in body["runs"])
    last = await api.run(run_ids[0])
    assert body["runs"][-1] == {k: v for k, v in last.items() if k != "child_runs"}


async def test_streaming_a_large_export_takes_far_less_memory_than_the_document(api: Api):
    workflow_id, _ = await bulk_runs(api.app[SERVICES].store, 20_000)
    size = 0
    tracemalloc.start()
    try:
        async with api.client.get(export_path(workflow_id), headers=AUTH) as resp:
            assert resp.status == 200
            async for data in resp.content.iter_any():
                size += len(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 10_000_000   # the document is big…
    assert peak < size / 5, (peak, size)   # …and never held whole, by the server or the client


@pytest.mark.parametrize("cancels", [True, False], ids=["handler_cancelled", "write_fails"])
async def test_a_client_that_hangs_up_stops_the_export(config, cancels, caplog, monkeypatch):
    # aiohttp's test server cancels a handler whose client hangs up; the server flowd runs
    # does not (its next write fails): both must stop the export.
    runner = web.AppRunner(create_app(config, admin_key=ADMIN_KEY), handler_cancellation=cancels)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = "http://127.0.0.1:%d" % runner.addresses[0][1]
        store = runner.app[SERVICES].store
        workflow_id, _ = await bulk_runs(store, 20_000)
        reads = 0
        read = store.read

        async def counted(query: Any, *args: Any) -> Any:
            nonlocal reads
            reads += 1
            return await read(query, *args)

        monkeypatch.setattr(store, "read", counted)
        monkeypatch.setattr(run_export, "PAGE_RUNS", 20)   # 1,000 pages
        caplog.set_level(logging.INFO, logger="flowd.api")
        async with aiohttp.ClientSession() as session:
            resp = await session.get(base + export_path(workflow_id), headers=AUTH)
            assert resp.status == 200
            await resp.content.readany()
            resp.close()   # hang up mid-stream

            await eventually(lambda: _true("the client closed the connection" in caplog.text))
            stopped_at = reads
            await asyncio.sleep(0.2)
            assert reads == stopped_at < 500   # it stopped reading pages, well before the end
            # Nothing was left held: reads and the server go on.
            async with session.get(base + export_path(workflow_id, "status=failed"),
                                   headers=AUTH) as again:
                assert again.status == 200 and (await again.json())["runs"] == []
    finally:
        await runner.cleanup()


async def _true(value: bool) -> bool:
    return value


def fail_page(monkeypatch: Any, number: int) -> None:
    """The export's `number`th page read (1: the first) fails as a busy database does."""
    original = SqliteRuns.export_page
    calls = 0

    def export_page(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == number:
            raise Unavailable("the database is busy")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SqliteRuns, "export_page", export_page)


async def test_a_failure_before_the_first_byte_has_the_error_body(api: Api, monkeypatch):
    workflow_id, _ = await bulk_runs(api.app[SERVICES].store, 10)
    # The first page is read before the headers go out: its failure is a plain 503.
    fail_page(monkeypatch, 1)
    status, body = await api.get(export_path(workflow_id))
    assert_error(status, body, 503, "unavailable")


async def test_a_failure_after_the_first_byte_cuts_the_connection(api: Api, monkeypatch, caplog):
    workflow_id, _ = await bulk_runs(api.app[SERVICES].store, 100)
    monkeypatch.setattr(run_export, "PAGE_RUNS", 10)
    fail_page(monkeypatch, 2)
    with pytest.raises(aiohttp.ClientPayloadError):
        async with api.client.get(export_path(workflow_id), headers=AUTH) as resp:
            assert resp.status == 200
            await resp.read()
    assert "failed after its headers were sent" in caplog.text


async def test_the_export_is_documented_as_a_download(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    operation = doc["paths"]["/v1/workflows/{id}/runs/export"]["get"]
    ok = operation["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RunExport"}
    assert "attachment" in ok["headers"]["Content-Disposition"]["description"]
    export_schema = doc["components"]["schemas"]["RunExport"]
    assert export_schema["required"] == ["workflow", "exported_at", "run_count", "runs"]
    assert export_schema["properties"]["runs"]["items"] == {
        "$ref": "#/components/schemas/RunWithTrace"}
    assert {p["name"] for p in operation["parameters"]} == {"id", "status", "run_id"}
    assert {"401", "403", "404", "422", "503"} <= set(operation["responses"])
    assert "run_count" in operation["description"]
