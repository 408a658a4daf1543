"""Events: ingest, the contact upsert in the same transaction, de-duplication, listing."""

from __future__ import annotations

import asyncio

import pytest

from flowd.store.sqlite.paging import BULK_ROWS
from tests.conftest import Api


async def test_event_with_unknown_contact_creates_it(api: Api):
    status, result = await api.post("/v1/events", json={"name": "user.signed_up", "contact_id": "u1"})
    assert status == 202
    assert result["id"].startswith("evt_") and result["duplicate"] is False
    assert result["runs_started"] == [] and result["runs_resumed"] == []
    status, contact = await api.get("/v1/contacts/u1")
    assert status == 200 and contact["traits"] == {} and contact["email"] is None


async def test_event_contact_upsert_applies_with_the_event(api: Api):
    await api.put("/v1/contacts/u1", json={"traits": {"plan": "free", "seats": 1}})
    status, _ = await api.post("/v1/events", json={
        "name": "plan.changed", "contact_id": "u1", "properties": {"to": "pro"},
        "contact": {"email": "ada@example.com", "traits": {"plan": "pro"}}})
    assert status == 202
    _, contact = await api.get("/v1/contacts/u1")
    assert contact["email"] == "ada@example.com"
    assert contact["traits"] == {"plan": "pro", "seats": 1}


async def test_stored_event_fields(api: Api):
    await api.post("/v1/events", json={
        "name": "order.completed", "contact_id": "u1", "properties": {"amount": 42.5, "items": [1, 2]},
        "timestamp": "2026-11-23T19:00:00.123+01:00", "message_id": "m-1"})
    _, page = await api.get("/v1/events")
    [event] = page["data"]
    assert event["name"] == "order.completed" and event["contact_id"] == "u1"
    assert event["properties"] == {"amount": 42.5, "items": [1, 2]}
    assert event["timestamp"] == "2026-11-23T18:00:00.123Z"
    assert event["message_id"] == "m-1" and event["received_at"].endswith("Z")


@pytest.mark.parametrize("tricky", [
    'quote " backslash \\ tab \t newline \n é 字 🙂 end',
    "a NUL \u0000 inside",   # SQLite's JSON functions would cut the text there
])
@pytest.mark.parametrize("fillers", [0, BULK_ROWS])   # bound rows, then one JSON statement
async def test_a_batch_stores_every_field_exactly_and_in_order(api: Api, tricky: str,
                                                               fillers: int):
    """A batch's events are inserted by one statement when there are many (their rows travel
    as JSON inside SQLite): text, numbers and nesting come back exactly as sent. Names and ids
    may not hold control characters (the identifier rule), so the trickiest text travels in the
    properties, keys included."""
    printable = 'quote " backslash \\ é 字 🙂'
    sent = [
        {"name": printable, "contact_id": printable, "message_id": printable + " m",
         "properties": {"big": 2 ** 62, "huge": 10 ** 30, "float": 0.1, "neg": -1e-300,
                        tricky: tricky,
                        "nested": {"list": [None, True, False, "", {"k": tricky}]}}},
        {"name": "no.contact", "properties": {}},
        {"name": "with.time", "contact_id": "u'1", "timestamp": "2026-11-23T18:00:00Z"},
    ] + [{"name": "filler", "contact_id": f"f{i}"} for i in range(fillers)]
    status, body = await api.post("/v1/events", json={"batch": sent})
    assert status == 202
    _, page = await api.get("/v1/events?limit=100")
    stored = list(reversed(page["data"]))
    assert [e["id"] for e in stored] == [r["id"] for r in body["data"]]
    assert stored[0]["name"] == printable and stored[0]["message_id"] == printable + " m"
    assert stored[0]["contact_id"] == printable
    assert stored[0]["properties"] == sent[0]["properties"]
    assert stored[1]["contact_id"] is None and stored[1]["properties"] == {}
    assert stored[2]["timestamp"] == "2026-11-23T18:00:00.000Z"
    _, contacts = await api.get("/v1/contacts?limit=100")
    assert {c["id"] for c in contacts["data"]} == {printable, "u'1"} | {
        f"f{i}" for i in range(fillers)}


