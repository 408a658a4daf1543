"""What the `ai` step asks a model and how it judges the answer: the messages of each flavor,
the JSON Schema of `fields`, and the checks an answer must pass (a `decide` answer is one of
the options; an `extract` answer, or a `generate` one with `fields`, is a JSON object whose
fields have their declared types). An answer that fails is asked again once with
`corrective()`; the step decides what a second failure means.

Field types: `string`, `number`, `integer`, `boolean`, or a list of one of them (`string[]`,
…); a trailing `?` lets the model answer `null` (it found nothing). A field the answer lacks,
or has with another type, fails the check; fields it adds are dropped.
"""

from __future__ import annotations

import json
from typing import Any

_SCALARS = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean"}
FIELD_TYPES = tuple(f"{base}{suffix}{optional}" for base in _SCALARS for suffix in ("", "[]")
                    for optional in ("", "?"))
FIELD_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
SHOWN_ANSWER_CHARS = 500    # of a bad answer, in the corrective message and the trace


class BadAnswer(Exception):
    """The answer does not fit what was asked; the message says how (for the model too)."""


def wants_json(config: dict[str, Any]) -> bool:
    return config["flavor"] != "generate" or bool(config.get("fields"))


def answer_schema(config: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema of the answer (Ollama enforces it; OpenAI's JSON mode gets it in the
    prompt), or None for free text."""
    if config["flavor"] == "decide":
        return {"type": "object", "properties": {"choice": {
            "type": "string", "enum": list(config.get("options") or [])}},
            "required": ["choice"]}
    if not wants_json(config):
        return None
    fields = config.get("fields") or {}
    return {"type": "object", "properties": {name: _field_schema(kind)
                                             for name, kind in fields.items()},
            "required": list(fields)}


def _field_schema(kind: str) -> dict[str, Any]:
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    schema: dict[str, Any] = ({"type": "array", "items": {"type": _SCALARS[base[:-2]]}}
                              if base.endswith("[]") else {"type": _SCALARS[base]})
    if optional:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def messages(config: dict[str, Any]) -> list[dict[str, str]]:
    """The system and user messages of a step's (resolved) config."""
    flavor = config["flavor"]
    parts = [config["system"]] if config.get("system") else []
    if flavor == "decide":
        options = ", ".join(json.dumps(o, ensure_ascii=False) for o in config["options"])
        parts.append(f"Decide which one of these options fits: {options}. Answer with a JSON "
                     'object {"choice": "<the option, exactly as written>"} and nothing else.')
    elif flavor == "extract":
        parts.append("Extract these fields from the user's text: "
                     f"{_describe(config['fields'])}. Answer with a JSON object with exactly "
                     "these fields and nothing else; use null for a field the text does not "
                     "give when its type allows null.")
    elif config.get("fields"):
        parts.append(f"Answer with a JSON object with exactly these fields: "
                     f"{_describe(config['fields'])}, and nothing else.")
    out = [{"role": "system", "content": "\n\n".join(parts)}] if parts else []
    return out + [{"role": "user", "content": config["prompt"]}]


def _describe(fields: dict[str, str]) -> str:
    return ", ".join(f"{name} ({_type_words(kind)})" for name, kind in fields.items())


def _type_words(kind: str) -> str:
    base = kind.rstrip("?")
    words = f"list of {base[:-2]}s" if base.endswith("[]") else base
    return words + (" or null" if kind.endswith("?") else "")


def check(config: dict[str, Any], content: str) -> Any:
    """The answer's value (the text, the choice, the fields), or BadAnswer."""
    if config["flavor"] == "decide":
        return _choice(content, config["options"])
    if not wants_json(config):
        return content
    return _fields(_json_object(content), config["fields"])


def _json_object(content: str) -> dict[str, Any]:
    try:
        value = json.loads(unfenced(content))
    except ValueError:
        raise BadAnswer("the answer is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadAnswer("the answer is JSON but not an object")
    return value


def unfenced(content: str) -> str:
    """Models asked for JSON still wrap it in a Markdown fence now and then."""
    text = content.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3]
        text = text[4:] if text.startswith("json") else text
    return text


def _choice(content: str, options: list[str]) -> str:
    try:
        value = json.loads(unfenced(content))
    except ValueError:
        value = content   # a bare word is an answer too
    if isinstance(value, dict):
        value = value.get("choice")
    if not isinstance(value, str):
        raise BadAnswer('the answer has no "choice" text')
    if value in options:
        return value
    # Forgiving about case and spaces, as long as exactly one option is meant.
    near = [o for o in options if o.strip().casefold() == value.strip().casefold()]
    if len(near) == 1:
        return near[0]
    raise BadAnswer(f"{json.dumps(value[:SHOWN_ANSWER_CHARS], ensure_ascii=False)} is not one "
                    "of the options")


def _fields(answer: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    problems, out = [], {}
    for name, kind in fields.items():
        if name not in answer:
            problems.append(f"{name} is missing")
            continue
        value = _typed(answer[name], kind)
        if value is _WRONG:
            problems.append(f"{name} must be {_type_words(kind)}, not "
                            f"{json.dumps(answer[name], ensure_ascii=False)[:80]}")
        else:
            out[name] = value
    if problems:
        raise BadAnswer("; ".join(problems))
    return out


_WRONG = object()


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return None if kind.endswith("?") else _WRONG
    base = kind.rstrip("?")
    if base.endswith("[]"):
        if not isinstance(value, list):
            return _WRONG
        items = [_scalar(item, base[:-2]) for item in value]
        return _WRONG if any(item is _WRONG for item in items) else items
    return _scalar(value, base)


def _scalar(value: Any, base: str) -> Any:
    if isinstance(value, bool):
        return value if base == "boolean" else _WRONG
    if base == "string":
        return value if isinstance(value, str) else _WRONG
    if base == "number":
        return value if isinstance(value, (int, float)) else _WRONG
    if base == "integer":
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, float) and value.is_integer() else _WRONG
    return _WRONG


def corrective(config: dict[str, Any], problem: str) -> str:
    """The message that asks once more."""
    if config["flavor"] == "decide":
        options = ", ".join(json.dumps(o, ensure_ascii=False) for o in config["options"])
        return (f"That answer cannot be used: {problem}. Answer again with a JSON object "
                f'{{"choice": "<option>"}} where the option is exactly one of: {options}.')
    return (f"That answer cannot be used: {problem}. Answer again with a JSON object with "
            f"exactly these fields: {_describe(config['fields'])}.")
