"""The bad-input matrix: every kind of bad request gets the contract's error envelope with the
right status, code and path — and nothing is written."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from tests.conftest import Api


def assert_error(status: int, body: dict, want_status: int, code: str) -> None:
    assert status == want_status, body
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)


def paths(body: dict) -> set[str]:
    return {d["path"] for d in body["error"]["details"]}


async def event_count(api: Api) -> int:
    status, body = await api.get("/v1/events?limit=100")
    assert status == 200
    return len(body["data"])


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Bearer ", "Basic abc", "flowd_xyz"])
async def test_missing_or_garbage_key_is_401(api: Api, auth):
    headers = {"Authorization": auth} if auth is not None else {}
    status, body = await api.request("GET", "/v1/contacts", key=None, headers=headers)
    assert_error(status, body, 401, "unauthorized")


async def test_revoked_key_is_401(api: Api):
    key = await api.new_key("viewer")
    status, keys = await api.get("/v1/keys")
    key_id = next(k["id"] for k in keys["data"] if k["prefix"] == key[:len(k["prefix"])])
    assert (await api.get("/v1/me", key=key))[0] == 200
    status, _ = await api.delete(f"/v1/keys/{key_id}")
    assert status == 204
    status, body = await api.get("/v1/me", key=key)
    assert_error(status, body, 401, "unauthorized")


@pytest.mark.parametrize("role,method,path,body", [
    ("viewer", "POST", "/v1/events", {"name": "x"}),
    ("viewer", "PUT", "/v1/contacts/u1", {}),
    ("ingest", "GET", "/v1/contacts", None),
    ("ingest", "GET", "/v1/events", None),
    ("editor", "GET", "/v1/keys", None),
    ("editor", "POST", "/v1/keys", {"role": "admin"}),
    ("editor", "DELETE", "/v1/contacts/u1", None),
])
async def test_role_too_weak_is_403(api: Api, role, method, path, body):
    key = await api.new_key(role)
    status, resp = await api.request(method, path, key=key, json=body)
    assert_error(status, resp, 403, "forbidden")


@pytest.mark.parametrize("role", ["admin", "editor", "viewer", "ingest"])
async def test_me_answers_every_role(api: Api, role):
    key = await api.new_key(role)
    assert await api.get("/v1/me", key=key) == (200, {"project": "default", "role": role})


async def test_ingest_key_may_send_events_and_upsert_contacts(api: Api):
    key = await api.new_key("ingest")
    assert (await api.post("/v1/events", key=key, json={"name": "a"}))[0] == 202
    assert (await api.put("/v1/contacts/u1", key=key, json={"traits": {"a": 1}}))[0] == 201


async def test_another_projects_contact_is_404(api: Api, tmp_path, config):
    # A key of project "other", made the way an operator would: with the CLI.
    import contextlib
    import io

    from flowd.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["keys", "create", "--role", "admin", "--project", "other",
                     "--db", config.storage.path]) == 0
    other = out.getvalue().strip()
    assert (await api.get("/v1/me", key=other))[1] == {"project": "other", "role": "admin"}

    assert (await api.put("/v1/contacts/u1", json={"email": "a@example.com"}))[0] == 201
    status, body = await api.get("/v1/contacts/u1", key=other)
    assert_error(status, body, 404, "not_found")
    status, body = await api.delete("/v1/contacts/u1", key=other)
    assert_error(status, body, 404, "not_found")
    assert (await api.get("/v1/contacts", key=other))[1]["data"] == []
    assert (await api.get("/v1/events", key=other))[1]["data"] == []
    # Its own contact of the same id is a different contact.
    assert (await api.put("/v1/contacts/u1", key=other, json={}))[0] == 201
    assert (await api.get("/v1/contacts/u1"))[1]["email"] == "a@example.com"
    # Keys of another project are invisible and cannot be revoked from here.
    _, keys = await api.get("/v1/keys", key=other)
    other_id = keys["data"][0]["id"]
    status, body = await api.delete(f"/v1/keys/{other_id}")
    assert_error(status, body, 404, "not_found")


# A number too large for a float (1e400) is JSON, but would be stored as Infinity, which
# SQLite's JSON functions cannot read back.
@pytest.mark.parametrize("raw", [b"{", b"{'name': 'x'}", b"", b"NaN", b'{"name": NaN}',
                                 b'{"name": "x", "properties": {"n": 1e400}}',
                                 b'{"name": "x", "contact_id": "c", "contact": {"traits": {"n": -1E999}}}',
                                 b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000])
async def test_malformed_json_is_400(api: Api, raw):
    status, body = await api.post("/v1/events", data=raw,
                                  headers={"Content-Type": "application/json"})
    assert_error(status, body, 400, "bad_request")
    assert await event_count(api) == 0


@pytest.mark.parametrize("raw", [
    rb'{"name": "a\ud800b"}', rb'{"name": "ok", "properties": {"k": "\udc00"}}',
    rb'{"batch": [{"name": "ok"}, {"name": "x", "properties": {"deep": ["\uDBFF"]}}]}',
    rb'{"name": "ok", "contact_id": "c1", "contact": {"traits": {"a": "\ud83d"}}}'])
async def test_unpaired_surrogate_escapes_are_400(api: Api, raw):
    """Half a UTF-16 pair is valid JSON syntax but no Unicode text; it could not be stored."""
    status, body = await api.post("/v1/events", data=raw,
                                  headers={"Content-Type": "application/json"})
    assert_error(status, body, 400, "bad_request")
    assert "surrogate" in body["error"]["message"]
    assert await event_count(api) == 0


async def test_an_escaped_surrogate_pair_is_the_character_it_encodes(api: Api):
    status, _ = await api.post("/v1/events", data=rb'{"name": "smile \ud83d\ude00"}',
                               headers={"Content-Type": "application/json"})
    assert status == 202
    _, page = await api.get("/v1/events")
    assert page["data"][0]["name"] == "smile \U0001F600"


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
async def test_json_that_is_not_an_object_is_400(api: Api, raw):
    status, body = await api.post("/v1/events", data=raw)
    assert_error(status, body, 400, "bad_request")


async def test_unknown_field_is_422_with_its_path(api: Api):
    status, body = await api.post("/v1/events", json={"name": "a", "nmae": "b"})
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {"nmae"}
    status, body = await api.put("/v1/contacts/u1", json={"email": "a@example.com", "admin": True})
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {"admin"}
    status, body = await api.post("/v1/events", json={"batch": [{"name": "a"}, {"name": "b", "x": 1}]})
    assert paths(body) == {"batch[1].x"}
    assert await event_count(api) == 0


async def test_wrong_types_are_422_with_a_path_per_problem(api: Api):
    status, body = await api.post("/v1/events", json={
        "name": 5, "properties": [], "contact_id": {"id": 1}, "contact": {"tags": ["ok", 3]}})
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {"name", "properties", "contact_id", "contact.tags[1]"}
    status, body = await api.put("/v1/contacts/u1", json={"traits": "vip", "subscribed": {"email": "no"}})
    assert paths(body) == {"traits", "subscribed.email"}
    assert (await api.get("/v1/contacts/u1"))[0] == 404


async def test_missing_required_field_is_422(api: Api):
    status, body = await api.post("/v1/events", json={"contact_id": "u1"})
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {"name"}
    status, body = await api.post("/v1/events", json={"name": "x", "contact": {"email": "a@example.com"}})
    assert paths(body) == {"contact_id"}
    status, body = await api.post("/v1/keys", json={"name": "no role"})
    assert paths(body) == {"role"}


@pytest.mark.parametrize("field,value", [
    ("timezone", "Mars/Olympus"), ("timezone", "../../etc/passwd"), ("timezone", ""),
    ("email", "not-an-email"), ("email", "a@b"), ("email", "two@@example.com"),
    ("phone", "call me"), ("tags", [""]),
])
async def test_bad_contact_values_are_422(api: Api, field, value):
    status, body = await api.put("/v1/contacts/u1", json={field: value})
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {field if field != "tags" else "tags[0]"}
    status, body = await api.post("/v1/events", json={"name": "x", "contact_id": "u1",
                                                      "contact": {field: value}})
    assert_error(status, body, 422, "validation_error")
    assert await event_count(api) == 0
    assert (await api.get("/v1/contacts/u1"))[0] == 404


@pytest.mark.parametrize("event,path", [
    ({"name": ""}, "name"), ({"name": "x" * 201}, "name"),
    ({"name": "x", "timestamp": "yesterday"}, "timestamp"),
    ({"name": "x", "timestamp": "2026-11-23T18:00:00"}, "timestamp"),
    ({"name": "x", "contact_id": ""}, "contact_id"),
    ({"name": "x", "contact_id": "u" * 201}, "contact_id"),
    ({"name": "x", "contact_id": "bad\nid"}, "contact_id"),
    ({"name": "x", "message_id": ""}, "message_id"),
])
async def test_bad_event_values_are_422(api: Api, event, path):
    status, body = await api.post("/v1/events", json=event)
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {path}


@pytest.mark.parametrize("timestamp", [
    "0001-01-01T00:00:00+01:00",        # an offset pushes it into year 0
    "9999-12-31T23:59:59.999-01:00",    # …or into year 10000
    "0000-01-01T00:00:00Z",
])
async def test_times_outside_0001_to_9999_are_422_with_the_range(api: Api, timestamp):
    status, body = await api.post("/v1/events", json={"name": "x", "timestamp": timestamp})
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {"timestamp"}
    assert "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z" in body["error"]["message"]
    assert await event_count(api) == 0


async def test_too_deeply_nested_properties_are_422(api: Api):
    nested: dict = {}
    for _ in range(40):
        nested = {"a": nested}
    status, body = await api.post("/v1/events", json={"name": "x", "properties": nested})
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {"properties"}


async def test_body_over_one_mib_is_413_and_exactly_one_mib_is_not(api: Api):
    filler = "x" * (1024 * 1024)
    template = '{"name": "big", "properties": {"p": "%s"}}'
    exact = (template % filler[: 1024 * 1024 - len(template % "")]).encode()
    assert len(exact) == 1024 * 1024
    status, body = await api.post("/v1/events", data=exact)
    assert status == 202, body
    status, body = await api.post("/v1/events", data=exact + b" ")
    assert_error(status, body, 413, "payload_too_large")
    assert await event_count(api) == 1


async def test_batch_of_1001_is_rejected_and_1000_accepted(api: Api):
    status, body = await api.post("/v1/events", json={"batch": [{"name": "e"}] * 1001})
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {"batch"}
    assert await event_count(api) == 0
    status, body = await api.post("/v1/events", json={"batch": [{"name": f"e{i}"} for i in range(1000)]})
    assert status == 202
    assert len(body["data"]) == 1000 and len({r["id"] for r in body["data"]}) == 1000


async def test_empty_batch_is_422(api: Api):
    status, body = await api.post("/v1/events", json={"batch": []})
    assert_error(status, body, 422, "validation_error")


async def test_one_bad_event_rejects_the_whole_batch(api: Api):
    status, body = await api.post("/v1/events", json={"batch": [
        {"name": "ok", "contact_id": "u1"}, {"name": "bad", "timestamp": "nope"}]})
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {"batch[1].timestamp"}
    assert await event_count(api) == 0
    assert (await api.get("/v1/contacts/u1"))[0] == 404


@pytest.mark.parametrize("query,path", [("limit=0", "limit"), ("limit=101", "limit"),
                                        ("limit=ten", "limit"), ("cursor=garbage!", "cursor")])
async def test_bad_list_parameters_are_422(api: Api, query, path):
    status, body = await api.get(f"/v1/events?{query}")
    assert_error(status, body, 422, "validation_error")
    assert paths(body) == {path}


async def test_unknown_route_and_method_use_the_envelope(api: Api):
    status, body = await api.get("/v1/nothing-here")
    assert_error(status, body, 404, "not_found")
    status, body = await api.request("PATCH", "/v1/events", json={})
    assert_error(status, body, 405, "method_not_allowed")


async def test_every_response_carries_a_request_id(api: Api):
    ids = set()
    for _ in range(3):
        async with api.client.get("/healthz") as resp:
            assert len(resp.headers["X-Request-Id"]) >= 8
            ids.add(resp.headers["X-Request-Id"])
    assert len(ids) == 3   # each its own
    async with api.client.get("/v1/me", headers={"X-Request-Id": "trace-123"}) as resp:
        assert resp.status == 401
        assert resp.headers["X-Request-Id"] == "trace-123"


async def test_an_unexpected_failure_is_a_500_without_a_traceback(api: Api, config, caplog):
    # Break the real database underneath the server: its SQL error must not reach the client.
    with sqlite3.connect(config.storage.path) as conn:
        conn.execute("DROP TABLE events")
    async with api.client.get("/v1/events", headers={"Authorization": f"Bearer {api.key}"}) as resp:
        body = await resp.json()
        request_id = resp.headers["X-Request-Id"]
    assert_error(resp.status, body, 500, "internal")
    assert "no such table" not in str(body) and "Traceback" not in str(body)
    assert request_id in body["error"]["message"]
    # The server's own fault: logged at ERROR with its traceback, unlike a client's faults.
    [record] = [r for r in caplog.records if request_id in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "no such table" in str(record.exc_info[1])
