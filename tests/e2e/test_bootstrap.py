"""First start without FLOWD_ADMIN_KEY: an admin key is created and written to admin.key."""

from __future__ import annotations

import stat

from tests.e2e.conftest import ServerProcess


def test_first_start_writes_admin_key_file(start_server, tmp_path) -> None:
    server: ServerProcess = start_server(admin_key=None)
    key_file = tmp_path / "admin.key"  # beside the database file
    assert key_file.is_file(), f"no admin.key; log:\n{server.log_text()}"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_text()
    key = content.strip()
    assert key and len(key.split()) == 1

    log = server.log_text()
    assert str(key_file.resolve()) in log or str(key_file) in log, log
    assert key not in log
    assert key[-12:] not in log  # not even the tail of it

    me = server.get("/v1/me", key=key)
    assert me.status == 200, me.body
    assert me.body == {"project": "default", "role": "admin"}
    assert server.get("/v1/me", key=key + "x").status == 401

    first_inode = key_file.stat().st_ino, key_file.stat().st_mtime_ns
    assert server.terminate() == 0

    again = start_server(admin_key=None)
    assert key_file.read_text() == content
    assert (key_file.stat().st_ino, key_file.stat().st_mtime_ns) == first_inode
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert again.get("/v1/me", key=key).body == {"project": "default", "role": "admin"}
    assert key not in again.log_text()
    # Still exactly one key: the second start created none.
    keys = again.list_all("/v1/keys", key=key)
    assert len(keys) == 1 and keys[0]["role"] == "admin"


def test_admin_key_from_environment_writes_no_file(start_server, tmp_path) -> None:
    server: ServerProcess = start_server()
    assert not (tmp_path / "admin.key").exists()
    assert server.get("/v1/me").body == {"project": "default", "role": "admin"}
    assert server.key not in server.log_text()
