"""The catalogue of step types and trigger types: each with the JSON Schema of its config,
rendered from the very schema objects the server validates with. `GET /v1/step-types` and
`GET /v1/trigger-types` serve it (the builder draws from it), and composing a workflow from a
prompt hands it to the model."""

from __future__ import annotations

from typing import Any

from flowd.definition_schema import TRIGGER_KINDS
from flowd.steps import ALIASES, STEP_TYPES
from flowd.validation import standalone_json_schema

# Whose branch labels include names in its own config (split: its branches; ai: its options).
DYNAMIC_BRANCHES = frozenset({"split", "ai"})


def step_types() -> list[dict[str, Any]]:
    return [{
        "name": name,
        "description": step_type.summary,
        "config_schema": standalone_json_schema(step_type.schema),
        # `default` is every step's: only the labels that are the type's own are listed.
        "branches": [b for b in step_type.branches if b != "default"]
        if name in DYNAMIC_BRANCHES else list(step_type.branches),
        "dynamic_branches": name in DYNAMIC_BRANCHES,
        "waits": step_type.waits,
        "aliases": sorted(alias for alias, target in ALIASES.items() if target == name),
    } for name, step_type in sorted(STEP_TYPES.items())]


def trigger_types() -> list[dict[str, Any]]:
    return [{"name": name, "description": schema.description,
             "config_schema": standalone_json_schema(schema)}
            for name, schema in sorted(TRIGGER_KINDS.items())]
