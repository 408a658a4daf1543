"""Per-project webhook signing secrets. Rotation keeps the old secret valid for a while, so
receivers can switch over without dropping deliveries."""

from __future__ import annotations

import sqlite3
from typing import Callable


def valid_secrets(conn: sqlite3.Connection, project_id: str, now: int) -> list[str]:
    """The secrets deliveries are signed with now, newest first."""
    return [r[0] for r in conn.execute(
        "SELECT secret FROM webhook_secrets WHERE project_id = ? AND "
        "(expires_at IS NULL OR expires_at > ?) ORDER BY created_at DESC", (project_id, now))]


def current_secret(conn: sqlite3.Connection, project_id: str, now: int,
                   new_secret: Callable[[], str]) -> str:
    """The project's newest secret, created on first use."""
    row = conn.execute("SELECT secret FROM webhook_secrets WHERE project_id = ? AND "
                       "expires_at IS NULL", (project_id,)).fetchone()
    if row:
        return row[0]
    secret = new_secret()
    conn.execute("INSERT INTO webhook_secrets (project_id, secret, created_at) VALUES (?, ?, ?)",
                 (project_id, secret, now))
    return secret


def rotate_secret(conn: sqlite3.Connection, project_id: str, now: int, grace_ms: int,
                  new_secret: Callable[[], str]) -> str:
    conn.execute("UPDATE webhook_secrets SET expires_at = ? WHERE project_id = ? AND "
                 "expires_at IS NULL", (now + grace_ms, project_id))
    conn.execute("DELETE FROM webhook_secrets WHERE project_id = ? AND expires_at <= ?",
                 (project_id, now))
    secret = new_secret()
    conn.execute("INSERT INTO webhook_secrets (project_id, secret, created_at) VALUES (?, ?, ?)",
                 (project_id, secret, now))
    return secret
