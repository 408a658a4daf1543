"""What a delivery to a webhook trigger says: its body as properties (a JSON object, an
url-encoded form, or a multipart form's text fields), and whether its sender is a browser that
should get a page rather than JSON."""

from __future__ import annotations

from email import policy
from email.errors import StartBoundaryNotFoundDefect
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

from flowd.api.middleware import parse_json
from flowd.api.pages import MULTIPART
from flowd.api.routes import FORM
from flowd.errors import BadRequest, ValidationError
from flowd.validation import INVALID, Json

MAX_FIELDS = 1000
_PROPERTIES = Json(object_only=True)


def properties(raw: bytes, content_type: str, content_type_header: str,
               charset: str | None) -> dict[str, Any]:
    """The delivery's properties. A form's repeated names become lists; any type other than
    the two form types (or none) is read as JSON, as everywhere in this API."""
    if content_type == FORM:
        return _fields(_urlencoded(raw, charset or "utf-8"))
    if content_type == MULTIPART:
        return _fields(_multipart(raw, content_type_header))
    value = parse_json(raw, optional=True)
    problems: list[Any] = []
    if _PROPERTIES.validate(value, "body", problems) is INVALID:   # nesting depth
        raise ValidationError(problems)
    return value


def _fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name not in fields:
            fields[name] = value
        elif isinstance(fields[name], list):
            fields[name].append(value)
        else:
            fields[name] = [fields[name], value]
    return fields


def _urlencoded(raw: bytes, charset: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode(charset), keep_blank_values=True, max_num_fields=MAX_FIELDS,
                         encoding=charset, errors="strict")
    except (UnicodeDecodeError, LookupError):
        raise BadRequest(f"the form is not {charset} text") from None
    except ValueError:
        raise BadRequest(f"the form has more than {MAX_FIELDS} fields") from None


def _multipart(raw: bytes, content_type_header: str) -> list[tuple[str, str]]:
    """Text fields, in order. File parts (those with a filename) are left out: a form trigger
    takes what people type, and a file has no place in an event's properties."""
    head = f"Content-Type: {content_type_header}\r\n\r\n".encode("utf-8", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart() or any(isinstance(d, StartBoundaryNotFoundDefect)
                                         for d in message.defects):
        raise BadRequest("the multipart body has no parts under the boundary its "
                         "Content-Type names")
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        if len(pairs) == MAX_FIELDS:
            raise BadRequest(f"the form has more than {MAX_FIELDS} fields")
        payload = part.get_payload(decode=True)
        charset = part.get_content_charset() or "utf-8"
        try:
            pairs.append((name, payload.decode(charset) if isinstance(payload, bytes) else ""))
        except (UnicodeDecodeError, LookupError):
            raise BadRequest(f"the form field {name!r} is not {charset} text") from None
    return pairs
