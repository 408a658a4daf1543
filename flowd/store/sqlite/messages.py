"""Messages, bounced addresses and unsubscribe tokens, in SQLite."""

from __future__ import annotations

import json
import sqlite3

from flowd.store import base
from flowd.store.records import Message, MessageStatus, Page
from flowd.store.sqlite.paging import fetch_page

_COLUMNS = ("id, project_id, channel, status, recipients, subject, body, content, created_at, "
            "contact_id, provider_message_id, run_id, step_id, workflow_id, error, sent_at")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _message(r: tuple) -> Message:
    return Message(r[0], r[1], r[2], MessageStatus(r[3]), json.loads(r[4]), r[5], r[6],
                   json.loads(r[7]), r[8], r[9], r[10], r[11], r[12], r[13],
                   None if r[14] is None else json.loads(r[14]), r[15])


class SqliteMessages(base.Messages):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, project_id: str | None, message_id: str) -> Message | None:
        if project_id is None:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE id = ?",
                                     (message_id,)).fetchone()
        else:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE id = ? AND "
                                     "project_id = ?", (message_id, project_id)).fetchone()
        return _message(row) if row else None

    def counts(self) -> dict[tuple[str, str], int]:
        # An index-only scan of messages_channel_status (migration 11).
        return {(channel, status): n for channel, status, n in self._conn.execute(
            "SELECT channel, status, COUNT(*) FROM messages GROUP BY channel, status")}

    def delivery_counts(self, project_id: str, since: int,
                        recent_since: int) -> dict[tuple[str, str], tuple[int, int]]:
        # A range of messages_recent: index entries only, never the table.
        return {(channel, status): (recent, total) for channel, status, recent, total in
                self._conn.execute(
                    "SELECT channel, status, SUM(created_at >= ?), COUNT(*) FROM messages "
                    "WHERE project_id = ? AND created_at >= ? GROUP BY channel, status",
                    (recent_since, project_id, since))}

    def insert(self, m: Message) -> None:
        self._conn.execute(
            f"INSERT INTO messages ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (m.id, m.project_id, m.channel, m.status.value, _dumps(m.recipients), m.subject,
             m.body, _dumps(m.content), m.created_at, m.contact_id, m.provider_message_id,
             m.run_id, m.step_id, m.workflow_id, None if m.error is None else _dumps(m.error),
             m.sent_at))

    def finish(self, m: Message) -> None:
        self._conn.execute(
            "UPDATE messages SET status = ?, provider_message_id = ?, error = ?, sent_at = ? "
            "WHERE id = ?", (m.status.value, m.provider_message_id,
                             None if m.error is None else _dumps(m.error), m.sent_at, m.id))

    def page(self, project_id: str, *, contact_id: str | None, channel: str | None,
             status: str | None, run_id: str | None, before: int | None, limit: int) -> Page:
        where, args = ["project_id = ?"], [project_id]
        for column, value in (("contact_id", contact_id), ("channel", channel),
                              ("status", status), ("run_id", run_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        return fetch_page(self._conn, table="messages", columns=_COLUMNS, where=where,
                          args=args, before=before, limit=limit, convert=_message)

    def unsent(self, after: int, limit: int) -> tuple[list[Message], int]:
        rows = self._conn.execute(f"SELECT {_COLUMNS}, seq FROM messages WHERE status = 'sending' "
                                  "AND run_id IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                                  (after, limit)).fetchall()
        return [_message(row) for row in rows], (rows[-1][-1] if rows else after)

    def bounce(self, project_id: str, address: str, reason: str, message_id: str | None,
               now: int) -> None:
        self._conn.execute("INSERT OR REPLACE INTO bounces (project_id, address, reason, "
                           "message_id, created_at) VALUES (?, ?, ?, ?, ?)",
                           (project_id, address.lower(), reason, message_id, now))

    def bounced(self, project_id: str, address: str) -> str | None:
        row = self._conn.execute("SELECT reason FROM bounces WHERE project_id = ? AND "
                                 "address = ?", (project_id, address.lower())).fetchone()
        return row[0] if row else None

    def remember_unsubscribe_token(self, token_hash: str, project_id: str, contact_id: str,
                                   channel: str) -> None:
        self._conn.execute("INSERT OR IGNORE INTO unsubscribe_tokens (token_hash, project_id, "
                           "contact_id, channel) VALUES (?, ?, ?, ?)",
                           (token_hash, project_id, contact_id, channel))

    def unsubscribe_token(self, token_hash: str) -> tuple[str, str, str] | None:
        row = self._conn.execute("SELECT project_id, contact_id, channel FROM unsubscribe_tokens "
                                 "WHERE token_hash = ?", (token_hash,)).fetchone()
        return (row[0], row[1], row[2]) if row else None