@pytest.mark.parametrize("sent,stored", [
    ("0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00.000Z"),   # the wire form comes back as is
    ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),       # …with the milliseconds written
    ("0999-12-31T23:59:59.999Z", "0999-12-31T23:59:59.999Z"),
    ("1000-01-01T00:59:59+01:00", "0999-12-31T23:59:59.000Z"),
])
async def test_timestamps_at_both_ends_of_the_range_come_back_with_four_digit_years(
        api: Api, sent: str, stored: str):
    status, body = await api.post("/v1/events", json={"name": "old", "timestamp": sent})
    assert status == 202, body
    async with api.client.get("/v1/events", headers={"Authorization": f"Bearer {api.key}"}) as resp:
        raw = await resp.text()
    assert f'"{stored}"' in raw, raw   # byte for byte, not only after parsing
    _, page = await api.get("/v1/events")
    [event] = page["data"]
    assert event["id"] == body["id"] and event["timestamp"] == stored


async def test_duplicate_message_id_returns_the_first_result_and_is_stored_once(api: Api):
    first = await api.post("/v1/events", json={"name": "a", "contact_id": "u1", "message_id": "m1"})
    again = await api.post("/v1/events", json={"name": "a", "contact_id": "u1", "message_id": "m1",
                                               "contact": {"email": "late@example.com"}})
    assert first[0] == again[0] == 202
    assert again[1] == {**first[1], "duplicate": True}
    _, page = await api.get("/v1/events")
    assert len(page["data"]) == 1
    # A duplicate is a replay: its contact upsert is not applied either.
    assert (await api.get("/v1/contacts/u1"))[1]["email"] is None


async def test_duplicates_inside_one_batch_and_across_concurrent_requests(api: Api):
    status, body = await api.post("/v1/events", json={"batch": [
        {"name": "a", "message_id": "x"}, {"name": "a", "message_id": "x"}, {"name": "b"}]})
    assert status == 202
    first, dup, other = body["data"]
    assert dup == {**first, "duplicate": True} and other["id"] != first["id"]

    results = await asyncio.gather(*[
        api.post("/v1/events", json={"name": "c", "message_id": "same"}) for _ in range(20)])
    assert {r[0] for r in results} == {202}
    assert len({r[1]["id"] for r in results}) == 1
    assert sum(not r[1]["duplicate"] for r in results) == 1
    _, page = await api.get("/v1/events?name=c")
    assert len(page["data"]) == 1


async def test_message_ids_are_scoped_per_project(api: Api, config):
    import contextlib
    import io

    from flowd.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["keys", "create", "--role", "ingest", "--project", "p2", "--db", config.storage.path])
    mine = await api.post("/v1/events", json={"name": "a", "message_id": "m"})
    theirs = await api.post("/v1/events", key=out.getvalue().strip(), json={"name": "a", "message_id": "m"})
    assert theirs[1]["duplicate"] is False and theirs[1]["id"] != mine[1]["id"]


async def test_list_filters_and_pages(api: Api):
    batch = [{"name": "view" if i % 3 else "buy", "contact_id": f"u{i % 2}"} for i in range(12)]
    _, body = await api.post("/v1/events", json={"batch": batch})
    ids = [r["id"] for r in body["data"]]
    _, page = await api.get("/v1/events?limit=5")
    seen = [e["id"] for e in page["data"]]
    while page["next_cursor"]:
        _, page = await api.get(f"/v1/events?limit=5&cursor={page['next_cursor']}")
        seen += [e["id"] for e in page["data"]]
    assert seen == list(reversed(ids))
    _, buys = await api.get("/v1/events?name=buy")
    assert len(buys["data"]) == 4
    _, u1_buys = await api.get("/v1/events?name=buy&contact_id=u1")
    assert {e["contact_id"] for e in u1_buys["data"]} == {"u1"} and len(u1_buys["data"]) == 2
