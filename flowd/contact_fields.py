"""What a contact's fields may hold: the one definition used by the contacts API, the `contact`
of an event, and the `update_contact` step."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from flowd.validation import (
    E164_PATTERN,
    EMAIL_PATTERN,
    Array,
    Boolean,
    Json,
    Nullable,
    Object,
    String,
    text,
    time_string,
)

_EMAIL_MESSAGE = "must be an email address such as ada@example.com"


@lru_cache(maxsize=1024)
def check_timezone(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "must be an IANA time zone name such as Europe/Berlin"
    return None


CONTACT_ID = text(1, 200, description="The caller's own user id: 1–200 printable characters.")
EMAIL = String(max_len=254, pattern=EMAIL_PATTERN, pattern_message=_EMAIL_MESSAGE,
               description="An email address such as ada@example.com.")
TIMEZONE = String(max_len=64, check=check_timezone, check_code="unknown_time_zone",
                  format="iana-time-zone",
                  description="An IANA time zone name such as Europe/Berlin; the server checks "
                              "that it exists (a rule the schema cannot state).")

PHONE = String(max_len=16, pattern=E164_PATTERN, pattern_message=(
    "must be an E.164 phone number: + and 7 to 15 digits with no spaces, such as "
    "+4915112345678"), description="An E.164 phone number such as +4915112345678.")

CONTACT_FIELDS = Object(
    description="Fields to set. `traits` merge shallowly into the stored ones (a null value "
                "deletes that trait); `subscribed` merges per channel; every other given field "
                "replaces the stored value (null clears it).",
    fields={
        "email": Nullable(EMAIL),
        "phone": Nullable(PHONE),
        "timezone": Nullable(TIMEZONE),
        "traits": Json(object_only=True),
        "tags": Array(text(1, 100), max_items=1000),
        "subscribed": Object({"email": Boolean(), "sms": Boolean(), "push": Boolean()}),
        "push_tokens": Array(String(min_len=1, max_len=4096), max_items=100),
    },
    read_only={"id": String(), "created_at": time_string(), "updated_at": time_string()},
).named("ContactUpsert")

CHANNELS = ("email", "sms", "push")
