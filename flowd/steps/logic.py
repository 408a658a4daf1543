"""Steps that decide and remember: `condition`, `split`, `set`, `exit`."""

from __future__ import annotations

from typing import Any

from flowd.conditions import CONDITION, Condition, ConditionError, compile_condition
from flowd.errors import Problem
from flowd.steps.base import Outcome, StepConfigError, StepContext, StepType
from flowd.validation import Array, Json, Number, Object, String


def _compile(cond: Any, path: str, issues: list[tuple[str, Problem]]) -> Condition | None:
    try:
        return compile_condition(cond, path)
    except ConditionError as exc:
        issues += [("invalid_condition", p) for p in exc.problems]
        return None


class ConditionStep(StepType):
    name = "condition"
    summary = "Goes `yes` or `no` by a condition on the event, contact, variables or outputs."
    branches = ("yes", "no")
    reads_scope = True
    schema = Object({"if": CONDITION}, required=("if",))

    def compile(self, config: dict[str, Any], path: str) -> Condition:
        issues: list[tuple[str, Problem]] = []
        condition = _compile(config["if"], f"{path}.if", issues)
        if issues:
            raise StepConfigError(issues)
        assert condition is not None
        return condition

    async def run(self, ctx: StepContext) -> Outcome:
        matched = ctx.compiled.evaluate(ctx.scope, ctx.now_ms)
        label = "yes" if matched else "no"
        return Outcome(label, branch=label, output={"result": matched})


_BRANCH_NAME = String(min_len=1, max_len=64, pattern=r"[A-Za-z0-9_-]+",
                      pattern_message="must be letters, digits, _ or -")


class SplitStep(StepType):
    name = "split"
    summary = ("Goes down the first branch whose condition holds (or `default`), or picks a "
               "branch at random by weight.")
    branches = ("default",)  # plus the names in its config: see branch_labels()
    reads_scope = True
    schema = Object({
        "branches": Array(Object({"name": _BRANCH_NAME, "if": CONDITION},
                                 required=("name", "if")), min_items=1, max_items=50),
        "random": Array(Object({"name": _BRANCH_NAME, "weight": Number(min=0, exclusive_min=True)},
                               required=("name", "weight")), min_items=1, max_items=50),
    })

    def compile(self, config: dict[str, Any], path: str) -> Any:
        issues: list[tuple[str, Problem]] = []
        if ("branches" in config) == ("random" in config):
            issues.append(("missing_config", Problem(
                path, 'needs exactly one of "branches" (conditions) or "random" (weights)')))
            raise StepConfigError(issues)
        key = "branches" if "branches" in config else "random"
        names = [b["name"] for b in config[key]]
        for i, name in enumerate(names):
            if name == "default" or name in names[:i]:
                issues.append(("invalid_config", Problem(
                    f"{path}.{key}[{i}].name", f"branch name {name!r} is reserved or repeated")))
        if key == "random":
            compiled: Any = ("random", names, [b["weight"] for b in config["random"]])
        else:
            compiled = ("branches", [(b["name"], _compile(b["if"], f"{path}.branches[{i}].if", issues))
                                     for i, b in enumerate(config["branches"])])
        if issues:
            raise StepConfigError(issues)
        return compiled

    def branch_labels(self, config: dict[str, Any]) -> tuple[str, ...]:
        entries = config.get("branches") or config.get("random") or []
        if not isinstance(entries, list):  # a draft's config may be anything until it is fixed
            return ("default",)
        return tuple(e.get("name") for e in entries if isinstance(e, dict)) + ("default",)

    async def run(self, ctx: StepContext) -> Outcome:
        if ctx.compiled[0] == "random":
            _, names, weights = ctx.compiled
            label = ctx.random.choices(names, weights=weights)[0]
            return Outcome(label, branch=label, output={"branch": label})
        for name, condition in ctx.compiled[1]:
            if condition.evaluate(ctx.scope, ctx.now_ms):
                return Outcome(name, branch=name, output={"branch": name})
        return Outcome("default", branch="default", output={"branch": "default"})


class SetStep(StepType):
    name = "set"
    summary = "Sets run variables (`vars.<name>`) from values or templates."
    schema = Object({"vars": Json(object_only=True)}, required=("vars",))

    async def run(self, ctx: StepContext) -> Outcome:
        values = ctx.config["vars"]
        return Outcome("set", output=values, vars_patch=values)


class ExitStep(StepType):
    name = "exit"
    summary = "Completes the run now, with an exit reason."
    schema = Object({"reason": String(max_len=500)})

    async def run(self, ctx: StepContext) -> Outcome:
        reason = str(ctx.config.get("reason") or "exit")
        return Outcome("exit", output={"reason": reason}, exit_reason=reason)
