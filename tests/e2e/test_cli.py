"""The command line: `keys create|list|revoke` and `migrate`, against a real server."""

from __future__ import annotations

import re
import sqlite3

from tests.e2e.conftest import ServerProcess, run_flowd


def test_keys_create_list_revoke(start_server, tmp_path) -> None:
    db = tmp_path / "flowd.db"
    created = run_flowd("keys", "create", "--role", "viewer", "--name", "dash", "--db", str(db),
                        cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1, created.stdout
    viewer_key = lines[0]
    assert re.fullmatch(r"flowd_[A-Za-z0-9_-]{20,}", viewer_key), viewer_key
    assert viewer_key not in created.stderr
    match = re.search(r"\b(key_[0-9a-z]+)\b", created.stderr)
    assert match, created.stderr
    key_id = match.group(1)

    listed = run_flowd("keys", "list", "--db", str(db), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if line.startswith(key_id)]
    assert len(rows) == 1, listed.stdout
    assert "viewer" in rows[0] and "default" in rows[0] and "dash" in rows[0]
    assert viewer_key not in listed.stdout  # only a prefix is ever shown
    assert viewer_key[:10] in rows[0]

    server: ServerProcess = start_server(env={"FLOWD_AUTH_KEY_CACHE_SECONDS": "0"})
    me = server.get("/v1/me", key=viewer_key)
    assert me.status == 200 and me.body == {"project": "default", "role": "viewer"}
    assert server.get("/v1/events", key=viewer_key).status == 200
    forbidden = server.post("/v1/events", {"name": "x"}, key=viewer_key)
    assert forbidden.status == 403 and forbidden.body["error"]["code"] == "forbidden"
    assert server.get("/v1/events").body["data"] == []  # the refused event was not stored

    # A key created while the server runs works at once.
    editor = run_flowd("keys", "create", "--role", "editor", "--db", str(db), cwd=tmp_path)
    assert editor.returncode == 0, editor.stderr
    editor_key = editor.stdout.strip()
    assert server.get("/v1/me", key=editor_key).body == {"project": "default", "role": "editor"}

    # The server lists the CLI's keys, and the CLI lists the server's admin key.
    assert key_id in {k["id"] for k in server.list_all("/v1/keys")}
    listed = run_flowd("keys", "list", "--db", str(db), cwd=tmp_path)
    assert "FLOWD_ADMIN_KEY" in listed.stdout and "editor" in listed.stdout

    revoked = run_flowd("keys", "revoke", key_id, "--db", str(db), cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    after = server.get("/v1/me", key=viewer_key)
    assert after.status == 401 and after.body["error"]["code"] == "unauthorized"
    assert server.get("/v1/me").status == 200  # the admin key is unaffected

    listed = run_flowd("keys", "list", "--db", str(db), cwd=tmp_path)
    assert key_id not in listed.stdout
    again = run_flowd("keys", "revoke", key_id, "--db", str(db), cwd=tmp_path)
    assert again.returncode != 0 and key_id in again.stderr


def test_keys_create_for_a_new_project(start_server, tmp_path) -> None:
    db = tmp_path / "flowd.db"
    created = run_flowd("keys", "create", "--role", "ingest", "--project", "shop", "--db", str(db),
                        cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    server = start_server()
    assert server.get("/v1/me", key=key).body == {"project": "shop", "role": "ingest"}
    sent = server.post("/v1/events", {"name": "x", "contact_id": "p1"}, key=key)
    assert sent.status == 202, sent.body
    # Projects are isolated: the default project's admin sees neither the event nor the contact.
    assert server.get("/v1/events").body["data"] == []
    assert server.get("/v1/contacts/p1").status == 404


def test_migrate_twice(tmp_path) -> None:
    db = tmp_path / "new.db"
    first = run_flowd("migrate", "--db", str(db), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    applied = [int(v) for v in re.findall(r"^applied migration (\d+)\b", first.stdout, re.M)]
    assert applied and applied[0] == 1, first.stdout
    # In order; versions may have gaps (branches take numbers of their own).
    assert applied == sorted(set(applied)), first.stdout
    second = run_flowd("migrate", "--db", str(db), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "applied migration" not in second.stdout, second.stdout
    assert f"schema version {applied[-1]}" in second.stdout, second.stdout
    conn = sqlite3.connect(db)
    try:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == applied
    finally:
        conn.close()


def _create_key(db, tmp_path, role: str, project: str = "default") -> tuple[str, str]:
    """(key id, key) of a key made with `keys create`."""
    created = run_flowd("keys", "create", "--role", role, "--project", project, "--db", str(db),
                        cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    return re.search(r"\b(key_[0-9a-z]+)\b", created.stderr).group(1), created.stdout.strip()


def _active_key_ids(db, tmp_path) -> set[str]:
    listed = run_flowd("keys", "list", "--db", str(db), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    return set(re.findall(r"^(key_[0-9a-z]+) ", listed.stdout, re.M))


def test_keys_revoke_refuses_the_last_admin_key_of_a_project(start_server, tmp_path) -> None:
    db = tmp_path / "flowd.db"
    first_id, first = _create_key(db, tmp_path, "admin")
    shop_admin_id, _ = _create_key(db, tmp_path, "admin", project="shop")  # does not count
    viewer_id, _ = _create_key(db, tmp_path, "viewer")

    refused = run_flowd("keys", "revoke", first_id, "--db", str(db), cwd=tmp_path)
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert refused.stderr.strip() == (
        f"flowd: cannot revoke {first_id} (admin of project default): this is the project's "
        "last active admin key; create another admin key first")
    assert "Traceback" not in refused.stderr and refused.stdout == ""
    assert _active_key_ids(db, tmp_path) == {first_id, shop_admin_id, viewer_id}

    # A key that is not an admin key goes, beside the single admin key.
    assert run_flowd("keys", "revoke", viewer_id, "--db", str(db), cwd=tmp_path).returncode == 0
    # With a second admin key the first may go, and then the second may not.
    second_id, second = _create_key(db, tmp_path, "admin")
    assert run_flowd("keys", "revoke", first_id, "--db", str(db), cwd=tmp_path).returncode == 0
    refused = run_flowd("keys", "revoke", second_id, "--db", str(db), cwd=tmp_path)
    assert refused.returncode == 1 and "last active admin key" in refused.stderr, refused.stderr
    assert run_flowd("keys", "revoke", shop_admin_id, "--db", str(db),
                     cwd=tmp_path).returncode == 1
    assert _active_key_ids(db, tmp_path) == {second_id, shop_admin_id}

    # The server agrees: the refused key works, the revoked one does not.
    server: ServerProcess = start_server(admin_key=None, env={"FLOWD_AUTH_KEY_CACHE_SECONDS": "0"})
    assert server.get("/v1/me", key=second).body == {"project": "default", "role": "admin"}
    assert server.get("/v1/me", key=first).status == 401
