"""Browser sessions, in SQLite: found by the hash of their token, joined with their key so that
revoking the key ends them at once."""

from __future__ import annotations

import sqlite3

from flowd.store import base
from flowd.store.records import Role, Session


class SqliteSessions(base.Sessions):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def create(self, session: Session) -> None:
        self._conn.execute(
            "INSERT INTO sessions (token_hash, key_id, project_id, role, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (session.token_hash, session.key_id, session.project_id, session.role.value,
             session.created_at, session.expires_at))

    def find(self, token_hash: str, now: int) -> Session | None:
        row = self._conn.execute(
            "SELECT s.token_hash, s.key_id, k.project_id, k.role, s.created_at, s.expires_at "
            "FROM sessions s JOIN api_keys k ON k.id = s.key_id "
            "WHERE s.token_hash = ? AND s.expires_at > ? AND k.revoked_at IS NULL",
            (token_hash, now)).fetchone()
        if row is None:
            return None
        return Session(row[0], row[1], row[2], Role(row[3]), row[4], row[5])

    def delete(self, token_hash: str) -> bool:
        return self._conn.execute("DELETE FROM sessions WHERE token_hash = ?",
                                  (token_hash,)).rowcount > 0

    def delete_expired(self, now: int, limit: int) -> int:
        return self._conn.execute(
            "DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions "
            "WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)", (now, limit)).rowcount
