"""Projects and API keys. Keys are stored as SHA-256 hashes only."""

from __future__ import annotations

import sqlite3

from flowd.ids import new_id
from flowd.store.paging import fetch_page
from flowd.store.records import ApiKey, Page, Role

LOOKUP_LENGTH = 16
_COLUMNS = "id, project_id, role, name, prefix, created_at, revoked_at"


def _key(row: tuple) -> ApiKey:
    return ApiKey(row[0], row[1], Role(row[2]), row[3], row[4], row[5], row[6])


def ensure_project(conn: sqlite3.Connection, project_id: str, now: int) -> None:
    conn.execute("INSERT OR IGNORE INTO projects (id, created_at) VALUES (?, ?)", (project_id, now))


def create_key(conn: sqlite3.Connection, *, project_id: str, role: Role, name: str,
               key_hash: str, prefix: str, now: int) -> ApiKey:
    key = ApiKey(new_id("key", now), project_id, role, name, prefix, now)
    conn.execute(
        "INSERT INTO api_keys (id, project_id, role, name, key_hash, lookup, prefix, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key.id, project_id, role.value, name, key_hash, key_hash[:LOOKUP_LENGTH], prefix, now))
    return key


def ensure_admin_key(conn: sqlite3.Connection, *, key_hash: str, prefix: str, name: str,
                     now: int) -> ApiKey:
    """Make `key_hash` an active admin key of project `default` (idempotent)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
    if row is None:
        return create_key(conn, project_id="default", role=Role.ADMIN, name=name,
                          key_hash=key_hash, prefix=prefix, now=now)
    conn.execute("UPDATE api_keys SET role = 'admin', project_id = 'default', revoked_at = NULL "
                 "WHERE key_hash = ?", (key_hash,))
    return _key(row)


def find_active_keys(conn: sqlite3.Connection, lookup: str) -> list[tuple[ApiKey, str]]:
    """Active keys whose hash starts with `lookup`, each with its full stored hash: the caller
    compares the full hash itself, in constant time."""
    rows = conn.execute(f"SELECT {_COLUMNS}, key_hash FROM api_keys "
                        "WHERE lookup = ? AND revoked_at IS NULL", (lookup,)).fetchall()
    return [(_key(row), row[-1]) for row in rows]


def key_hash_of(conn: sqlite3.Connection, key_id: str) -> str | None:
    row = conn.execute("SELECT key_hash FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return row[0] if row else None


def count_keys(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0]


def list_keys(conn: sqlite3.Connection, *, project_id: str | None, before: int | None,
              limit: int, include_revoked: bool = False) -> Page:
    where: list[str] = []
    args: list = []
    if project_id is not None:
        where.append("project_id = ?")
        args.append(project_id)
    if not include_revoked:
        where.append("revoked_at IS NULL")
    return fetch_page(conn, table="api_keys", columns=_COLUMNS, where=where, args=args,
                      before=before, limit=limit, convert=_key)


class LastAdminKey(Exception):
    """Revoking this key would leave its project without an active admin key, and with that
    nobody could make or revoke its keys through the API again."""

    def __init__(self, key_id: str, project_id: str) -> None:
        super().__init__("this is the project's last active admin key; "
                         "create another admin key first")
        self.key_id = key_id
        self.project_id = project_id


def revoke_key(conn: sqlite3.Connection, *, key_id: str, project_id: str | None, now: int) -> bool:
    """True when an active key was revoked; `project_id` None means any project (the CLI).

    Raises LastAdminKey, revoking nothing, for the last active admin key of its project. Run it
    inside a write transaction (a writer unit, or `transaction(conn)`): the count and the update
    then happen under one write lock, so two concurrent revokes of a project's last two admin
    keys cannot both see the other one still active."""
    key = _active_key(conn, key_id, project_id)
    if key is None:
        return False
    if key.role is Role.ADMIN and _active_admin_count(conn, key.project_id) <= 1:
        raise LastAdminKey(key.id, key.project_id)
    conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, key_id))
    return True


def _active_key(conn: sqlite3.Connection, key_id: str, project_id: str | None) -> ApiKey | None:
    sql = f"SELECT {_COLUMNS} FROM api_keys WHERE id = ? AND revoked_at IS NULL"
    args: tuple = (key_id,)
    if project_id is not None:
        sql += " AND project_id = ?"
        args += (project_id,)
    row = conn.execute(sql, args).fetchone()
    return _key(row) if row else None


def _active_admin_count(conn: sqlite3.Connection, project_id: str) -> int:
    return conn.execute("SELECT COUNT(*) FROM api_keys WHERE project_id = ? AND role = 'admin' "
                        "AND revoked_at IS NULL", (project_id,)).fetchone()[0]
