"""A database flowd cannot use stops the server with one line and exit code 2, promptly."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

from tests.e2e.conftest import clean_env, run_flowd

# Once the error line is printed, the process has this long to actually exit.
EXIT_GRACE = 2.0

def serve_until_exit(tmp_path, db) -> tuple[int | None, str]:
    """Start the server on `db`; return (exit code or None if it hung, stderr)."""
    err_path = tmp_path / "serve.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flowd", "--port", "0", "--db", str(db)],
                                cwd=tmp_path, env=clean_env({"FLOWD_ADMIN_KEY": "k" * 32}),
                                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        printed_at = None
        while proc.poll() is None and time.monotonic() < deadline:
            if printed_at is None and "flowd:" in err_path.read_text(errors="replace"):
                printed_at = time.monotonic()
                deadline = min(deadline, printed_at + EXIT_GRACE)
            time.sleep(0.02)
        return proc.poll(), err_path.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_file_that_is_not_a_database(tmp_path) -> None:
    db = tmp_path / "flowd.db"
    db.write_bytes(b"this is not an SQLite database, just some text " * 200)
    code, stderr = serve_until_exit(tmp_path, db)
    assert "Traceback" not in stderr
    assert "not a database" in stderr
    assert code == 2, f"exit code {code} (None: still running); stderr:\n{stderr}"


def test_schema_newer_than_this_flowd(tmp_path) -> None:
    db = tmp_path / "flowd.db"
    assert run_flowd("migrate", "--db", str(db), cwd=tmp_path).returncode == 0
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                 "VALUES (999999, 'from the future', 0)")
    conn.commit()
    conn.close()
    # The command line refuses it cleanly...
    migrate = run_flowd("migrate", "--db", str(db), cwd=tmp_path)
    assert migrate.returncode == 2 and "999999" in migrate.stderr, migrate.stderr
    # ...and so must the server.
    code, stderr = serve_until_exit(tmp_path, db)
    assert "Traceback" not in stderr
    assert "999999" in stderr
    assert code == 2, f"exit code {code} (None: still running); stderr:\n{stderr}"
