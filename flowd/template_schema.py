"""The request shape of a message template (per channel), and the checks a schema cannot
state: its fields parse, and an email has a body. Used by the templates API and by bundles."""

from __future__ import annotations

from typing import Any

from flowd.errors import Problem, ValidationError
from flowd.message_templates import compile_content
from flowd.templates import TemplateError
from flowd.validation import Enum, Json, Object, String, Tagged, text, time_string

_READ_ONLY = {"id": String(), "created_at": time_string(), "updated_at": time_string()}
_NAME = text(1, 200, description="Unique in the project; steps name a template by id or name.")
_TEXT = String(max_len=200_000, description="May hold {{ … }} templates.")
TEMPLATE_KINDS = {
    "email": Object({"name": _NAME, "channel": Enum(("email",)),
                     "subject": String(max_len=2000, description="May hold {{ … }} templates."),
                     "html": _TEXT.described("Values put in are HTML-escaped."),
                     "text": _TEXT}, required=("name", "channel", "subject"),
                    read_only=_READ_ONLY,
                    description="An email: `html`, `text`, or both (multipart/alternative)."
                    ).named("EmailTemplate"),
    "sms": Object({"name": _NAME, "channel": Enum(("sms",)), "body": _TEXT},
                  required=("name", "channel", "body"), read_only=_READ_ONLY
                  ).named("SmsTemplate"),
    "push": Object({"name": _NAME, "channel": Enum(("push",)),
                    "title": String(max_len=2000), "body": _TEXT,
                    "data": Json(object_only=True, description="Sent with the notification; "
                                 "its strings may hold templates.")},
                   required=("name", "channel", "body"), read_only=_READ_ONLY
                   ).named("PushTemplate"),
}
TEMPLATE_BODY = Tagged("channel", TEMPLATE_KINDS).named("TemplateInput")


def template_content(body: dict[str, Any]) -> dict[str, Any]:
    """The channel's fields of a request body, checked: they parse, and an email has a body."""
    content = {k: v for k, v in body.items() if k not in ("name", "channel")}
    if body["channel"] == "email" and not (content.get("html") or content.get("text")):
        raise ValidationError([Problem("html", "an email template needs html, text or both",
                                       "missing_body")])
    try:
        compile_content(body["channel"], content)
    except TemplateError as error:
        raise ValidationError(error.problems, message="a template does not parse") from None
    return content
