"""Reference 000's definitions: `{"name", "trigger": {"eventType", "filters"}, "isActive",
"steps": [{"type", "config", "delayMinutes"}]}` — a list run in order, `branch` steps jumping to
`ifTrue` / `ifFalse` (a step's 0-based index in the list, or a step's `id`).

Mapped: send_email (`templateId` → `template`, `bodyHtml` → `html`), update_profile →
update_contact, webhook, wait + `delayMinutes` → wait `duration` (its `reason` becomes the
step's name), branch `{trait | event | field, op, value}` → condition, `isActive` → active
(when there are no errors). send_push, send_sms and ai_action map where this server has the
step type, else they become placeholders with a warning."""

from __future__ import annotations

import re
from typing import Any

from flowd.imports.common import (
    Mapping,
    available,
    key,
    leaf,
    placeholder,
    seconds_to_iso,
    step_id,
)

_STEP_KEYS = ("type", "config", "delayMinutes", "id", "name", "label")
# Config keys that keep their name, per step type.
_SAME = {
    "send_email": ("subject", "to", "from", "text"),
    "send_sms": ("to", "body"),
    "send_push": ("title", "body", "data"),
    "webhook": ("url", "method", "headers", "body"),
}


def detect(body: dict[str, Any]) -> bool:
    return isinstance(body.get("steps"), list)


def _condition(raw: Any, path: str, mapping: Mapping) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        mapping.warn(path, "a branch needs a condition {trait | event, op, value}: none imported")
        return None
    if "trait" in raw:
        field, source = f"contact.traits.{raw['trait']}", "trait"
    elif "event" in raw:
        field, source = f"event.properties.{raw['event']}", "event"
    elif "field" in raw:
        field, source = str(raw["field"]), "field"
    else:
        mapping.warn(path, "the condition names no trait, event or field: none imported")
        return None
    mapping.rest(raw, (source, "op", "operator", "value"), path)
    return leaf(field, raw.get("op", raw.get("operator", "eq")), raw.get("value"),
                path, mapping, "value" in raw)


def _filters(raw: Any, path: str, mapping: Mapping) -> dict[str, Any] | None:
    """Filters narrow by event properties: `{"plan": "pro"}` means properties.plan equals pro."""
    if isinstance(raw, dict) and raw and all(not isinstance(v, (dict, list)) for v in raw.values()):
        leaves = [{"field": f"event.properties.{k}", "op": "eq", "value": v}
                  for k, v in raw.items()]
        return leaves[0] if len(leaves) == 1 else {"all": leaves}
    if raw not in (None, {}, []):
        mapping.warn(path, "filters of this shape have no equivalent: not imported (add a "
                           "trigger filter)")
    return None


def _target(raw: Any, ids: list[str], by_label: dict[str, str], path: str,
            mapping: Mapping) -> str | None:
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(ids):
        return ids[raw]
    if isinstance(raw, str) and raw in by_label:
        return by_label[raw]
    if raw is not None:
        mapping.warn(path, f"{raw!r} names no step (a 0-based index or a step id): this branch "
                           "ends the run")
    return None


