"""Contacts, in SQLite: the people (or devices) runs are about, keyed by the caller's own user
id."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from flowd.store import base
from flowd.store.records import Contact, Page
from flowd.store.sqlite.paging import BULK_ROWS, fetch_page

_COLUMNS = ("id, email, phone, timezone, traits, tags, subscribed, push_tokens, "
            "created_at, updated_at")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _contact(row: tuple) -> Contact:
    return Contact(id=row[0], email=row[1], phone=row[2], timezone=row[3],
                   traits=json.loads(row[4]), tags=json.loads(row[5]),
                   subscribed=json.loads(row[6]), push_tokens=json.loads(row[7]),
                   created_at=row[8], updated_at=row[9])


def apply_patch(contact: Contact, patch: dict[str, Any]) -> None:
    """The contract's upsert rules: traits merge shallowly (null deletes a trait), `subscribed`
    merges per channel, `add_tags`/`remove_tags` edit the tag list, every other given field
    replaces the stored one."""
    for name, value in patch.items():
        if name == "traits":
            for key, trait in value.items():
                if trait is None:
                    contact.traits.pop(key, None)
                else:
                    contact.traits[key] = trait
        elif name == "subscribed":
            contact.subscribed.update(value)
        elif name == "add_tags":  # from the update_contact step
            contact.tags += [tag for tag in value if tag not in contact.tags]
        elif name == "remove_tags":
            contact.tags = [tag for tag in contact.tags if tag not in value]
        else:
            setattr(contact, name, value)


class SqliteContacts(base.Contacts):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, project_id: str, contact_id: str) -> Contact | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM contacts WHERE project_id = ? AND id = ?",
                                 (project_id, contact_id)).fetchone()
        return _contact(row) if row else None

    def get_many_json(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        by_project: dict[str, set[str]] = {}
        for project_id, contact_id in keys:
            by_project.setdefault(project_id, set()).add(contact_id)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for project_id, ids in by_project.items():
            ordered = list(ids)
            for start in range(0, len(ordered), 500):  # bounded statement size
                chunk = ordered[start:start + 500]
                rows = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM contacts WHERE project_id = ? "
                    f"AND id IN ({','.join('?' * len(chunk))})", (project_id, *chunk))
                for row in rows:
                    found[(project_id, row[0])] = _contact(row).to_json()
        return found

    def upsert(self, project_id: str, contact_id: str, patch: dict[str, Any],
               now: int) -> tuple[Contact, bool]:
        contact = self.get(project_id, contact_id)
        created = contact is None
        if contact is None:
            contact = Contact(id=contact_id, created_at=now, updated_at=now)
        apply_patch(contact, patch)
        contact.updated_at = now
        values = (contact.email, contact.phone, contact.timezone, _dumps(contact.traits),
                  _dumps(contact.tags), _dumps(contact.subscribed), _dumps(contact.push_tokens))
        if created:
            self._conn.execute(
                "INSERT INTO contacts (project_id, id, email, phone, timezone, traits, tags, "
                "subscribed, push_tokens, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (project_id, contact_id, *values, now, now))
        else:
            self._conn.execute(
                "UPDATE contacts SET email = ?, phone = ?, timezone = ?, traits = ?, tags = ?, "
                "subscribed = ?, push_tokens = ?, updated_at = ? WHERE project_id = ? AND id = ?",
                (*values, now, project_id, contact_id))
        return contact, created

    def ensure(self, project_id: str, contact_ids: Iterable[str], now: int) -> None:
        ids = list(contact_ids)
        if len(ids) < BULK_ROWS:
            self._conn.executemany(
                "INSERT OR IGNORE INTO contacts (project_id, id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)", ((project_id, contact_id, now, now) for contact_id in ids))
        else:
            # One statement for many, its rows as JSON: SQLite does the work without the GIL.
            self._conn.execute(
                "INSERT OR IGNORE INTO contacts (project_id, id, created_at, updated_at) "
                "SELECT ?, value, ?, ? FROM json_each(?) ORDER BY key",
                (project_id, now, now, _dumps(ids)))

    def delete(self, project_id: str, contact_id: str) -> bool:
        cursor = self._conn.execute("DELETE FROM contacts WHERE project_id = ? AND id = ?",
                                    (project_id, contact_id))
        return cursor.rowcount == 1

    def page(self, project_id: str, *, email: str | None, tag: str | None,
             before: int | None, limit: int) -> Page:
        where, args = ["project_id = ?"], [project_id]
        if email is not None:
            where.append("email = ?")
            args.append(email)
        if tag is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(contacts.tags) WHERE value = ?)")
            args.append(tag)
        return fetch_page(self._conn, table="contacts", columns=_COLUMNS, where=where, args=args,
                          before=before, limit=limit, convert=_contact)
