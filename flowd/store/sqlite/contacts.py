"""Contacts, in SQLite: the people (or devices) runs are about, keyed by the caller's own user
id."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from flowd.store import base
from flowd.store.records import Contact, ContactChange, Page, Upserted
from flowd.store.sqlite.paging import BULK_ROWS, fetch_page

_COLUMNS = ("id, email, phone, timezone, traits, tags, subscribed, push_tokens, "
            "created_at, updated_at")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _contact(row: tuple) -> Contact:
    return Contact(id=row[0], email=row[1], phone=row[2], timezone=row[3],
                   traits=json.loads(row[4]), tags=json.loads(row[5]),
                   subscribed=json.loads(row[6]), push_tokens=json.loads(row[7]),
                   created_at=row[8], updated_at=row[9])


_MISSING = object()


def _same(old: Any, new: Any) -> bool:
    """JSON equality: in Python 1 == True == 1.0, but a trait going from 1 to true changed."""
    if type(old) is not type(new):
        return False
    if isinstance(old, dict):
        return old.keys() == new.keys() and all(_same(v, new[k]) for k, v in old.items())
    if isinstance(old, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new))
    return bool(old == new)


def apply_patch(contact: Contact, patch: dict[str, Any]) -> ContactChange:
    """The contract's upsert rules: traits merge shallowly (null deletes a trait), `subscribed`
    merges per channel, `add_tags`/`remove_tags` edit the tag list, every other given field
    replaces the stored one. Returns what really changed (a value set to what it was is no
    change), for contact events."""
    changed: list[str] = []
    tags_before = contact.tags
    for name, value in patch.items():
        if name == "traits":
            traits = contact.traits
            for key, trait in value.items():
                old = traits.get(key, _MISSING)
                if trait is None:
                    if old is not _MISSING:
                        del traits[key]
                        changed.append(f"traits.{key}")
                elif old is _MISSING or not _same(old, trait):
                    traits[key] = trait
                    changed.append(f"traits.{key}")
        elif name == "subscribed":
            for channel, on in value.items():
                if contact.subscribed.get(channel) is not on:
                    contact.subscribed[channel] = on
                    changed.append(f"subscribed.{channel}")
        # The tag list is replaced, never edited in place: `tags_before` stays the old one.
        elif name == "add_tags":  # from the update_contact step
            contact.tags = contact.tags + [tag for tag in value if tag not in contact.tags]
        elif name == "remove_tags":
            contact.tags = [tag for tag in contact.tags if tag not in value]
        elif name == "tags":
            contact.tags = list(value)
        elif not _same(getattr(contact, name), value):
            setattr(contact, name, value)
            changed.append(name)
    added: list[str] = []
    removed: list[str] = []
    if contact.tags is not tags_before and contact.tags != tags_before:
        before, after = set(tags_before), set(contact.tags)
        added = [tag for tag in contact.tags if tag not in before]
        removed = [tag for tag in tags_before if tag not in after]
        changed.append("tags")
    return ContactChange(contact.id, False, changed, added, removed)


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
               now: int) -> Upserted:
        contact = self.get(project_id, contact_id)
        created = contact is None
        if contact is None:
            contact = Contact(id=contact_id, created_at=now, updated_at=now)
        change = apply_patch(contact, patch)._replace(created=created)
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
        return Upserted(contact, created, change)

    def ensure(self, project_id: str, contact_ids: Iterable[str], now: int, *,
               report: bool = False) -> list[str]:
        ids = list(contact_ids)
        if report:
            # RETURNING lists only the rows inserted (not those OR IGNORE skipped): the
            # contacts this call created, in one statement.
            return [row[0] for row in self._conn.execute(
                "INSERT OR IGNORE INTO contacts (project_id, id, created_at, updated_at) "
                "SELECT ?, value, ?, ? FROM json_each(?) WHERE true ORDER BY key RETURNING id",
                (project_id, now, now, _dumps(ids)))]
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
        return []

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
