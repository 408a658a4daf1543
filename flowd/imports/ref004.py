"""Reference 004's workflows: steps plus transitions. `{"name", "description", "triggerEvent"
(also `eventName`, or `triggerConfig.eventName`), "enabled", "allowReentry", "steps": [{"id",
"type", "name", "position", "config", "templateId"}], "transitions": [{"fromStepId",
"toStepId", "condition", "priority"}]}`. The reference shows each field, not a whole document,
so a few spellings are accepted (`from`/`to`, `sourceStepId`/`targetStepId`).

Mapped: TRIGGER is the entry (where its transition leads is the first step); SEND_EMAIL
(`templateId`) → send_email; DELAY `{amount, unit}` → wait; WAIT_FOR_EVENT `{eventName,
timeout}` (seconds) → wait_for_event; CONDITION `{field, operator, value}` → condition
(`contact.data.x` is the contact's trait x, `event.data.x` the event's property x); WEBHOOK;
UPDATE_CONTACT `{data}` → `traits`; EXIT. Transitions become `next`, lowest `priority` first:
out of a CONDITION, a transition whose condition is true (true, "true", "yes", or an object
with such a `result`/`value`/`branch`) is `yes` and a false one `no` (unconditioned ones: the
first yes, the second no); out of a WAIT_FOR_EVENT, one whose condition mentions a timeout is
`timeout`, the other `event`. `enabled` → active (when there are no errors); `allowReentry`
true → reentry always, false → once."""

from __future__ import annotations

from typing import Any

from flowd.imports.common import (
    Mapping,
    key,
    leaf,
    placeholder,
    seconds_to_iso,
    step_id,
    unit_seconds,
)

_STEP_KEYS = ("id", "type", "name", "position", "config", "templateId")
_FROM, _TO = ("fromStepId", "from", "sourceStepId", "source"), ("toStepId", "to",
                                                                "targetStepId", "target")
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


def detect(body: dict[str, Any]) -> bool:
    steps = body.get("steps")
    return isinstance(body.get("transitions"), list) or (
        isinstance(steps, list) and any(isinstance(s, dict) and isinstance(s.get("type"), str)
                                        and s["type"].isupper() for s in steps))


def _field(raw: Any) -> str:
    text = str(raw)
    for prefix, target in (("contact.data.", "contact.traits."), ("event.data.",
                                                                  "event.properties.")):
        if text.startswith(prefix):
            return target + text[len(prefix):]
    return text


def _step(raw: dict[str, Any], sid: str, path: str, mapping: Mapping) -> dict[str, Any]:
    kind = key(raw.get("type"))
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    where = f"{path}.config"
    step: dict[str, Any] = {"id": sid}
    if isinstance(raw.get("name"), str) and raw["name"]:
        step["name"] = raw["name"][:200]
    position = raw.get("position")
    if isinstance(position, dict) and all(isinstance(position.get(k), (int, float))
                                          and not isinstance(position.get(k), bool)
                                          for k in ("x", "y")):
        step["position"] = {"x": position["x"], "y": position["y"]}
    out: dict[str, Any] = {}
    if kind == "SEND_EMAIL":
        template = config.get("templateId", raw.get("templateId"))
        if template is not None:
            out["template"] = str(template)
        mapping.rest(config, ("templateId",), where)
        return {**step, "type": "send_email", "config": out}
    if kind == "DELAY":
        size = unit_seconds(config.get("unit"))
        amount = config.get("amount")
        duration = (seconds_to_iso(amount * size)
                    if size and isinstance(amount, (int, float)) else None)
        if duration is None:
            mapping.warn(where, "a DELAY needs a numeric amount and a unit (seconds, minutes, "
                                "hours, days, weeks): the step has no duration")
        else:
            out["duration"] = duration
        mapping.rest(config, ("amount", "unit"), where)
        return {**step, "type": "wait", "config": out}
    if kind == "WAIT_FOR_EVENT":
        if isinstance(config.get("eventName"), str):
            out["event"] = config["eventName"]
        if "timeout" in config:
            timeout = seconds_to_iso(config["timeout"])
            if timeout is None:
                mapping.warn(f"{where}.timeout", "must be a number of seconds: not imported")
            else:
                out["timeout"] = timeout
        mapping.rest(config, ("eventName", "timeout"), where)
        return {**step, "type": "wait_for_event", "config": out}
    if kind == "CONDITION":
        if "field" in config:
            condition = leaf(_field(config["field"]), config.get("operator", "equals"),
                             config.get("value"), f"{where}.operator", mapping, "value" in config)
            if condition is not None:
                out["if"] = condition
        else:
            mapping.warn(where, "a CONDITION needs a field: none imported")
        mapping.rest(config, ("field", "operator", "value"), where)
        return {**step, "type": "condition", "config": out}
    if kind == "WEBHOOK":
        out = {k: config[k] for k in ("url", "method", "headers", "body") if k in config}
        mapping.rest(config, out, where)
        return {**step, "type": "webhook", "config": out}
    if kind == "UPDATE_CONTACT":
        if isinstance(config.get("data"), dict):
            out["traits"] = config["data"]
        mapping.rest(config, ("data",), where)
        return {**step, "type": "update_contact", "config": out}
    if kind == "EXIT":
        if isinstance(config.get("reason"), str):
            out["reason"] = config["reason"][:500]
        mapping.rest(config, ("reason",), where)
        return {**step, "type": "exit", "config": out}
    return {**placeholder(sid, kind, f"{path}.type", mapping), **step}


