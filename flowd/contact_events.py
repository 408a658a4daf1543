"""Contact events: the events a contact change stands for, so workflows can start on "a new
contact", "a tag added" and so on exactly as on posted events.

A change made through the API, by an event's `contact` patch, or by an `update_contact` step
becomes, in this order:

- `contact.created` (properties `{}`) for a new contact, auto-created ones (an event naming an
  unknown contact id) included; otherwise `contact.updated` with `changed`: the changed field
  names (`["email", "traits.plan", "subscribed.email", "tags"]`), when anything changed;
- `contact.tag_added` / `contact.tag_removed` with `tag`, one event per tag.

Only the names something in the contact's project may match — a trigger, an `exit_on` rule, a
run waiting for it — are built and stored: the rest would cost every upsert an event row that
nothing reads (ingest's speed is the point of flowd). So these events appear in
`GET /v1/events` only while something listens for them.
"""

from __future__ import annotations

from typing import Any, Callable

from flowd.store.records import ContactChange

CREATED = "contact.created"
UPDATED = "contact.updated"
TAG_ADDED = "contact.tag_added"
TAG_REMOVED = "contact.tag_removed"
NAMES = (CREATED, UPDATED, TAG_ADDED, TAG_REMOVED)


def contact_events(change: ContactChange, listens: Callable[[str], bool]
                   ) -> list[tuple[str, dict[str, Any]]]:
    """(name, properties) of the events `change` stands for that something `listens` to."""
    found: list[tuple[str, dict[str, Any]]] = []
    if change.created:
        if listens(CREATED):
            found.append((CREATED, {}))
    elif change.changed and listens(UPDATED):
        found.append((UPDATED, {"changed": list(change.changed)}))
    if change.tags_added and listens(TAG_ADDED):
        found += [(TAG_ADDED, {"tag": tag}) for tag in change.tags_added]
    if change.tags_removed and listens(TAG_REMOVED):
        found += [(TAG_REMOVED, {"tag": tag}) for tag in change.tags_removed]
    return found
