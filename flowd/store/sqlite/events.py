"""Events, in SQLite: everything teams send, stored once per `message_id`, with the result of
ingesting them (the runs they started, resumed or ended) so that a duplicate can answer with
the first result."""

from __future__ import annotations

import json
import sqlite3

from flowd.store import base
from flowd.store.records import Event, Page
from flowd.store.sqlite.paging import BULK_ROWS, fetch_page

_COLUMNS = "id, project_id, name, contact_id, properties, timestamp, received_at, message_id, result"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_NO_RUNS = _dumps({"runs_started": [], "runs_resumed": [], "runs_exited": []})


def _event(row: tuple) -> Event:
    result = json.loads(row[8])
    return Event(id=row[0], project_id=row[1], name=row[2], contact_id=row[3],
                 properties=json.loads(row[4]), timestamp=row[5], received_at=row[6],
                 message_id=row[7], runs_started=result["runs_started"],
                 runs_resumed=result["runs_resumed"],
                 runs_exited=result.get("runs_exited", []))  # absent from older rows


class SqliteEvents(base.Events):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def find_by_message_id(self, project_id: str, message_id: str) -> Event | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM events WHERE project_id = ? AND "
                                 "message_id = ?", (project_id, message_id)).fetchone()
        return _event(row) if row else None

    def insert(self, events: list[Event]) -> None:
        if not events:
            return
        rows = [(e.id, e.project_id, e.name, e.contact_id,
                 _dumps(e.properties) if e.properties else "{}", e.timestamp, e.received_at,
                 e.message_id,
                 _dumps({"runs_started": e.runs_started, "runs_resumed": e.runs_resumed,
                         "runs_exited": e.runs_exited})
                 if e.runs_started or e.runs_resumed or e.runs_exited else _NO_RUNS)  # most: none
                for e in events]
        if len(rows) < BULK_ROWS or any("\0" in e.name or (e.message_id and "\0" in e.message_id)
                                        for e in events):
            # Few rows, or text with a NUL character, which SQLite's JSON functions would end at.
            self._conn.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                                   rows)
            return
        # Many go in one statement: the rows travel as one JSON array, so SQLite does all of
        # the work in a single call (which does not hold the GIL).
        self._conn.execute(
            f"INSERT INTO events ({_COLUMNS}) SELECT value ->> 0, value ->> 1, value ->> 2, "
            "value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8 "
            "FROM json_each(?) ORDER BY key", (_dumps(rows),))

    def page(self, project_id: str, *, name: str | None, contact_id: str | None,
             before: int | None, limit: int) -> Page:
        where, args = ["project_id = ?"], [project_id]
        if name is not None:
            where.append("name = ?")
            args.append(name)
        if contact_id is not None:
            where.append("contact_id = ?")
            args.append(contact_id)
        return fetch_page(self._conn, table="events", columns=_COLUMNS, where=where, args=args,
                          before=before, limit=limit, convert=_event)

    def since(self, project_id: str, contact_id: str | None, since: int,
              limit: int) -> list[Event]:
        if contact_id is None:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM events WHERE project_id = ? "
                                      "AND received_at >= ? ORDER BY seq LIMIT ?",
                                      (project_id, since, limit)).fetchall()
        else:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM events WHERE project_id = ? "
                                      "AND contact_id = ? AND received_at >= ? ORDER BY seq "
                                      "LIMIT ?", (project_id, contact_id, since, limit)).fetchall()
        return [_event(row) for row in rows]
