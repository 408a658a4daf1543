"""Records the store hands out, and their JSON shapes in the API contract."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from flowd.timeutil import format_ms


class Role(str, Enum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    INGEST = "ingest"


@dataclass(frozen=True)
class ApiKey:
    id: str
    project_id: str
    role: Role
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "project": self.project_id, "role": self.role.value,
                "name": self.name, "prefix": self.prefix,
                "created_at": format_ms(self.created_at)}


DEFAULT_SUBSCRIBED = {"email": True, "sms": True, "push": True}


@dataclass
class Contact:
    id: str
    created_at: int
    updated_at: int
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    subscribed: dict[str, bool] = field(default_factory=lambda: dict(DEFAULT_SUBSCRIBED))
    push_tokens: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "phone": self.phone,
                "timezone": self.timezone, "traits": self.traits, "tags": self.tags,
                "subscribed": self.subscribed, "push_tokens": self.push_tokens,
                "created_at": format_ms(self.created_at), "updated_at": format_ms(self.updated_at)}


@dataclass
class Event:
    id: str
    project_id: str
    name: str
    contact_id: str | None
    properties: dict[str, Any]
    timestamp: int
    received_at: int
    message_id: str | None
    runs_started: list[str] = field(default_factory=list)
    runs_resumed: list[str] = field(default_factory=list)
    runs_exited: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "contact_id": self.contact_id,
                "properties": self.properties, "timestamp": format_ms(self.timestamp),
                "received_at": format_ms(self.received_at), "message_id": self.message_id}


@dataclass(frozen=True)
class Page:
    """One page of a newest-first listing; `next_before` is the position to continue from."""

    items: list[Any]
    next_before: int | None


def encode_cursor(position: int | None) -> str | None:
    if position is None:
        return None
    return base64.urlsafe_b64encode(f"p{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raises ValueError for anything this server did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("is not a cursor this server returned") from None
    if not raw.startswith("p") or not raw[1:].isdigit():
        raise ValueError("is not a cursor this server returned")
    return int(raw[1:])
