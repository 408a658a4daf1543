"""The blueprint gallery: eight starter journeys kept as data (one JSON file each beside this
module), each with the email templates it sends. Cloning one (flowd.blueprint_cloning) makes a
draft workflow of it; this module only loads and describes them."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

# The gallery's order (and the contract's list of keys).
KEYS = ("welcome-series", "cart-abandonment", "order-confirmation", "post-purchase-feedback",
        "trial-ending", "re-engagement", "birthday", "password-reset")


@dataclass(frozen=True)
class Blueprint:
    key: str
    name: str
    description: str
    definition: dict[str, Any]          # {"trigger", "settings", "steps"}; steps name
    templates: tuple[dict[str, Any], ...]   # templates by their short name ("welcome")

    def template_name(self, short: str) -> str:
        """The name a clone gives one of its templates: the blueprint's key first, so that the
        templates of different blueprints never collide."""
        return f"{self.key}: {short}"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "description": self.description,
                "trigger_summary": trigger_summary(self.definition["trigger"]),
                "step_count": len(self.definition["steps"]),
                "templates": [self.template_name(t["name"]) for t in self.templates],
                "definition": copy.deepcopy(self.definition)}


def trigger_summary(trigger: dict[str, Any]) -> str:
    kind = trigger.get("type")
    if kind == "event":
        return f"when event {trigger['event']} arrives"
    if kind == "schedule":
        return f"on schedule {trigger['cron']} ({trigger.get('timezone', 'UTC')})"
    return f"when fired ({kind})"


def _load(key: str) -> Blueprint:
    data = json.loads(resources.files(__name__).joinpath(f"{key}.json").read_text("utf-8"))
    return Blueprint(data["key"], data["name"], data["description"], data["definition"],
                     tuple(data["templates"]))


BLUEPRINTS: dict[str, Blueprint] = {key: _load(key) for key in KEYS}
