"""Retention's deletes and the incremental vacuum, in SQLite.

Each delete takes a bounded slice of its table: the oldest `limit` rows, found through an index
(runs_ended for runs, the rowid for events and messages, which grows with time), so one batch
costs the same on a table of a thousand rows or of a hundred million, and a batch that finds
nothing old costs almost nothing. Deleting a run deletes its trace, event waits and approvals
through their ON DELETE CASCADE foreign keys (each indexed by run id).
"""

from __future__ import annotations

import sqlite3

from flowd.store import base

_ENDED = "status IN ('completed', 'failed', 'cancelled')"   # the partial index runs_ended's


class SqliteRetention(base.Retention):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def delete_ended_runs(self, before: int | None, limit: int) -> int:
        bound = "" if before is None else "AND completed_at < ?"
        args = (limit,) if before is None else (before, limit)
        return self._conn.execute(
            f"DELETE FROM runs WHERE seq IN (SELECT seq FROM runs INDEXED BY runs_ended "
            f"WHERE {_ENDED} {bound} ORDER BY completed_at LIMIT ?)", args).rowcount

    def oldest_open_wait_since(self) -> int | None:
        return self._conn.execute("SELECT MIN(since) FROM event_waits").fetchone()[0]

    def delete_events(self, before: int, limit: int) -> int:
        return self._conn.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?) "
            "AND received_at < ?", (limit, before)).rowcount

    def delete_messages(self, before: int | None, limit: int) -> int:
        bound = "" if before is None else "AND created_at < ?"
        args = (limit,) if before is None else (limit, before)
        return self._conn.execute(
            f"DELETE FROM messages WHERE seq IN (SELECT seq FROM messages ORDER BY seq LIMIT ?) "
            f"AND status != 'sending' {bound}", args).rowcount

    def free_pages(self, pages: int) -> int:
        # Python's sqlite3 steps a statement without result columns once, and each step of
        # incremental_vacuum frees one page: so one page per execution, counted by the
        # freelist (a database without auto_vacuum frees none and the loop stops at once).
        before = self._freelist()
        for _ in range(min(pages, before)):
            self._conn.execute("PRAGMA incremental_vacuum(1)")
        return before - self._freelist()

    def size(self) -> base.DbSize:
        conn = self._conn
        return base.DbSize(page_size=conn.execute("PRAGMA page_size").fetchone()[0],
                           page_count=conn.execute("PRAGMA page_count").fetchone()[0],
                           freelist_count=self._freelist())

    def _freelist(self) -> int:
        return self._conn.execute("PRAGMA freelist_count").fetchone()[0]
