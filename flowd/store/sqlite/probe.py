"""Reading a running server's database from another process (the benchmark), read-only, to learn
what happened and when — without asking the server (whose event loop is what is measured).

The connection is `file:PATH?mode=ro` with `query_only`; in WAL mode a reader never blocks the
server's writer. Times in the database are the server's wall clock (epoch ms); the server runs
on this machine, so they compare directly with this process's `time.time()`.

The store's verbs are used where one fits (`runs.status_counts`, `runs.get`); the rest are
aggregate reads only a measurement needs, kept here so that the server's verbs stay the
server's (and the SQL in flowd.store).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable

from flowd.store.records import ACTIVE_STATUSES, Run
from flowd.store.sqlite.runs import SqliteRuns

PROJECT = "default"


class Probe:
    def __init__(self, db_path: Path) -> None:
        self._conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._conn.execute("PRAGMA query_only = ON")
        self._runs = SqliteRuns(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- through the store's verbs

    def status_counts(self) -> dict[str, int]:
        return self._runs.status_counts(PROJECT)

    def get_run(self, run_id: str) -> Run | None:
        return self._runs.get(PROJECT, run_id)

    def run_end(self, run_id: str) -> tuple[str, int, int | None, str | None] | None:
        """(status, created_at, completed_at, error JSON) of one run: cheap to poll, unlike
        get_run, which decodes the whole row (a large trigger payload included)."""
        return self._conn.execute("SELECT status, created_at, completed_at, error FROM runs "
                                  "WHERE id = ?", (run_id,)).fetchone()

    # --- aggregates

    def active(self) -> int:
        """Runs not yet ended: cheap to poll (it reads only the active runs' index entries)."""
        return self._conn.execute(
            f"SELECT COUNT(*) FROM runs WHERE project_id = ? AND status IN "
            f"({','.join('?' * len(ACTIVE_STATUSES))})",
            (PROJECT, *(s.value for s in ACTIVE_STATUSES))).fetchone()[0]

    def run_window(self, workflow_id: str) -> tuple[int, int | None, int | None, int]:
        """(runs, first created_at, last completed_at, completed runs) of one workflow."""
        runs, first, last, done = self._conn.execute(
            "SELECT COUNT(*), MIN(created_at), MAX(completed_at), "
            "COUNT(*) FILTER (WHERE status = 'completed') FROM runs WHERE workflow_id = ?",
            (workflow_id,)).fetchone()
        return runs, first, last, done

    def created_window(self) -> tuple[int, int | None, int | None]:
        """(runs, first created_at, last created_at) of every run."""
        return self._conn.execute("SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM runs"
                                  ).fetchone()

    def committed_steps(self, workflow_id: str) -> int:
        """Trace entries (one per executed step) of the workflow's runs."""
        return self._conn.execute(
            "SELECT COUNT(*) FROM run_steps WHERE run_id IN "
            "(SELECT id FROM runs WHERE workflow_id = ?)", (workflow_id,)).fetchone()[0]

    def step_ends(self, workflow_id: str, step_id: str) -> list[tuple[int, Any]]:
        """(finished_at, input) of each run's `step_id` trace entry, where it finished."""
        return [(r[0], json.loads(r[1])) for r in self._conn.execute(
            "SELECT s.finished_at, s.input FROM runs r JOIN run_steps s ON s.run_id = r.id "
            "WHERE r.workflow_id = ? AND s.step_id = ? AND s.status = 'ok'",
            (workflow_id, step_id))]

    def first_step_started_since(self, since_ms: float) -> int | None:
        """The earliest trace entry started at or after `since_ms` (a step dispatched then)."""
        return self._conn.execute("SELECT MIN(started_at) FROM run_steps WHERE started_at >= ?",
                                  (int(since_ms),)).fetchone()[0]

    def missing_ids(self, table: str, ids: Iterable[str]) -> list[str]:
        """Which of `ids` have no row in `table` ("events" or "runs")."""
        assert table in ("events", "runs")
        wanted = list(ids)
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            found.update(r[0] for r in self._conn.execute(
                f"SELECT id FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return [i for i in wanted if i not in found]
