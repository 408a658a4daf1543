"""Reference 001's graphs: `{"name", "trigger": {"key", "options"}, "nodes": [{"id", "type",
"parent_id", "branch", "options"}]}` — every node names its parent (`trigger` for the first),
and the children of a condition carry `branch` yes or no.

Mapped: wait (ISO duration) → wait, wait_until → wait `until`, send → send_email (its `title`
is the step's name), condition `open` / `click` with a `timeout` → wait_for_event on
`email.opened` / `email.clicked` (yes → `event`, no → `timeout`), operation `tag` /
`remove_tag` → update_contact `add_tags` / `remove_tags` (`update` → `traits`), webhook. The
trigger key `api-3-0` (fired through the API) is a manual trigger; any other key becomes an
event trigger on an event of that name, with a warning (flowd has no lists to subscribe to).
Steps are listed depth first from the trigger, each with an explicit `next`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flowd.imports.common import Mapping, key, placeholder, step_id

_NODE_KEYS = ("id", "type", "parent_id", "branch", "options")
_CONDITION_EVENTS = {"open": "email.opened", "click": "email.clicked"}
_TAGS = {"tag": "add_tags", "remove_tag": "remove_tags"}


def detect(body: dict[str, Any]) -> bool:
    return isinstance(body.get("nodes"), list)


def _tags(options: dict[str, Any]) -> list[str]:
    tags = options.get("tags", options.get("tag"))
    return [tags] if isinstance(tags, str) else [t for t in tags or [] if isinstance(t, str)]


def _node(node: dict[str, Any], sid: str, path: str, mapping: Mapping) -> dict[str, Any]:
    kind, options = key(node.get("type")), node.get("options")
    options = options if isinstance(options, dict) else {}
    where = f"{path}.options"
    if kind == "wait":
        mapping.rest(options, ("duration",), where)
        config = {"duration": options["duration"]} if "duration" in options else {}
        return {"id": sid, "type": "wait", "config": config}
    if kind == "wait_until":
        found = next((k for k in ("until", "datetime", "date", "time") if k in options), None)
        mapping.rest(options, (found,) if found else (), where)
        return {"id": sid, "type": "wait",
                "config": {"until": str(options[found])} if found else {}}
    if kind == "send":
        config = {k: options[k] for k in ("template", "subject", "html", "text", "to", "from")
                  if k in options}
        mapping.rest(options, ("title", *config), where)
        step = {"id": sid, "type": "send_email", "config": config}
        if isinstance(options.get("title"), str) and options["title"]:
            step["name"] = options["title"][:200]
        return step
    if kind == "condition":
        event = _CONDITION_EVENTS.get(key(options.get("kind")))
        if event is None:
            mapping.warn(f"{where}.kind", f"condition kind {options.get('kind')!r} has no "
                                          "equivalent: imported as a condition step without a "
                                          "test (a missing_config issue until you set one)")
            mapping.rest(options, ("kind",), where)
            return {"id": sid, "type": "condition", "config": {}}
        config = {"event": event}
        if "timeout" in options:
            config["timeout"] = options["timeout"]
        mapping.rest(options, ("kind", "timeout"), where)
        return {"id": sid, "type": "wait_for_event", "config": config}
    if kind == "operation":
        op = key(options.get("kind"))
        if op in _TAGS:
            mapping.rest(options, ("kind", "tags", "tag"), where)
            return {"id": sid, "type": "update_contact", "config": {_TAGS[op]: _tags(options)}}
        if op == "update":
            traits = next((options[k] for k in ("traits", "fields", "data")
                           if isinstance(options.get(k), dict)), None)
            mapping.rest(options, ("kind", "traits", "fields", "data"), where)
            return {"id": sid, "type": "update_contact",
                    "config": {"traits": traits} if traits else {}}
        return placeholder(sid, f"operation {op}", f"{where}.kind", mapping)
    if kind == "webhook":
        config = {k: options[k] for k in ("url", "method", "headers", "body") if k in options}
        mapping.rest(options, config, where)
        return {"id": sid, "type": "webhook", "config": config}
    return placeholder(sid, kind, f"{path}.type", mapping)


def _order(nodes: list[dict[str, Any]], mapping: Mapping) -> list[int]:
    """Node indexes depth first from the trigger (yes before no), then any the trigger does
    not reach (kept, with a warning)."""
    children: dict[Any, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        children[key(node.get("parent_id"))].append(i)
    order: list[int] = []
    stack = list(reversed(children["trigger"]))
    seen: set[int] = set()
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        order.append(i)
        kids = sorted(children.get(key(nodes[i].get("id")), []),
                      key=lambda k: nodes[k].get("branch") != "yes")
        stack.extend(reversed(kids))
    for i in range(len(nodes)):
        if i not in seen:
            mapping.warn(f"nodes[{i}].parent_id", "the trigger does not lead to this node: "
                                                  "imported, but no run reaches it")
            order.append(i)
    return order


def _next(node: dict[str, Any], step: dict[str, Any], kids: list[int],
          ids: dict[int, str], nodes: list[dict[str, Any]], mapping: Mapping) -> Any:
    if step["type"] in ("wait_for_event", "condition"):
        labels = ({"yes": "event", "no": "timeout"} if step["type"] == "wait_for_event"
                  else {"yes": "yes", "no": "no"})
        mapped: dict[str, str | None] = {label: None for label in labels.values()}
        for k in kids:
            label = labels.get(key(nodes[k].get("branch")) or "")
            if label is None:
                mapping.warn(f"nodes[{k}].branch", "a child of a condition needs branch yes or "
                                                   "no: not connected")
            else:
                mapped[label] = ids[k]
        return mapped
    for k in kids[1:]:
        mapping.warn(f"nodes[{k}].parent_id", f"{node.get('id')} already has a child: flowd "
                                              "steps have one next, so this one is not connected")
    for k in kids[:1]:
        if nodes[k].get("branch") is not None:
            mapping.warn(f"nodes[{k}].branch", "only a condition's children have branches: "
                                               "ignored")
    return ids[kids[0]] if kids else None


def convert(body: dict[str, Any], mapping: Mapping) -> dict[str, Any]:
    nodes = [n if isinstance(n, dict) else {} for n in body["nodes"]]
    used: set[str] = set()
    ids = {i: step_id(n.get("id"), f"n{i + 1}", used) for i, n in enumerate(nodes)}
    children: dict[Any, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        children[key(node.get("parent_id"))].append(i)
    steps = []
    for i in _order(nodes, mapping):
        node = nodes[i]
        step = _node(node, ids[i], f"nodes[{i}]", mapping)
        kids = sorted(children.get(key(node.get("id")), []),
                      key=lambda k: nodes[k].get("branch") != "yes") if key(node.get("id")) else []
        step["next"] = _next(node, step, kids, ids, nodes, mapping)
        mapping.rest(node, _NODE_KEYS, f"nodes[{i}]")
        steps.append(step)
    if len(children["trigger"]) > 1:
        for k in children["trigger"][1:]:
            mapping.warn(f"nodes[{k}].parent_id", "a workflow starts at one step: this second "
                                                  "child of the trigger is not reached")
    trigger_raw = body.get("trigger") if isinstance(body.get("trigger"), dict) else {}
    trigger_key = trigger_raw.get("key")
    if trigger_key == "api-3-0":
        trigger: dict[str, Any] = {"type": "manual"}
    elif isinstance(trigger_key, str) and trigger_key:
        trigger = {"type": "event", "event": trigger_key}
        mapping.warn("trigger.key", f"trigger {trigger_key!r} has no equivalent in flowd: the "
                                    f"workflow starts on events named {trigger_key!r} (or when "
                                    "fired through the API)")
    else:
        trigger = {"type": "manual"}
        mapping.warn("trigger", "no trigger key: the workflow starts only when fired through "
                                "the API")
    if trigger_raw.get("options"):
        mapping.warn("trigger.options", "trigger options have no equivalent and were not "
                                        "imported")
    mapping.rest(trigger_raw, ("key", "options"), "trigger")
    mapping.rest(body, ("name", "description", "trigger", "nodes", "status"), "")
    return {"name": body.get("name"), "description": body.get("description", ""),
            "status": "active" if body.get("status") == "active" else "draft",
            "trigger": trigger, "steps": steps}
