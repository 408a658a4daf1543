"""Per-project secrets, in SQLite: webhook signing secrets (rotation keeps the old secret valid
for a while, so receivers can switch over without dropping deliveries) and a project's own
language model settings with its API key."""

from __future__ import annotations

import sqlite3
from typing import Callable

from flowd.store import base
from flowd.store.records import AiProjectSettings


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
        return self._insert(project_id, now, new_secret)

    def ensure_every_project(self, now: int, new_secret: Callable[[], str]) -> list[str]:
        missing = [r[0] for r in self._conn.execute(
            "SELECT id FROM projects p WHERE NOT EXISTS (SELECT 1 FROM webhook_secrets s "
            "WHERE s.project_id = p.id AND s.expires_at IS NULL) ORDER BY id")]
        for project_id in missing:
            self._insert(project_id, now, new_secret)
        return missing

    def rotate(self, project_id: str, now: int, grace_ms: int,
               new_secret: Callable[[], str]) -> str:
        self._conn.execute("UPDATE webhook_secrets SET expires_at = ? WHERE project_id = ? AND "
                           "expires_at IS NULL", (now + grace_ms, project_id))
        self._conn.execute("DELETE FROM webhook_secrets WHERE project_id = ? AND expires_at <= ?",
                           (project_id, now))
        return self._insert(project_id, now, new_secret)

    def _insert(self, project_id: str, now: int, new_secret: Callable[[], str]) -> str:
        secret = new_secret()
        self._conn.execute("INSERT INTO webhook_secrets (project_id, secret, created_at) "
                           "VALUES (?, ?, ?)", (project_id, secret, now))
        return secret

    def server_key(self, name: str, now: int, new_key: Callable[[], bytes]) -> bytes:
        row = self._conn.execute("SELECT key FROM server_keys WHERE name = ?", (name,)).fetchone()
        if row:
            return bytes(row[0])
        key = new_key()
        self._conn.execute("INSERT INTO server_keys (name, key, created_at) VALUES (?, ?, ?)",
                           (name, key, now))
        return key

    def ai_settings(self, project_id: str) -> AiProjectSettings | None:
        row = self._conn.execute(
            "SELECT provider, base_url, model, api_key, updated_at FROM ai_settings "
            "WHERE project_id = ?", (project_id,)).fetchone()
        return AiProjectSettings(project_id, *row) if row else None

    def set_ai_settings(self, settings: AiProjectSettings) -> None:
        self._conn.execute(
            "INSERT INTO ai_settings (project_id, provider, base_url, model, api_key, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE SET "
            "provider = excluded.provider, base_url = excluded.base_url, model = excluded.model, "
            "api_key = excluded.api_key, updated_at = excluded.updated_at",
            (settings.project_id, settings.provider, settings.base_url, settings.model,
             settings.api_key, settings.updated_at))

    def delete_ai_settings(self, project_id: str) -> bool:
        return self._conn.execute("DELETE FROM ai_settings WHERE project_id = ?",
                                  (project_id,)).rowcount > 0
