"""Revoking keys through the API, and why a project's last active admin key cannot be revoked:
without it nobody could make or revoke the project's keys through the API again."""

from __future__ import annotations

import asyncio
import contextlib
import io

from flowd.cli import main
from tests.conftest import ADMIN_KEY, Api

LAST_ADMIN_MESSAGE = "this is the project's last active admin key; create another admin key first"


async def key_id_of(api: Api, key: str, *, caller: str = "") -> str:
    """The id of `key`, found in its project's listing by its prefix."""
    status, page = await api.get("/v1/keys", key=caller or key)
    assert status == 200, page
    [key_id] = [k["id"] for k in page["data"] if key.startswith(k["prefix"])]
    return key_id


async def active_admin_ids(api: Api, caller: str) -> set[str]:
    _, page = await api.get("/v1/keys", key=caller)
    return {k["id"] for k in page["data"] if k["role"] == "admin"}


def create_key_with_cli(db_path: str, role: str, project: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["keys", "create", "--role", role, "--project", project, "--db", db_path]) == 0
    return out.getvalue().strip()


def assert_last_admin_conflict(status: int, body: dict) -> None:
    assert status == 409, body
    assert body == {"error": {"code": "conflict", "message": LAST_ADMIN_MESSAGE, "details": []}}


async def test_the_only_admin_key_cannot_be_revoked_and_keeps_working(api: Api):
    admin_id = await key_id_of(api, ADMIN_KEY)
    status, body = await api.delete(f"/v1/keys/{admin_id}")
    assert_last_admin_conflict(status, body)
    assert await api.get("/v1/me") == (200, {"project": "default", "role": "admin"})
    assert await active_admin_ids(api, ADMIN_KEY) == {admin_id}


async def test_of_two_admin_keys_one_can_be_revoked_then_the_other_cannot(api: Api):
    first_id = await key_id_of(api, ADMIN_KEY)
    second = await api.new_key("admin")
    second_id = await key_id_of(api, second)

    status, body = await api.delete(f"/v1/keys/{first_id}", key=second)
    assert status == 204, body
    assert (await api.get("/v1/me", key=ADMIN_KEY))[0] == 401

    status, body = await api.delete(f"/v1/keys/{second_id}", key=second)
    assert_last_admin_conflict(status, body)
    assert await api.get("/v1/me", key=second) == (200, {"project": "default", "role": "admin"})
    assert await active_admin_ids(api, second) == {second_id}


async def test_revoked_admin_keys_do_not_count(api: Api):
    spare_ids = [await key_id_of(api, await api.new_key("admin")) for _ in range(2)]
    for spare_id in spare_ids:
        assert (await api.delete(f"/v1/keys/{spare_id}"))[0] == 204
    status, body = await api.delete(f"/v1/keys/{await key_id_of(api, ADMIN_KEY)}")
    assert_last_admin_conflict(status, body)


async def test_other_keys_can_be_revoked_beside_a_single_admin(api: Api):
    for role in ("editor", "viewer", "ingest"):
        key = await api.new_key(role)
        key_id = await key_id_of(api, key, caller=ADMIN_KEY)
        status, body = await api.delete(f"/v1/keys/{key_id}")
        assert status == 204, (role, body)
        assert (await api.get("/v1/me", key=key))[0] == 401


async def test_admin_keys_of_other_projects_do_not_count(api: Api, config):
    other = create_key_with_cli(config.storage.path, "admin", "other")
    create_key_with_cli(config.storage.path, "admin", "third")
    # The default project has one admin key, whatever other projects have.
    status, body = await api.delete(f"/v1/keys/{await key_id_of(api, ADMIN_KEY)}")
    assert_last_admin_conflict(status, body)
    # And "other" has one too, whatever the default project has.
    status, body = await api.delete(f"/v1/keys/{await key_id_of(api, other)}", key=other)
    assert_last_admin_conflict(status, body)
    assert await api.get("/v1/me", key=other) == (200, {"project": "other", "role": "admin"})


async def test_two_concurrent_revokes_of_the_last_two_admin_keys_cannot_both_succeed(api: Api):
    second = await api.new_key("admin")
    first_id, second_id = await key_id_of(api, ADMIN_KEY), await key_id_of(api, second)
    # Each key revokes itself (so neither request's authentication depends on the other's
    # outcome), at the same time: checked apart from the revoke, both would see two admin keys.
    results = await asyncio.gather(api.delete(f"/v1/keys/{first_id}", key=ADMIN_KEY),
                                   api.delete(f"/v1/keys/{second_id}", key=second))
    assert sorted(status for status, _ in results) == [204, 409], results
    [(_, conflict)] = [result for result in results if result[0] == 409]
    assert_last_admin_conflict(409, conflict)
    survivor = ADMIN_KEY if results[1][0] == 204 else second
    assert await api.get("/v1/me", key=survivor) == (200, {"project": "default", "role": "admin"})
    assert len(await active_admin_ids(api, survivor)) == 1
