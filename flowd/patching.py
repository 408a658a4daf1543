"""PATCH operation batches on a workflow definition: add_step, update_step, remove_step,
set_trigger — applied in memory, in order, all or nothing. A step added with `"as": "x"` can be
named `"$x"` by later operations of the same batch. The operations' shapes are checked with the
request (OPERATION); the definition they produce is checked like a PUT's."""

from __future__ import annotations

import copy
from typing import Any

from flowd.definition_schema import (
    NEW_STEP,
    NEXT,
    ON_ERROR,
    POSITION,
    RETRY,
    TRIGGER,
    validate_definition_parts,
)
from flowd.errors import Problem, ValidationError
from flowd.steps import ALIASES, STEP_TYPES
from flowd.validation import Enum, Json, Object, String, Tagged, text

MAX_OPERATIONS = 200
_REF = String(min_len=1, max_len=65, description="A step id, or $alias of a step added earlier "
                                                 "in this batch.")
OPERATION = Tagged("op", {
    "add_step": Object({
        "op": Enum(("add_step",)), "step": NEW_STEP,
        "after": _REF, "branch": String(min_len=1, max_len=64, description=(
            "Insert on this branch of `after` (else on its default path).")),
        "as": String(min_len=1, max_len=64, description="Name the new step $<as> for later "
                                                         "operations of the batch."),
    }, required=("op", "step"), description="Insert a step after `after` (default: at the "
       "end), re-pointing what followed.").named("AddStepOperation"),
    "update_step": Object({
        "op": Enum(("update_step",)), "id": _REF,
        "set": Object({"type": String(min_len=1, max_len=64), "name": text(0, 200),
                       "config": Json(object_only=True), "next": NEXT, "retry": RETRY,
                       "on_error": ON_ERROR, "position": POSITION},
                      description="Fields to replace; the step is checked as a whole once "
                                  "changed."),
    }, required=("op", "id", "set")).named("UpdateStepOperation"),
    "remove_step": Object({"op": Enum(("remove_step",)), "id": _REF}, required=("op", "id"),
                          description="Its predecessors then point to its default next."
                          ).named("RemoveStepOperation"),
    "set_trigger": Object({"op": Enum(("set_trigger",)), "trigger": TRIGGER},
                          required=("op", "trigger")).named("SetTriggerOperation"),
}).named("PatchOperation")


class _Batch:
    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = copy.deepcopy(definition)
        self.steps: list[dict[str, Any]] = self.definition["steps"]
        self.aliases: dict[str, str] = {}

    def index_of(self, ref: str, path: str) -> int:
        step_id = self.resolve(ref, path)
        for i, step in enumerate(self.steps):
            if step["id"] == step_id:
                return i
        raise ValidationError([Problem(path, f"no step has the id '{step_id}'", "unknown_step")])

    def resolve(self, ref: Any, path: str) -> Any:
        if isinstance(ref, str) and ref.startswith("$"):
            if ref[1:] not in self.aliases:
                raise ValidationError([Problem(path, f"'{ref}' names no step added earlier in "
                                                     "this batch", "unknown_alias")])
            return self.aliases[ref[1:]]
        return ref

    def resolve_next(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {label: self.resolve(t, f"{path}.{label}") for label, t in value.items()}
        return self.resolve(value, path)

    def default_target(self, i: int) -> str | None:
        """Where step i goes on its default path."""
        step = self.steps[i]
        following = self.steps[i + 1]["id"] if i + 1 < len(self.steps) else None
        if "next" not in step:
            return following
        raw = step["next"]
        if isinstance(raw, dict):
            return raw.get("default", following)
        return raw

    def fresh_id(self) -> str:
        taken = {s["id"] for s in self.steps}
        n = len(self.steps) + 1
        while f"s{n}" in taken:
            n += 1
        return f"s{n}"

    # -------------------------------------------------------------- operations

    def add_step(self, op: dict[str, Any], path: str) -> None:
        step = copy.deepcopy(op["step"])
        step.setdefault("id", self.fresh_id())
        if any(s["id"] == step["id"] for s in self.steps):
            raise ValidationError([Problem(f"{path}.step.id", f"step id '{step['id']}' is taken",
                                           "duplicate_step_id")])
        if "next" in step:
            step["next"] = self.resolve_next(step["next"], f"{path}.step.next")
        if "as" in op:
            self.aliases[op["as"]] = step["id"]
        if "after" not in op:
            self.steps.append(step)
            return
        i = self.index_of(op["after"], f"{path}.after")
        before = self.steps[i]
        branch = op.get("branch")
        if branch is None:
            if "next" in before and "next" not in step:
                step["next"] = self.default_target(i)
            if "next" in before:
                if isinstance(before["next"], dict):
                    before["next"]["default"] = step["id"]
                else:
                    before["next"] = step["id"]
        else:
            step_type = STEP_TYPES.get(ALIASES.get(before["type"], before["type"]))
            labels = step_type.branch_labels(before.get("config") or {}) if step_type else ()
            raw = before.get("next", ...)
            if isinstance(raw, dict):
                old = raw.get(branch)
                mapping = dict(raw)
            else:
                old = self.default_target(i)
                mapping = {label: old for label in labels}
            if "next" not in step:
                step["next"] = old
            mapping[branch] = step["id"]
            before["next"] = mapping
        self.steps.insert(i + 1, step)

    def update_step(self, op: dict[str, Any], path: str) -> None:
        i = self.index_of(op["id"], f"{path}.id")
        changes = copy.deepcopy(op["set"])
        if "next" in changes:
            changes["next"] = self.resolve_next(changes["next"], f"{path}.set.next")
        self.steps[i].update(changes)

    def remove_step(self, op: dict[str, Any], path: str) -> None:
        i = self.index_of(op["id"], f"{path}.id")
        removed = self.steps[i]["id"]
        target = self.default_target(i)
        after_removed = self.steps[i + 1]["id"] if i + 1 < len(self.steps) else None
        for j, step in enumerate(self.steps):
            raw = step.get("next", ...)
            if raw is ... and j == i - 1 and target != after_removed:
                step["next"] = target  # it fell through to the removed step
            elif raw == removed:
                step["next"] = target
            elif isinstance(raw, dict):
                step["next"] = {k: (target if v == removed else v) for k, v in raw.items()}
        del self.steps[i]

    def set_trigger(self, op: dict[str, Any], path: str) -> None:
        self.definition["trigger"] = copy.deepcopy(op["trigger"])


def apply_operations(definition: dict[str, Any], operations: list[dict[str, Any]]
                     ) -> dict[str, Any]:
    """Returns the new definition; raises ValidationError (nothing applied) on any bad op.
    `operations` have been checked against OPERATION."""
    batch = _Batch(definition)
    for i, op in enumerate(operations):
        getattr(batch, op["op"])(op, f"operations[{i}]")
    problems: list[Problem] = []
    validate_definition_parts(batch.definition, problems)
    if problems:
        # Paths are in the definition the operations made, which the schema of the request
        # itself cannot see: a rule beyond it.
        raise ValidationError([Problem(p.path, p.message, p.code or "invalid_result")
                               for p in problems],
                              message="the operations would make an invalid workflow: "
                                      f"{problems[0].path}: {problems[0].message}")
    return batch.definition
