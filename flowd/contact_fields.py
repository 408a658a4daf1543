"""What a contact's fields may hold: the one definition used by the contacts API, the `contact`
of an event, and the `update_contact` step."""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

from flowd.schema import Array, Boolean, Json, Nullable, Object, String

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def check_email(value: str) -> str | None:
    return None if _EMAIL.fullmatch(value) else "must be an email address such as ada@example.com"


@lru_cache(maxsize=1024)
def check_timezone(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "must be an IANA time zone name such as Europe/Berlin"
    return None


def check_contact_id(value: str) -> str | None:
    return None if value.isprintable() else "must contain only printable characters"


CONTACT_ID = String(min_len=1, max_len=200, check=check_contact_id,
                    description="The caller's own user id: 1–200 printable characters.")

CONTACT_FIELDS = Object(
    title="ContactUpsert",
    description="Fields to set. `traits` merge shallowly into the stored ones (a null value "
                "deletes that trait); `subscribed` merges per channel; every other given field "
                "replaces the stored value (null clears it).",
    fields={
        "email": Nullable(String(max_len=254, check=check_email, format="email")),
        "phone": Nullable(String(max_len=32, pattern=r"\+?[0-9][0-9 ().-]{2,31}",
                                 pattern_message="must be a phone number such as +4915112345678")),
        "timezone": Nullable(String(max_len=64, check=check_timezone,
                                    description="IANA time zone name, e.g. Europe/Berlin.")),
        "traits": Json(object_only=True),
        "tags": Array(String(min_len=1, max_len=100), max_items=1000),
        "subscribed": Object({"email": Boolean(), "sms": Boolean(), "push": Boolean()}),
        "push_tokens": Array(String(min_len=1, max_len=4096), max_items=100),
    },
    read_only=("id", "created_at", "updated_at"),
)

CHANNELS = ("email", "sms", "push")
