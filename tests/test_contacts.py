"""Contacts: the upsert rules, reads, listing with filters and pagination, deletion."""

from __future__ import annotations

from tests.conftest import Api


async def test_upsert_creates_then_updates_with_merge_rules(api: Api):
    status, created = await api.put("/v1/contacts/u1", json={
        "email": "ada@example.com", "timezone": "Europe/Berlin", "traits": {"plan": "free", "age": 36},
        "tags": ["beta"]})
    assert status == 201
    assert created["id"] == "u1" and created["subscribed"] == {"email": True, "sms": True, "push": True}
    assert created["created_at"].endswith("Z")

    status, updated = await api.put("/v1/contacts/u1", json={
        "traits": {"plan": "pro", "age": None, "seats": 5}, "tags": ["vip"], "phone": "+4915112345678",
        "subscribed": {"sms": False}})
    assert status == 200
    assert updated["traits"] == {"plan": "pro", "seats": 5}  # merged; null deleted a trait
    assert updated["tags"] == ["vip"]                         # replaced
    assert updated["email"] == "ada@example.com"              # untouched
    assert updated["subscribed"] == {"email": True, "sms": False, "push": True}
    assert updated["created_at"] == created["created_at"]

    status, cleared = await api.put("/v1/contacts/u1", json={"email": None})
    assert status == 200 and cleared["email"] is None
    assert await api.get("/v1/contacts/u1") == (200, cleared)


async def test_get_then_put_round_trips_read_only_fields(api: Api):
    _, contact = await api.put("/v1/contacts/u1", json={"traits": {"a": 1}})
    contact["traits"]["b"] = 2
    status, again = await api.put("/v1/contacts/u1", json=contact)
    assert status == 200, again
    assert again["traits"] == {"a": 1, "b": 2}


async def test_contact_ids_are_the_callers_own_strings(api: Api):
    for contact_id in ["user@example.com", "ünïcode-ид", "with space", "a" * 200]:
        status, body = await api.put(f"/v1/contacts/{contact_id}", json={})
        assert status == 201, (contact_id, body)
        assert (await api.get(f"/v1/contacts/{contact_id}"))[1]["id"] == contact_id


async def test_list_filters_by_email_and_tag_and_pages_newest_first(api: Api):
    for i in range(7):
        await api.put(f"/v1/contacts/c{i}", json={
            "email": f"c{i}@example.com", "tags": ["even"] if i % 2 == 0 else ["odd"]})
    status, page = await api.get("/v1/contacts?limit=3")
    assert status == 200
    seen = [c["id"] for c in page["data"]]
    while page["next_cursor"]:
        _, page = await api.get(f"/v1/contacts?limit=3&cursor={page['next_cursor']}")
        seen += [c["id"] for c in page["data"]]
    assert seen == [f"c{i}" for i in reversed(range(7))]

    _, by_email = await api.get("/v1/contacts?email=c3@example.com")
    assert [c["id"] for c in by_email["data"]] == ["c3"]
    _, by_tag = await api.get("/v1/contacts?tag=even")
    assert [c["id"] for c in by_tag["data"]] == ["c6", "c4", "c2", "c0"]


async def test_delete_removes_the_contact(api: Api):
    await api.put("/v1/contacts/u1", json={"email": "gone@example.com"})
    status, _ = await api.delete("/v1/contacts/u1")
    assert status == 204
    assert (await api.get("/v1/contacts/u1"))[0] == 404
    assert (await api.get("/v1/contacts?email=gone@example.com"))[1]["data"] == []
    assert (await api.delete("/v1/contacts/u1"))[0] == 404
