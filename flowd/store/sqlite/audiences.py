"""Audiences in SQLite: the stored filters, and evaluating one over the contacts table.

Evaluation is one pass of SQL over the project's contacts (flowd.store.sqlite.audience_sql
renders the filter); the contacts SQL leaves undecided are read in chunks and decided by the
query's `matches` (the condition in Python), at most `max_python` of them per call. An exact
filter — the common case — never reads a contact into Python to count it.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, Iterator

from flowd.audiences import AudienceQuery
from flowd.ids import new_id
from flowd.store import base
from flowd.store.records import Audience, AudienceTooCostly, NameTaken, Page
from flowd.store.sqlite.audience_sql import (
    DEFAULT_ROOM,
    Rendered,
    malformed_json,
    render,
    too_deep,
)
from flowd.store.sqlite.contacts import _COLUMNS as CONTACT_COLUMNS
from flowd.store.sqlite.contacts import _contact
from flowd.store.sqlite.paging import fetch_page

_COLUMNS = "id, project_id, name, description, filter, created_at, updated_at"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_END = 2**63 - 1
_UNDECIDED = 2**32
# Room for the filter's nesting, tried in turn while SQLite finds the statement too deep (the
# estimate of flowd.store.sqlite.audience_sql is rough: trying costs one failed prepare, and
# only deep filters pay it). With none, the whole filter is undecided and Python decides it
# (within max_python).
_ROOMS = (2 * DEFAULT_ROOM, DEFAULT_ROOM, DEFAULT_ROOM // 2, 0)
# Rows fetched from SQLite at a time while walking members; a page asks for what it needs.
_CHUNK = 1000


def _audience(row: tuple) -> Audience:
    return Audience(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6])


class SqliteAudiences(base.Audiences):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # -- the stored audiences --------------------------------------------------------------

    def create(self, *, project_id: str, name: str, description: str, filter: Any,
               now: int) -> Audience:
        audience = Audience(new_id("aud", now), project_id, name, description, filter, now, now)
        try:
            self._conn.execute(f"INSERT INTO audiences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (audience.id, project_id, name, description, _dumps(filter), now,
                                now))
        except sqlite3.IntegrityError:
            raise NameTaken(name) from None
        return audience

    def get(self, project_id: str, ref: str) -> Audience | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM audiences WHERE project_id = ? AND "
                                 "id = ?", (project_id, ref)).fetchone()
        if row is None:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM audiences WHERE project_id = ? "
                                     "AND name = ?", (project_id, ref)).fetchone()
        return _audience(row) if row else None

    def update(self, audience: Audience, *, name: str, description: str, filter: Any,
               now: int) -> Audience:
        try:
            self._conn.execute("UPDATE audiences SET name = ?, description = ?, filter = ?, "
                               "updated_at = ? WHERE id = ?",
                               (name, description, _dumps(filter), now, audience.id))
        except sqlite3.IntegrityError:
            raise NameTaken(name) from None
        return Audience(audience.id, audience.project_id, name, description, filter,
                        audience.created_at, now)

    def delete(self, audience_id: str) -> None:
        self._conn.execute("DELETE FROM audiences WHERE id = ?", (audience_id,))

    def names(self, project_id: str) -> dict[str, str]:
        return dict(self._conn.execute("SELECT id, name FROM audiences WHERE project_id = ?",
                                       (project_id,)).fetchall())

    def every(self, project_id: str, limit: int) -> list[Audience]:
        return [_audience(r) for r in self._conn.execute(
            f"SELECT {_COLUMNS} FROM audiences WHERE project_id = ? ORDER BY seq LIMIT ?",
            (project_id, limit))]

    def page(self, project_id: str, *, before: int | None, limit: int) -> Page:
        return fetch_page(self._conn, table="audiences", columns=_COLUMNS,
                          where=["project_id = ?"], args=[project_id], before=before,
                          limit=limit, convert=_audience)

    # -- evaluation --------------------------------------------------------------------------

    def _select(self, query: AudienceQuery, statement: Callable[[str], str],
                params: dict[str, Any], *, streamed: bool = False
                ) -> tuple[sqlite3.Cursor, Rendered]:
        """Run the statement with the filter rendered into it (`statement(filter_sql)`), and
        the rendering it used (a later statement must decide the same rows the same way).

        SQLite refuses a row's JSON when it reads it: for an aggregate or a single row that is
        within execute() (which steps to the first row), and is tried again with the guard; a
        `streamed` statement, whose rows come back while the caller reads them, gets the guard
        from the start."""
        unreadable = streamed
        rooms = list(_ROOMS)
        while True:
            where = render(query.where, rooms[0], unreadable_json=unreadable)
            try:
                return self._conn.execute(statement(where.sql), {**where.params, **params}), where
            except sqlite3.OperationalError as error:
                if malformed_json(error) and not unreadable:
                    unreadable = True
                elif too_deep(error) and len(rooms) > 1:
                    rooms.pop(0)
                else:
                    raise

    def count(self, project_id: str, query: AudienceQuery, *, max_python: int) -> int:
        try:
            return self._count(project_id, query, max_python, guarded=False)
        except sqlite3.OperationalError as error:
            # Reads are not one snapshot: a row SQLite cannot read as JSON may have come
            # between the two statements. Again, guarded from the start.
            if not malformed_json(error):
                raise
            return self._count(project_id, query, max_python, guarded=True)

    def _count(self, project_id: str, query: AudienceQuery, max_python: int,
               guarded: bool) -> int:
        params = {"project": project_id, "undecided": _UNDECIDED}
        # One pass, the expression evaluated once per row: a member adds 1, an undecided row
        # _UNDECIDED, so the sum carries both counts (a project holds far fewer contacts).
        project = self._project_column()
        cursor, where = self._select(query, lambda sql: (
            f"SELECT total(coalesce({sql}, :undecided)) FROM contacts "
            f"WHERE {project} = :project"), params, streamed=guarded)
        undecided, members = divmod(int(cursor.fetchone()[0]), _UNDECIDED)
        if undecided > max_python:
            raise AudienceTooCostly(undecided, max_python, query.python_parts)
        if undecided:
            rows = self._conn.execute(
                f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE project_id = :project AND "
                f"({where.sql}) IS NULL", {**where.params, **params})
            members += sum(query.matches(_contact(row).to_json()) for row in _chunks(rows))
        return members

    def members(self, project_id: str, query: AudienceQuery, *, before: int | None,
                limit: int, max_python: int) -> Page:
        # Rows SQL rules out never come back; the rest come newest first, a page's worth at a
        # time, until the page (and one more, to know there is a next page) is full.
        rows, _ = self._select(query, lambda sql: (
            f"SELECT {CONTACT_COLUMNS}, seq, {sql} AS e FROM contacts "
            f"WHERE project_id = :project AND seq < :before AND ({sql}) IS NOT 0 "
            "ORDER BY seq DESC"), {"project": project_id,
                                   "before": _END if before is None else before}, streamed=True)
        found = [(_contact(row), row[-2]) for row in
                 _decide(rows, query, max_python, limit + 1, lambda row: _contact(row).to_json())]
        more = len(found) > limit
        found = found[:limit]
        return Page([contact for contact, _ in found], found[-1][1] if more else None)

    def member_ids(self, project_id: str, query: AudienceQuery, *, limit: int,
                   max_python: int) -> list[str]:
        # Only the id of a member SQL decides comes back; an undecided one is read whole.
        project = self._project_column()
        rows, _ = self._select(query, lambda sql: (
            f"SELECT id, {sql} AS e FROM contacts WHERE {project} = :project AND "
            f"({sql}) IS NOT 0 ORDER BY seq"), {"project": project_id}, streamed=True)
        return [row[0] for row in _decide(rows, query, max_python, limit + 1,
                                          lambda row: self._contact_json(project_id, row[0]))]

    def _project_column(self) -> str:
        """How a pass over all of a project's contacts finds them: by contacts_project, or —
        when the database holds one project, whose contacts are then every row — by reading
        the table in order (`+` keeps SQLite from the index): no lookup from index to row,
        a seventh less time for a count over 100,000 contacts."""
        several = self._conn.execute("SELECT COUNT(*) > 1 FROM projects").fetchone()[0]
        return "project_id" if several else "+project_id"

    def _contact_json(self, project_id: str, contact_id: str) -> dict[str, Any]:
        row = self._conn.execute(f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE project_id = ? "
                                 "AND id = ?", (project_id, contact_id)).fetchone()
        return _contact(row).to_json()

    def contains(self, project_id: str, query: AudienceQuery, contact_id: str) -> bool:
        cursor, _ = self._select(query, lambda sql: (
            f"SELECT {CONTACT_COLUMNS}, {sql} FROM contacts WHERE project_id = :project "
            "AND id = :contact"), {"project": project_id, "contact": contact_id})
        row = cursor.fetchone()
        if row is None:
            return False
        if row[-1] is None:
            return query.matches(_contact(row).to_json())
        return bool(row[-1])


def _decide(rows: sqlite3.Cursor, query: AudienceQuery, max_python: int, wanted: int,
            contact_of: Callable[[tuple], dict[str, Any]]) -> Iterator[tuple]:
    """The rows of members, among rows whose last column is the filter's SQL answer (1, or
    NULL: `query.matches(contact_of(row))` decides, for at most `max_python` rows), until
    `wanted` are found. Rows are fetched `wanted` at a time: most that come back are members."""
    checked = found = 0
    for row in _chunks(rows, close=True, size=min(_CHUNK, wanted)):
        if row[-1] is None:
            checked += 1
            if checked > max_python:
                raise AudienceTooCostly(checked, max_python, query.python_parts)
            if not query.matches(contact_of(row)):
                continue
        yield row
        found += 1
        if found >= wanted:
            return


def _chunks(cursor: sqlite3.Cursor, *, close: bool = False,
            size: int = _CHUNK) -> Iterator[tuple]:
    """A cursor's rows, fetched `size` at a time (memory stays bounded by it). With `close`, a
    caller that stops early (its page is full) ends the statement at once."""
    try:
        while rows := cursor.fetchmany(size):
            yield from rows
    finally:
        if close:
            cursor.close()
