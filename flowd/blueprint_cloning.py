"""Cloning a blueprint: one unit of work makes its email templates and a draft workflow that
sends them, so that a clone is never half made.

Names, chosen so that a clone never fails and never changes what the project already has:
- The workflow is named as asked; without a name, after the blueprint ("Welcome series"),
  made unique with " (2)", " (3)", … so that repeated one-click clones can be told apart
  (and an import, which matches workflows by name, never confuses them).
- Each template is named "<key>: <short name>" ("welcome-series: welcome"). A template of that
  name with the same channel and content is reused; one whose content differs (the team edited
  it) is left alone and the clone makes "<name> (2)" (or reuses it if it is the same), its
  steps naming that template instead.
"""

from __future__ import annotations

import copy
from typing import Any

from flowd.blueprints import Blueprint
from flowd.clock import Clock
from flowd.store import Transaction
from flowd.store.records import Workflow
from flowd.workflows import WorkflowService

_MAX_SUFFIX = 1000   # far more clones than anyone makes; bounds the search for a free name


def _candidates(name: str) -> Any:
    yield name
    for n in range(2, _MAX_SUFFIX):
        yield f"{name} ({n})"


def _workflow_name(tx: Transaction, project_id: str, base: str) -> str:
    for name in _candidates(base):
        if not tx.workflows.name_taken(project_id, name):
            return name
    raise RuntimeError(f"no free workflow name like {base!r}")


def _template_for(tx: Transaction, project_id: str, base: str, channel: str,
                  content: dict[str, Any], now: int) -> str:
    """The name of a template with this content: an existing one, or one made now."""
    for name in _candidates(base):
        existing = tx.templates.get(project_id, name)
        if existing is None:
            tx.templates.create(project_id=project_id, name=name, channel=channel,
                                content=content, now=now)
            return name
        if existing.channel == channel and existing.content == content:
            return name
    raise RuntimeError(f"no free template name like {base!r}")


async def clone(workflows: WorkflowService, clock: Clock, project_id: str,
                blueprint: Blueprint, name: str | None) -> Workflow:
    now = clock.now_ms()

    def prepare(tx: Transaction, body: dict[str, Any]) -> dict[str, Any]:
        names = {}
        for template in blueprint.templates:
            content = {k: v for k, v in template.items() if k not in ("name", "channel")}
            names[template["name"]] = _template_for(
                tx, project_id, blueprint.template_name(template["name"]), template["channel"],
                content, now)
        steps = copy.deepcopy(blueprint.definition["steps"])
        for step in steps:
            config = step.get("config") or {}
            if config.get("template") in names:
                config["template"] = names[config["template"]]
        return {**body, "name": name or _workflow_name(tx, project_id, blueprint.name),
                "steps": steps}

    body = {"name": name or blueprint.name, "description": blueprint.description,
            "status": "draft", **copy.deepcopy(blueprint.definition)}
    return await workflows.create(project_id, body, prepare=prepare)
