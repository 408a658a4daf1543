"""Per-project webhook signing secrets, in SQLite. Rotation keeps the old secret valid for a
while, so receivers can switch over without dropping deliveries."""

from __future__ import annotations

import sqlite3
from typing import Callable

from flowd.store import base


class SqliteSecrets(base.Secrets):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def valid(self, project_id: str, now: int) -> list[str]:
        return [r[0] for r in self._conn.execute(
            "SELECT secret FROM webhook_secrets WHERE project_id = ? AND "
            "(expires_at IS NULL OR expires_at > ?) ORDER BY created_at DESC", (project_id, now))]

    def current(self, project_id: str, now: int, new_secret: Callable[[], str]) -> str:
        row = self._conn.execute("SELECT secret FROM webhook_secrets WHERE project_id = ? AND "
                                 "expires_at IS NULL", (project_id,)).fetchone()
        if row:
            return row[0]
        secret = new_secret()
        self._conn.execute("INSERT INTO webhook_secrets (project_id, secret, created_at) "
                           "VALUES (?, ?, ?)", (project_id, secret, now))
        return secret

    def rotate(self, project_id: str, now: int, grace_ms: int,
               new_secret: Callable[[], str]) -> str:
        self._conn.execute("UPDATE webhook_secrets SET expires_at = ? WHERE project_id = ? AND "
                           "expires_at IS NULL", (now + grace_ms, project_id))
        self._conn.execute("DELETE FROM webhook_secrets WHERE project_id = ? AND expires_at <= ?",
                           (project_id, now))
        secret = new_secret()
        self._conn.execute("INSERT INTO webhook_secrets (project_id, secret, created_at) "
                           "VALUES (?, ?, ?)", (project_id, secret, now))
        return secret
