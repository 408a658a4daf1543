"""Message templates, in SQLite."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flowd.ids import new_id
from flowd.store import base
from flowd.store.records import NameTaken, Page, Template
from flowd.store.sqlite.paging import fetch_page

_COLUMNS = "id, project_id, name, channel, content, created_at, updated_at"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _template(row: tuple) -> Template:
    return Template(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6])


class SqliteTemplates(base.Templates):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def create(self, *, project_id: str, name: str, channel: str, content: dict[str, Any],
               now: int) -> Template:
        template = Template(new_id("tpl", now), project_id, name, channel, content, now, now)
        try:
            self._conn.execute(f"INSERT INTO templates ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (template.id, project_id, name, channel, _dumps(content), now, now))
        except sqlite3.IntegrityError:
            raise NameTaken(name) from None
        return template

    def get(self, project_id: str, ref: str) -> Template | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM templates WHERE project_id = ? AND "
                                 "id = ?", (project_id, ref)).fetchone()
        if row is None:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM templates WHERE project_id = ? "
                                     "AND name = ?", (project_id, ref)).fetchone()
        return _template(row) if row else None

    def update(self, template: Template, *, name: str, content: dict[str, Any],
               now: int) -> Template:
        try:
            self._conn.execute("UPDATE templates SET name = ?, content = ?, updated_at = ? "
                               "WHERE id = ?", (name, _dumps(content), now, template.id))
        except sqlite3.IntegrityError:
            raise NameTaken(name) from None
        return Template(template.id, template.project_id, name, template.channel, content,
                        template.created_at, now)

    def delete(self, template_id: str) -> None:
        self._conn.execute("DELETE FROM templates WHERE id = ?", (template_id,))

    def names(self, project_id: str) -> dict[str, str]:
        return dict(self._conn.execute("SELECT id, name FROM templates WHERE project_id = ?",
                                       (project_id,)).fetchall())

    def every(self, project_id: str, limit: int) -> list[Template]:
        return [_template(r) for r in self._conn.execute(
            f"SELECT {_COLUMNS} FROM templates WHERE project_id = ? ORDER BY seq LIMIT ?",
            (project_id, limit))]

    def page(self, project_id: str, *, channel: str | None, before: int | None,
             limit: int) -> Page:
        where, args = ["project_id = ?"], [project_id]
        if channel is not None:
            where.append("channel = ?")
            args.append(channel)
        return fetch_page(self._conn, table="templates", columns=_COLUMNS, where=where,
                          args=args, before=before, limit=limit, convert=_template)