def _step(raw: dict[str, Any], sid: str, i: int, ids: list[str], by_label: dict[str, str],
          mapping: Mapping) -> dict[str, Any]:
    path = f"steps[{i}]"
    kind = key(raw.get("type"))
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    step: dict[str, Any] = {"id": sid}
    name = raw.get("name", raw.get("label"))
    if isinstance(name, str) and name:
        step["name"] = name[:200]
    out: dict[str, Any] = {}
    used = ["config"]
    if kind == "wait":
        minutes = raw.get("delayMinutes")
        duration = seconds_to_iso(minutes * 60) if isinstance(minutes, (int, float)) else None
        if duration is None:
            mapping.warn(f"{path}.delayMinutes", "a wait needs delayMinutes (a number): the "
                                                 "step has no duration")
        else:
            out["duration"] = duration
        used.append("delayMinutes")
        if isinstance(config.get("reason"), str):
            step.setdefault("name", config["reason"][:200])
        mapping.rest(config, ("reason",), f"{path}.config")
        step.update(type="wait", config=out)
    elif kind == "branch":
        condition = _condition(config.get("condition"), f"{path}.config.condition", mapping)
        if condition is not None:
            out["if"] = condition
        step.update(type="condition", config=out, next={
            "yes": _target(config.get("ifTrue"), ids, by_label, f"{path}.config.ifTrue", mapping),
            "no": _target(config.get("ifFalse"), ids, by_label, f"{path}.config.ifFalse",
                          mapping)})
        mapping.rest(config, ("condition", "ifTrue", "ifFalse"), f"{path}.config")
    elif kind == "update_profile":
        if "traits" in config:
            out["traits"] = config["traits"]
        mapping.rest(config, ("traits",), f"{path}.config")
        step.update(type="update_contact", config=out)
    elif kind == "ai_action" and available("ai"):
        out = {k: config[k] for k in ("flavor", "prompt") if k in config}
        save_to = _save_to(config.get("saveTo"))
        if save_to is not None:
            out["save_to"] = save_to
        elif "saveTo" in config:
            mapping.warn(f"{path}.config.saveTo", "is not a trait or variable name: not imported")
        mapping.rest(config, ("flavor", "prompt", "saveTo"), f"{path}.config")
        step.update(type="ai", config=out)
    elif kind in _SAME and available(kind):
        out = {k: config[k] for k in _SAME[kind] if k in config}
        known = list(_SAME[kind])
        if kind == "send_email":
            for source, target in (("templateId", "template"), ("bodyHtml", "html"),
                                   ("bodyText", "text")):
                if source in config:
                    out[target] = config[source]
                    known.append(source)
        mapping.rest(config, known, f"{path}.config")
        step.update(type=kind, config=out)
    else:
        step = {**placeholder(sid, kind, f"{path}.type", mapping), **(
            {"name": step["name"]} if "name" in step else {})}
    if kind != "wait" and "delayMinutes" in raw:
        mapping.warn(f"{path}.delayMinutes", "only a wait step waits: not imported")
        used.append("delayMinutes")
    mapping.rest(raw, [*_STEP_KEYS], path)
    return step


def _save_to(raw: Any) -> str | None:
    """Where an ai_action's answer goes: the profile's trait of that name (its templates read
    `trait.*`), or a run variable written `vars.x`."""
    if not isinstance(raw, str):
        return None
    for prefix, target in (("vars.", "vars."), ("contact.traits.", "contact.traits."),
                           ("traits.", "contact.traits."), ("trait.", "contact.traits."),
                           ("user.", "contact.traits."), ("profile.", "contact.traits."),
                           ("", "contact.traits.")):
        if raw.startswith(prefix):
            name = raw[len(prefix):]
            return target + name if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) else None
    return None


def convert(body: dict[str, Any], mapping: Mapping) -> dict[str, Any]:
    raw_steps = [s if isinstance(s, dict) else {} for s in body["steps"]]
    used: set[str] = set()
    ids = [step_id(s.get("id"), f"s{i + 1}", used) for i, s in enumerate(raw_steps)]
    by_label = {str(s["id"]): ids[i] for i, s in enumerate(raw_steps) if "id" in s}
    by_label.update({s["label"]: ids[i] for i, s in enumerate(raw_steps)
                     if isinstance(s.get("label"), str)})
    steps = [_step(s, ids[i], i, ids, by_label, mapping) for i, s in enumerate(raw_steps)]
    trigger_raw = body.get("trigger") if isinstance(body.get("trigger"), dict) else {}
    if isinstance(trigger_raw.get("eventType"), str):
        trigger: dict[str, Any] = {"type": "event", "event": trigger_raw["eventType"]}
        condition = _filters(trigger_raw.get("filters"), "trigger.filters", mapping)
        if condition is not None:
            trigger["filter"] = condition
    else:
        trigger = {"type": "manual"}
        mapping.warn("trigger", "no eventType: the workflow only starts when fired through "
                                "the API")
    mapping.rest(trigger_raw, ("eventType", "filters"), "trigger")
    mapping.rest(body, ("name", "description", "trigger", "isActive", "steps"), "")
    return {"name": body.get("name"), "description": body.get("description", ""),
            "status": "active" if body.get("isActive") is True else "draft",
            "trigger": trigger, "steps": steps}
