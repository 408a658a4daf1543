"""`update_contact`: change the run's contact, committed with the step's own record."""

from __future__ import annotations

from typing import Any

from flowd.contact_fields import CONTACT_FIELDS, PHONE
from flowd.errors import Problem
from flowd.steps.base import Outcome, StepConfigError, StepContext, StepFailed, StepType
from flowd.validation import INVALID, Array, Json, Object, String

_FIELDS = ("email", "phone", "timezone", "traits", "subscribed")


class UpdateContactStep(StepType):
    name = "update_contact"
    summary = ("Changes the run's contact: traits, tags, email, phone, time zone, subscriptions. "
               "The change is ingested as contact events (`contact.updated`, "
               "`contact.tag_added`, `contact.tag_removed`) one run deeper, like `emit_event`.")
    # Values may be templates, so their contact-field rules are checked when the step runs.
    schema = Object({"traits": Json(object_only=True),
                     "add_tags": Array(String(min_len=1, max_len=100), max_items=100),
                     "remove_tags": Array(String(min_len=1, max_len=100), max_items=100),
                     "email": Json(), "phone": Json(), "timezone": Json(),
                     "subscribed": Json(object_only=True)})

    def compile(self, config: dict[str, Any], path: str) -> None:
        if not config:
            raise StepConfigError([("missing_config", Problem(
                path, "names nothing to change (traits, add_tags, remove_tags, email, phone, "
                      "timezone, subscribed)"))])
        phone = config.get("phone")
        if isinstance(phone, str) and "{{" not in phone:
            # A number written in the definition is checked on save; a template's value is
            # checked when the step runs.
            problems: list[Problem] = []
            if PHONE.validate(phone, f"{path}.phone", problems) is INVALID:
                raise StepConfigError([("invalid_config", p) for p in problems])

    async def run(self, ctx: StepContext) -> Outcome:
        if ctx.contact_id is None:
            raise StepFailed("no_contact", "this run has no contact to update", retryable=False)
        fields = {k: v for k, v in ctx.config.items() if k in _FIELDS}
        problems: list[Problem] = []
        patch = CONTACT_FIELDS.validate(fields, "config", problems)
        if patch is INVALID:
            raise StepFailed("invalid_contact_value",
                             "; ".join(f"{p.path}: {p.message}" for p in problems), retryable=False)
        for key in ("add_tags", "remove_tags"):
            if key in ctx.config:
                patch[key] = [str(tag) for tag in ctx.config[key]]
        return Outcome("updated", output=patch, contact_patch=patch)