def _end(transition: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return key(next((transition[k] for k in keys if k in transition), None))


def _truth(condition: Any) -> bool | None:
    if isinstance(condition, dict):
        condition = next((condition[k] for k in ("result", "value", "branch", "outcome")
                          if k in condition), None)
    if isinstance(condition, bool):
        return condition
    if isinstance(condition, str) and condition.lower() in _TRUE | _FALSE:
        return condition.lower() in _TRUE
    return None


def _mentions_timeout(condition: Any) -> bool:
    return "timeout" in str(condition).lower().replace("_", "").replace("timedout", "timeout")


def _next(step: dict[str, Any], out: list[tuple[int, dict[str, Any]]], ids: dict[Any, str],
          mapping: Mapping) -> Any:
    targets = [(i, ids.get(_end(t, _TO)), t.get("condition")) for i, t in out]
    for i, target, _ in targets:
        if target is None:
            mapping.warn(f"transitions[{i}]", "leads to no step of the workflow: not imported")
    targets = [t for t in targets if t[1] is not None]
    if step["type"] == "condition":
        mapped: dict[str, str | None] = {"yes": None, "no": None}
        for i, target, condition in targets:
            truth = _truth(condition)
            label = ("yes" if truth else "no") if truth is not None else (
                "yes" if mapped["yes"] is None else "no")
            if truth is None and condition is not None:
                mapping.warn(f"transitions[{i}].condition", f"not read as true or false: taken "
                                                            f"as the {label} branch")
            if mapped[label] is not None:
                mapping.warn(f"transitions[{i}]", f"a second {label} branch: not connected")
                continue
            mapped[label] = target
        return mapped
    if step["type"] == "wait_for_event":
        mapped = {"event": None, "timeout": None}
        for i, target, condition in targets:
            label = "timeout" if _mentions_timeout(condition) else "event"
            if mapped[label] is not None:
                mapping.warn(f"transitions[{i}]", f"a second {label} branch: not connected")
                continue
            mapped[label] = target
        return mapped
    for i, _, condition in targets[:1]:
        if condition is not None:
            mapping.warn(f"transitions[{i}].condition", "only transitions out of a CONDITION or "
                                                        "WAIT_FOR_EVENT may have one: ignored")
    for i, _, _ in targets[1:]:
        mapping.warn(f"transitions[{i}]", "the step already has a transition: flowd steps have "
                                          "one next, so this one is not connected")
    return targets[0][1] if targets else None


def _priority(item: tuple[int, dict[str, Any]]) -> tuple[float, int]:
    priority = item[1].get("priority")
    return (priority if isinstance(priority, (int, float)) else float("inf"), item[0])


def convert(body: dict[str, Any], mapping: Mapping) -> dict[str, Any]:
    raw_steps = [s if isinstance(s, dict) else {} for s in body.get("steps") or []]
    transitions = [t if isinstance(t, dict) else {} for t in body.get("transitions") or []]
    outgoing: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    for i, transition in enumerate(sorted(enumerate(transitions), key=_priority)):
        outgoing.setdefault(_end(transition[1], _FROM), []).append(transition)
        mapping.rest(transition[1], (*_FROM, *_TO, "condition", "priority", "id"),
                     f"transitions[{transition[0]}]")
    used: set[str] = set()
    entry_ids = [key(s.get("id")) for s in raw_steps if s.get("type") == "TRIGGER"]
    sids = {i: step_id(s.get("id"), f"s{i + 1}", used)
            for i, s in enumerate(raw_steps) if s.get("type") != "TRIGGER"}
    # Transitions name steps by the source's ids (a step without one cannot be connected).
    ids = {key(raw_steps[i].get("id")): sid for i, sid in sids.items()
           if key(raw_steps[i].get("id")) is not None}
    # The first step: where the TRIGGER step's transition leads, else the first in the list.
    first = next((ids.get(_end(t, _TO)) for e in entry_ids for _, t in outgoing.get(e, [])
                  if ids.get(_end(t, _TO))), None)
    steps = []
    for i, raw in enumerate(raw_steps):
        if raw.get("type") == "TRIGGER":
            mapping.rest(raw, ("id", "type", "name", "position", "config"), f"steps[{i}]")
            continue
        step = _step(raw, sids[i], f"steps[{i}]", mapping)
        source_id = key(raw.get("id"))
        step["next"] = _next(step, outgoing.get(source_id, []) if source_id else [], ids,
                             mapping)
        mapping.rest(raw, _STEP_KEYS, f"steps[{i}]")
        steps.append(step)
    if first is not None:
        steps.sort(key=lambda s: s["id"] != first)     # the run starts at the first step
    event = next((body[k] for k in ("triggerEvent", "eventName", "event", "trigger")
                  if isinstance(body.get(k), str)), None)
    trigger_config = body.get("triggerConfig") if isinstance(body.get("triggerConfig"),
                                                             dict) else {}
    event = event or next((trigger_config[k] for k in ("eventName", "event")
                           if isinstance(trigger_config.get(k), str)), None)
    if body.get("triggerType") not in (None, "EVENT"):
        mapping.warn("triggerType", f"{body['triggerType']!r} has no equivalent: an event "
                                    "trigger is used when an event name is given")
    trigger: dict[str, Any] = {"type": "event", "event": event} if event else {"type": "manual"}
    if not event:
        mapping.warn("", "no trigger event name: the workflow starts only when fired through "
                         "the API")
    mapping.rest(trigger_config, ("eventName", "event"), "triggerConfig")
    settings = {}
    if isinstance(body.get("allowReentry"), bool):
        settings["reentry"] = "always" if body["allowReentry"] else "once"
    mapping.rest(body, ("name", "description", "triggerEvent", "eventName", "event", "trigger",
                        "triggerConfig", "triggerType", "enabled", "allowReentry", "steps",
                        "transitions"), "")
    return {"name": body.get("name"), "description": body.get("description") or "",
            "status": "active" if body.get("enabled") is True else "draft",
            "trigger": trigger, "settings": settings, "steps": steps}
