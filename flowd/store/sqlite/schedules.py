"""Schedule state in SQLite: per workflow, the instant after which its fires are counted."""

from __future__ import annotations

import sqlite3

from flowd.store import base

_CHUNK = 500   # ids per IN (...) list: bounded statement size


class SqliteSchedules(base.Schedules):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def since(self, workflow_ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(workflow_ids), _CHUNK):
            chunk = workflow_ids[start:start + _CHUNK]
            found.update(self._conn.execute(
                f"SELECT workflow_id, since FROM schedule_state WHERE workflow_id IN "
                f"({','.join('?' * len(chunk))})", chunk).fetchall())
        return found

    def begin(self, counts: dict[str, int], *, replace: bool) -> None:
        conflict = "DO UPDATE SET since = excluded.since" if replace else "DO NOTHING"
        self._conn.executemany(
            f"INSERT INTO schedule_state (workflow_id, since) VALUES (?, ?) "
            f"ON CONFLICT (workflow_id) {conflict}", counts.items())

    def fired(self, workflow_id: str, scheduled_at: int) -> bool:
        return self._conn.execute(
            "INSERT INTO schedule_state (workflow_id, since) VALUES (?, ?) "
            "ON CONFLICT (workflow_id) DO UPDATE SET since = excluded.since "
            "WHERE excluded.since > schedule_state.since", (workflow_id, scheduled_at)
        ).rowcount == 1

    def forget(self, workflow_id: str) -> None:
        self._conn.execute("DELETE FROM schedule_state WHERE workflow_id = ?", (workflow_id,))
