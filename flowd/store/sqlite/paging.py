"""Newest-first keyset pagination on a table's integer `seq`, shared by every list verb."""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Iterable

from flowd.store.records import Page

_END = 2**63 - 1
# From this many rows on, one statement over a JSON array beats binding each row.
BULK_ROWS = 8


def fetch_page(conn: sqlite3.Connection, *, table: str, columns: str, where: list[str],
               args: list[Any], before: int | None, limit: int,
               convert: Callable[[tuple], Any], seq: str = "seq") -> Page:
    """`where`/`args` are the listing's filters; the page continues below position `before`."""
    conditions = " AND ".join([*where, f"{seq} < ?"])
    rows = conn.execute(
        f"SELECT {columns}, {seq} FROM {table} WHERE {conditions} ORDER BY {seq} DESC LIMIT ?",
        (*args, _END if before is None else before, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([convert(row) for row in rows], rows[-1][-1] if more else None)


def count_by_status(conn: sqlite3.Connection, table: str, project_id: str,
                    statuses: Iterable[str]) -> dict[str, int]:
    """Rows of a project by status, every status listed (zeros included)."""
    counts = dict.fromkeys(statuses, 0)
    for status, n in conn.execute(f"SELECT status, COUNT(*) FROM {table} WHERE project_id = ? "
                                  "GROUP BY status", (project_id,)):
        counts[status] = n
    return counts
