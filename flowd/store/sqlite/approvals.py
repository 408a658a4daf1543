"""Approvals and their links' token hashes, in SQLite."""

from __future__ import annotations

import json
import sqlite3

from flowd.store import base
from flowd.store.records import Approval

_COLUMNS = ("id, project_id, run_id, workflow_id, step_id, contact_id, message, approvers, "
            "created_at, expires_at, decided_at, decision, comment, decided_by")
_A_COLUMNS = ", ".join(f"a.{c.strip()}" for c in _COLUMNS.split(","))
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _approval(r: tuple) -> Approval:
    return Approval(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9],
                    r[10], r[11], r[12], r[13])


class SqliteApprovals(base.Approvals):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def open(self, a: Approval, tokens: dict[str, str | None]) -> None:
        if self._conn.execute(
                f"INSERT OR IGNORE INTO approvals ({_COLUMNS}) VALUES "
                f"(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (a.id, a.project_id, a.run_id, a.workflow_id, a.step_id, a.contact_id, a.message,
                 _dumps(a.approvers), a.created_at, a.expires_at, a.decided_at, a.decision,
                 a.comment, a.decided_by)).rowcount:
            self._conn.executemany("INSERT INTO approval_tokens (token_hash, approval_id, "
                                   "approver) VALUES (?, ?, ?)",
                                   [(h, a.id, approver) for h, approver in tokens.items()])

    def get(self, approval_id: str) -> Approval | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM approvals WHERE id = ?",
                                 (approval_id,)).fetchone()
        return _approval(row) if row else None

    def by_token(self, token_hash: str) -> tuple[Approval, str | None] | None:
        row = self._conn.execute(
            f"SELECT {_A_COLUMNS}, t.approver FROM approval_tokens t JOIN approvals a "
            "ON a.id = t.approval_id WHERE t.token_hash = ?", (token_hash,)).fetchone()
        return (_approval(row[:-1]), row[-1]) if row else None

    def decide(self, approval_id: str, decision: str, comment: str | None, decided_by: str,
               now: int) -> bool:
        return self._conn.execute(
            "UPDATE approvals SET decision = ?, comment = ?, decided_by = ?, decided_at = ? "
            "WHERE id = ? AND decided_at IS NULL AND expires_at > ?",
            (decision, comment, decided_by, now, approval_id, now)).rowcount == 1
