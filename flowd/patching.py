"""PATCH operation batches on a workflow definition: add_step, update_step, remove_step,
set_trigger — applied in memory, in order, all or nothing. A step added with `"as": "x"` can be
named `"$x"` by later operations of the same batch."""

from __future__ import annotations

import copy
from typing import Any

from flowd.definitions import STEP, TRIGGER
from flowd.errors import Problem, ValidationError
from flowd.schema import INVALID, Enum, Object, String
from flowd.steps import ALIASES, STEP_TYPES

MAX_OPERATIONS = 200
_OPS = ("add_step", "update_step", "remove_step", "set_trigger")
_STEP_FIELDS = {k: v for k, v in STEP.fields.items() if k != "id"}
_SHAPES = {
    "add_step": Object({"op": Enum(_OPS), "step": Object({**STEP.fields, "id": STEP.fields["id"]},
                                                          required=("type",)),
                        "after": String(min_len=1), "branch": String(min_len=1, max_len=64),
                        "as": String(min_len=1, max_len=64)}, required=("op", "step")),
    "update_step": Object({"op": Enum(_OPS), "id": String(min_len=1),
                           "set": Object(_STEP_FIELDS)}, required=("op", "id", "set")),
    "remove_step": Object({"op": Enum(_OPS), "id": String(min_len=1)}, required=("op", "id")),
    "set_trigger": Object({"op": Enum(_OPS), "trigger": TRIGGER}, required=("op", "trigger")),
}


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
        raise ValidationError([Problem(path, f"no step has the id '{step_id}'")])

    def resolve(self, ref: Any, path: str) -> Any:
        if isinstance(ref, str) and ref.startswith("$"):
            if ref[1:] not in self.aliases:
                raise ValidationError([Problem(path, f"'{ref}' names no step added earlier in "
                                                     "this batch")])
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
            raise ValidationError([Problem(f"{path}.step.id", f"step id '{step['id']}' is taken")])
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


def apply_operations(definition: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """Returns the new definition; raises ValidationError (nothing applied) on any bad op."""
    if len(operations) > MAX_OPERATIONS:
        raise ValidationError([Problem("operations", f"at most {MAX_OPERATIONS} per batch")])
    batch = _Batch(definition)
    for i, op in enumerate(operations):
        path = f"operations[{i}]"
        kind = op.get("op") if isinstance(op, dict) else None
        if kind not in _SHAPES:
            raise ValidationError([Problem(f"{path}.op", f"must be one of: {', '.join(_OPS)}")])
        problems: list[Problem] = []
        checked = _SHAPES[kind].validate(op, path, problems)
        if checked is INVALID:
            raise ValidationError(problems)
        getattr(batch, kind)(checked, path)
    return batch.definition
