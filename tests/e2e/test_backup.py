"""`python -m flowd backup PATH`: an online copy taken while a server takes writes, verified,
that another server then serves; it never overwrites a file unless told to."""

from __future__ import annotations

import sqlite3
import threading

from tests.e2e.conftest import run_flowd

WORKFLOW = {"trigger": {"type": "event", "event": "signup"}, "status": "active",
            "steps": [{"id": "a", "type": "set", "config": {"vars": {"x": 1}}}]}


def test_backup_under_writes_opens_verifies_and_serves_the_same_workflows(start_server, tmp_path):
    server = start_server()
    ids = []
    for i in range(3):
        response = server.post("/v1/workflows", {"name": f"wf {i}", **WORKFLOW})
        assert response.status == 201, response.body
        ids.append(response.body["id"])
    stop = threading.Event()
    accepted = []

    def write() -> None:
        i = 0
        while not stop.is_set():
            response = server.post("/v1/events", {"name": "signup", "contact_id": f"u{i}"})
            accepted.append(response.status)
            i += 1

    writers = [threading.Thread(target=write) for _ in range(4)]
    for thread in writers:
        thread.start()
    try:
        copy = tmp_path / "copy.db"
        done = run_flowd("backup", str(copy), "--db", str(server.db), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "integrity check ok" in done.stdout
        again = run_flowd("backup", str(copy), "--db", str(server.db), cwd=tmp_path)
        assert again.returncode == 2 and "--force" in again.stderr
        forced = run_flowd("backup", str(copy), "--db", str(server.db), "--force", cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert accepted and set(accepted) == {202}

    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    assert 0 < events <= len(accepted)
    assert not (tmp_path / "copy.db-wal").exists() or (tmp_path / "copy.db-wal").stat().st_size == 0

    restored = start_server(db=copy, admin_key=server.key, log_name="restored.log")
    listed = restored.list_all("/v1/workflows")
    assert sorted(w["id"] for w in listed) == sorted(ids)
    assert all(w["status"] == "active" for w in listed)
    fired = restored.post("/v1/events", {"name": "signup", "contact_id": "after-restore"})
    assert fired.status == 202 and len(fired.body["runs_started"]) == 3


def test_backup_of_a_missing_database_fails_and_writes_nothing(tmp_path):
    done = run_flowd("backup", str(tmp_path / "copy.db"), "--db", str(tmp_path / "none.db"),
                     cwd=tmp_path)
    assert done.returncode == 1 and "no database" in done.stderr
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "none.db").exists()
