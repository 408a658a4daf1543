"""Projects and API keys, in SQLite. Keys are stored as SHA-256 hashes only."""

from __future__ import annotations

import sqlite3

from flowd.ids import new_id
from flowd.store import base
from flowd.store.records import ApiKey, LastAdminKey, Page, Role
from flowd.store.sqlite.paging import fetch_page

_COLUMNS = "id, project_id, role, name, prefix, created_at, revoked_at"


def _key(row: tuple) -> ApiKey:
    return ApiKey(row[0], row[1], Role(row[2]), row[3], row[4], row[5], row[6])


class SqliteKeys(base.Keys):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def ensure_project(self, project_id: str, now: int) -> None:
        self._conn.execute("INSERT OR IGNORE INTO projects (id, created_at) VALUES (?, ?)",
                           (project_id, now))

    def create(self, *, project_id: str, role: Role, name: str, key_hash: str, prefix: str,
               now: int) -> ApiKey:
        key = ApiKey(new_id("key", now), project_id, role, name, prefix, now)
        self._conn.execute(
            "INSERT INTO api_keys (id, project_id, role, name, key_hash, lookup, prefix, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key.id, project_id, role.value, name, key_hash, key_hash[:self.LOOKUP_LENGTH],
             prefix, now))
        return key

    def ensure_admin(self, *, key_hash: str, prefix: str, name: str, now: int) -> ApiKey:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?",
                                 (key_hash,)).fetchone()
        if row is None:
            return self.create(project_id="default", role=Role.ADMIN, name=name,
                               key_hash=key_hash, prefix=prefix, now=now)
        self._conn.execute("UPDATE api_keys SET role = 'admin', project_id = 'default', "
                           "revoked_at = NULL WHERE key_hash = ?", (key_hash,))
        return _key(row)

    def find_active(self, lookup: str) -> list[tuple[ApiKey, str]]:
        rows = self._conn.execute(f"SELECT {_COLUMNS}, key_hash FROM api_keys "
                                  "WHERE lookup = ? AND revoked_at IS NULL", (lookup,)).fetchall()
        return [(_key(row), row[-1]) for row in rows]

    def count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0]

    def page(self, *, project_id: str | None, before: int | None, limit: int) -> Page:
        where: list[str] = ["revoked_at IS NULL"]
        args: list = []
        if project_id is not None:
            where.append("project_id = ?")
            args.append(project_id)
        return fetch_page(self._conn, table="api_keys", columns=_COLUMNS, where=where, args=args,
                          before=before, limit=limit, convert=_key)

    def revoke(self, *, key_id: str, project_id: str | None, now: int) -> bool:
        # Inside a write transaction the count and the update happen under one write lock, so
        # two concurrent revokes of a project's last two admin keys cannot both see the other
        # one still active.
        key = self._active_key(key_id, project_id)
        if key is None:
            return False
        if key.role is Role.ADMIN and self._active_admin_count(key.project_id) <= 1:
            raise LastAdminKey(key.id, key.project_id)
        self._conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, key_id))
        return True

    def _active_key(self, key_id: str, project_id: str | None) -> ApiKey | None:
        sql = f"SELECT {_COLUMNS} FROM api_keys WHERE id = ? AND revoked_at IS NULL"
        args: tuple = (key_id,)
        if project_id is not None:
            sql += " AND project_id = ?"
            args += (project_id,)
        row = self._conn.execute(sql, args).fetchone()
        return _key(row) if row else None

    def _active_admin_count(self, project_id: str) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM api_keys WHERE project_id = ? AND "
                                  "role = 'admin' AND revoked_at IS NULL",
                                  (project_id,)).fetchone()[0]
