"""Workflow definitions: alias normalization, validation into `issues`, and compilation into
the immutable form the engine runs. The lints (warnings about definitions that run but do
something other than meant) live in flowd.lints.

Two levels of wrong: a body that is not a workflow at all (a step without an id, `steps` not a
list, a config field of the wrong type) is a 422 from the request schema
(flowd.definition_schema); a workflow that is well-formed but cannot run (a `next` naming no
step, a wait without a duration, a cycle that never waits) is saved with `issues`, so the
builder can store a draft half-done. A workflow with an `error` issue cannot be active.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable
from zoneinfo import ZoneInfo

from flowd.conditions import (
    Condition,
    ConditionError,
    compile_condition,
    compile_name_pattern,
)
from flowd.cron import Cron, check_schedule, load_zone, parse_cron
from flowd.durations import parse_duration
from flowd.errors import Problem
from flowd.lints import lint
from flowd.send_policy import PolicyOverrides
from flowd.steps import ALIASES, STEP_TYPES
from flowd.steps.base import StepConfigError, StepType
from flowd.templates import CONTACT_ROOTS, CompiledValue, TemplateError, compile_value
from flowd.validation import INVALID

DEFAULT_TRIGGER = {"type": "manual"}
DEFAULT_SETTINGS = {"reentry": "after_completion", "exit_on": []}


def normalize(definition: dict[str, Any]) -> dict[str, Any]:
    """The stored form: aliases resolved, defaults filled. Returns a new dict."""
    steps = []
    for step in definition.get("steps") or []:
        step = dict(step)
        step["type"] = ALIASES.get(step["type"], step["type"])
        step.setdefault("config", {})
        steps.append(step)
    settings = {**DEFAULT_SETTINGS, **copy.deepcopy(definition.get("settings") or {})}
    trigger = copy.deepcopy(definition.get("trigger") or DEFAULT_TRIGGER)
    if trigger.get("type") == "schedule":
        trigger.setdefault("timezone", "UTC")   # stored as it is read: explicit
    return {"trigger": trigger, "settings": settings, "steps": copy.deepcopy(steps)}


# ---------------------------------------------------------------- compiled form

@dataclass(frozen=True)
class Issue:
    severity: str          # error | warning
    code: str
    message: str
    path: str
    step_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "step_id": self.step_id, "code": self.code,
                "message": self.message, "path": self.path}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff_ms: int = 10_000
    max_backoff_ms: int = 3_600_000

    def delay_ms(self, failed_attempt: int) -> int:
        """Backoff after attempt n (1-based): backoff × 2^(n-1), capped."""
        return min(self.backoff_ms * 2 ** (failed_attempt - 1), self.max_backoff_ms)


@dataclass
class CompiledStep:
    id: str
    type: StepType
    config: CompiledValue
    compiled: Any
    following: str | None        # the next step in the list
    next_raw: Any                # as written; see target()
    has_next: bool
    retry: RetryPolicy
    on_error: str
    needs_scope: bool = True     # False: no templates and the type never reads the scope
    reads_contact: bool = True   # False: nothing in it can read the run's contact
    loop_id: str | None = None   # the innermost `loop` whose body this step is in

    def target(self, branch: str | None) -> str | None:
        """The step after this one for `branch` (None = the default path); None ends the run."""
        if not self.has_next:
            return self.following
        raw = self.next_raw
        if raw is None or isinstance(raw, str):
            return raw
        if branch in raw:
            return raw[branch]
        if branch is not None and branch not in self.type.optional_branches:
            return None             # a label that `next` does not map ends the run
        return raw["default"] if "default" in raw else self.following

    def error_target(self) -> tuple[bool, str | None]:
        """(True, target) when `next` maps the `error` label."""
        if self.has_next and isinstance(self.next_raw, dict) and "error" in self.next_raw:
            return True, self.next_raw["error"]
        return False, None

    def successors(self) -> set[str]:
        if not self.has_next:
            targets = {self.following}
        elif isinstance(self.next_raw, dict):
            targets = set(self.next_raw.values())
            if not self.type.branches or self.type.optional_branches:
                targets.add(self.target(None))
        else:
            targets = {self.next_raw}
        return {t for t in targets if t is not None}


@dataclass
class EventRule:
    """An event pattern with an optional filter: triggers and `exit_on`."""

    pattern: str
    matches_name: Any
    filter: Condition | None


@dataclass(frozen=True)
class ScheduleRule:
    """A schedule trigger: fire at each time `cron` names on the wall clock of `zone`."""

    cron: Cron
    zone: ZoneInfo
    audience: str | None = None   # one run per member of this audience (id or name) per fire

    @property
    def key(self) -> tuple[str, str]:
        """What decides when it fires: an edit that changes this restarts the count."""
        return self.cron.expression, self.zone.key

    def next_after(self, after_ms: int) -> int | None:
        return self.cron.next_after(after_ms, self.zone)


@dataclass(frozen=True)
class WebhookSpec:
    """A webhook trigger, ready for deliveries: the key its signatures are checked with (None:
    unsigned) and where the contact id is in the properties (None: runs have no contact)."""

    secret: str | None
    contact_path: tuple[str, ...] | None


def _webhook(raw: dict[str, Any]) -> WebhookSpec:
    # The request schema checked both fields' shapes: nothing here can be an issue.
    path = raw.get("contact_id_path")
    return WebhookSpec(raw.get("secret"), tuple(path.split(".")) if path else None)


@dataclass
class CompiledWorkflow:
    trigger_type: str
    trigger: EventRule | None
    reentry: str
    exit_on: list[EventRule]
    steps: dict[str, CompiledStep] = field(default_factory=dict)
    first_step: str | None = None
    schedule: ScheduleRule | None = None
    webhook: WebhookSpec | None = None
    # What its settings change of the project's send policy (quiet hours, frequency caps).
    send_policy: PolicyOverrides = field(default_factory=PolicyOverrides)

    @cached_property
    def reads_contact(self) -> bool:
        """Whether any step can read the run's contact (else runs never need it loaded)."""
        return any(step.reads_contact for step in self.steps.values())


# ---------------------------------------------------------------- analysis

class _Collector:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def error(self, code: str, path: str, message: str, step_id: str | None = None) -> None:
        self.issues.append(Issue("error", code, message, path, step_id))

    def warning(self, code: str, path: str, message: str, step_id: str | None = None) -> None:
        self.issues.append(Issue("warning", code, message, path, step_id))


def _rule(raw: dict[str, Any], path: str, issues: _Collector, *, pattern_key: str = "event"
          ) -> EventRule | None:
    pattern = raw.get(pattern_key) or ""
    ok = True
    if not pattern.strip():
        issues.error("empty_trigger_pattern", f"{path}.{pattern_key}",
                     "an event name pattern is required (use * for every event)")
        ok = False
    condition = None
    if raw.get("filter") is not None:
        try:
            condition = compile_condition(raw["filter"], f"{path}.filter")
        except ConditionError as exc:
            for problem in exc.problems:
                issues.error("invalid_condition", problem.path, problem.message)
            ok = False
    return EventRule(pattern, compile_name_pattern(pattern), condition) if ok else None


def _schedule(raw: dict[str, Any], issues: _Collector) -> ScheduleRule | None:
    expression, tz = raw.get("cron") or "", raw.get("timezone") or "UTC"
    problems = check_schedule(expression, tz)
    for code, message in problems:
        issues.error(code, "trigger.cron" if code == "invalid_cron" else "trigger.timezone",
                     message)
    # Whether the audience exists is the project's to say: audience_issues, on save.
    return None if problems else ScheduleRule(parse_cron(expression), load_zone(tz),
                                              raw.get("audience") or None)


def _retry(raw: dict[str, Any] | None, path: str, step_id: str, issues: _Collector) -> RetryPolicy:
    if not raw:
        return RetryPolicy()
    values = {}
    for key, attr in (("backoff", "backoff_ms"), ("max_backoff", "max_backoff_ms")):
        if key in raw:
            try:
                values[attr] = parse_duration(raw[key])
            except ValueError as exc:
                issues.error("invalid_duration", f"{path}.{key}", str(exc), step_id)
    return RetryPolicy(max_attempts=raw.get("max_attempts", 3), **values)


def _step_config(step: dict[str, Any], step_type: StepType, path: str,
                 issues: _Collector) -> tuple[CompiledValue | None, Any]:
    step_id = step["id"]
    problems: list[Problem] = []
    config = step_type.schema.validate(step["config"], f"{path}.config", problems)
    for problem in problems:
        code = problem.code or ("missing_config" if problem.message == "is required"
                                else "invalid_config")
        issues.error(code, problem.path, problem.message, step_id)
    if config is INVALID:
        return None, None
    try:
        template = compile_value(config, f"{path}.config", step_type.escaped,
                                 step_type.literal)
    except TemplateError as exc:
        for problem in exc.problems:
            issues.error("invalid_template", problem.path, problem.message, step_id)
        return None, None
    try:
        compiled = step_type.compile(config, f"{path}.config")
    except StepConfigError as exc:
        for code, problem in exc.issues:
            issues.error(code, problem.path, problem.message, step_id)
        return None, None
    return template, compiled


def analyze(definition: dict[str, Any]) -> tuple[CompiledWorkflow | None, list[Issue]]:
    """Validate a normalized definition. Returns the compiled workflow when it has no errors."""
    issues = _Collector()
    trigger_raw = definition["trigger"]
    trigger_type = trigger_raw["type"]
    trigger = schedule = None
    if trigger_type == "event":
        trigger = _rule(trigger_raw, "trigger", issues)
    elif trigger_type == "schedule":
        schedule = _schedule(trigger_raw, issues)
    settings = definition["settings"]
    exit_on = [rule for i, raw in enumerate(settings.get("exit_on") or [])
               if (rule := _rule(raw, f"settings.exit_on[{i}]", issues)) is not None]
    send_policy = _send_policy(settings, issues)

    raw_steps = definition["steps"]
    seen: dict[str, int] = {}
    for i, step in enumerate(raw_steps):
        if step["id"] in seen:
            issues.error("duplicate_step_id", f"steps[{i}].id",
                         f"step id '{step['id']}' is already used by steps[{seen[step['id']]}]",
                         step["id"])
        else:
            seen[step["id"]] = i
    if not raw_steps:
        issues.error("no_steps", "steps", "a workflow needs at least one step")

    steps: dict[str, CompiledStep] = {}
    for i, step in enumerate(raw_steps):
        path, step_id = f"steps[{i}]", step["id"]
        step_type = STEP_TYPES.get(step["type"])
        if step_type is None:
            issues.error("unknown_step_type", f"{path}.type",
                         f"unknown step type '{step['type']}'; known: {', '.join(STEP_TYPES)}",
                         step_id)
            continue
        template, compiled = _step_config(step, step_type, path, issues)
        has_next = "next" in step
        _check_next(step, step_type, path, seen, issues)
        if template is None or seen.get(step_id) != i:
            continue
        following = raw_steps[i + 1]["id"] if i + 1 < len(raw_steps) else None
        steps[step_id] = CompiledStep(
            id=step_id, type=step_type, config=template, compiled=compiled, following=following,
            next_raw=step.get("next"), has_next=has_next,
            retry=_retry(step.get("retry"), f"{path}.retry", step_id, issues),
            on_error=step.get("on_error", "fail"),
            needs_scope=template.has_templates or step_type.reads_scope,
            reads_contact=step_type.reads_scope or any(
                path.root in CONTACT_ROOTS for path in template.paths))

    if not any(issue.severity == "error" for issue in issues.issues):
        _check_graph(raw_steps, steps, issues)
        _assign_loops(steps)
    lint(definition, issues.warning)  # also on drafts with errors: warnings help fix them too
    workflow = CompiledWorkflow(trigger_type, trigger, settings.get("reentry", "after_completion"),
                                exit_on, steps, raw_steps[0]["id"] if raw_steps else None,
                                schedule,
                                webhook=_webhook(trigger_raw) if trigger_type == "webhook" else None,
                                send_policy=send_policy)
    errors = any(issue.severity == "error" for issue in issues.issues)
    return (None if errors else workflow), issues.issues


def _send_policy(settings: dict[str, Any], issues: _Collector) -> PolicyOverrides:
    # The request schema checked the shape; a definition stored by hand may still be wrong.
    try:
        return PolicyOverrides.of(settings)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        issues.error("invalid_settings", "settings", f"the send policy cannot be read: {exc}")
        return PolicyOverrides()


def _check_next(step: dict[str, Any], step_type: StepType, path: str, ids: dict[str, int],
                issues: _Collector) -> None:
    raw = step.get("next")
    step_id = step["id"]
    if isinstance(raw, str):
        targets = {"": raw}
    elif isinstance(raw, dict):
        targets = raw
        labels = set(step_type.branch_labels(step.get("config") or {})) | {"error", "default"}
        for label in raw:
            if label not in labels:
                issues.warning("unknown_branch", f"{path}.next.{label}",
                               f"'{step_type.name}' steps never take a branch named '{label}'",
                               step_id)
    else:
        return
    for label, target in targets.items():
        if target is not None and target not in ids:
            where = f"{path}.next.{label}" if label else f"{path}.next"
            issues.error("unknown_next_step", where, f"no step has the id '{target}'", step_id)


def _check_graph(raw_steps: list[dict[str, Any]], steps: dict[str, CompiledStep],
                 issues: _Collector) -> None:
    index = {step["id"]: i for i, step in enumerate(raw_steps)}
    first = raw_steps[0]["id"]
    reachable, stack = {first}, [first]
    while stack:
        for target in steps[stack.pop()].successors():
            if target not in reachable:
                reachable.add(target)
                stack.append(target)
    for step in raw_steps:
        if step["id"] not in reachable:
            issues.warning("unreachable_step", f"steps[{index[step['id']]}]",
                           f"no path from the first step leads to '{step['id']}'", step["id"])
    cycle = _cycle_without_wait(steps)
    if cycle:
        issues.error("cycle_without_wait", f"steps[{index[cycle[0]]}].next",
                     "these steps loop without a waiting step: " + " → ".join(cycle + cycle[:1]),
                     cycle[0])


def _cycle_without_wait(steps: dict[str, CompiledStep]) -> list[str] | None:
    """A cycle through steps none of which waits (such a loop would spin without end)."""
    order = {sid: i for i, sid in enumerate(steps)}
    live = {sid for sid, step in steps.items()
            if not (step.type.waits or step.type.breaks_cycles)}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(live, key=order.__getitem__):  # definition order: stable reports
        if root in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, list[str]]] = [(root, sorted(steps[root].successors() & live))]
        state[root] = 1
        path.append(root)
        while stack:
            node, pending = stack[-1]
            if not pending:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = pending.pop()
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):]
                start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                return cycle[start:] + cycle[:start]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(steps[nxt].successors() & live)))
    return None


def _assign_loops(steps: dict[str, CompiledStep]) -> None:
    """Each step's innermost enclosing loop: a loop's body is every step on a path from its
    `each` target back to the loop; of the loops whose body holds a step, the innermost has
    the smallest body. (Templates in the body read `loop.item` from that loop.)"""
    predecessors: dict[str, set[str]] = {sid: set() for sid in steps}
    for sid, step in steps.items():
        for target in step.successors():
            if target in predecessors:
                predecessors[target].add(sid)
    bodies: list[tuple[int, str, set[str]]] = []
    for loop_id, loop in steps.items():
        if loop.type.name != "loop":
            continue
        start = loop.target("each")
        if start is None or start == loop_id:
            continue
        ahead = _reach(start, lambda s: steps[s].successors() if s in steps else (), loop_id)
        behind = _reach(loop_id, lambda s: predecessors.get(s, ()), None)
        body = ahead & behind
        bodies.append((len(body), loop_id, body))
    for _, loop_id, body in sorted(bodies, reverse=True):   # inner (smaller) bodies last win
        for sid in body:
            steps[sid].loop_id = loop_id


def _reach(start: str, edges: Callable[[str], Any], stop: str | None) -> set[str]:
    """Steps reachable from `start` along `edges`, not passing through `stop`."""
    seen, stack = {start}, [start]
    while stack:
        for nxt in edges(stack.pop()):
            if nxt not in seen and nxt != stop:
                seen.add(nxt)
                stack.append(nxt)
    return seen


# ---------------------------------------------------------------- references to templates

def template_refs(definition: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(step index, step id, reference) of every step that names a template by id or name (a
    reference that is a `{{ … }}` is only known when the step runs)."""
    refs = []
    for i, step in enumerate(definition.get("steps") or []):
        ref = (step.get("config") or {}).get("template") if isinstance(step, dict) else None
        if isinstance(ref, str) and "{{" not in ref:
            refs.append((i, step["id"], ref))
    return refs


def template_issues(definition: dict[str, Any], templates: dict[str, str]) -> list[Issue]:
    """An error for each step naming a template the project does not have (`templates`: the
    project's template ids → names)."""
    names = set(templates.values())
    return [Issue("error", "unknown_template", f"no template has the id or name {ref!r}",
                  f"steps[{i}].config.template", step_id)
            for i, step_id, ref in template_refs(definition)
            if ref not in templates and ref not in names]


def uses_template(definition: dict[str, Any], template_id: str, name: str) -> bool:
    return any(ref in (template_id, name) for _, _, ref in template_refs(definition))


# ---------------------------------------------------------------- references to audiences

def audience_refs(definition: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(path, step id, reference) of every audience the definition names by id or name: a
    messaging step's `audience` (checked at send time) and a schedule trigger's. A reference
    that is a `{{ … }}` is only known when the step runs."""
    refs: list[tuple[str, str | None, str]] = []
    trigger = definition.get("trigger") or {}
    if trigger.get("type") == "schedule" and isinstance(trigger.get("audience"), str) \
            and trigger["audience"]:
        refs.append(("trigger.audience", None, trigger["audience"]))
    for i, step in enumerate(definition.get("steps") or []):
        ref = (step.get("config") or {}).get("audience") if isinstance(step, dict) else None
        if isinstance(ref, str) and ref and "{{" not in ref:
            refs.append((f"steps[{i}].config.audience", step["id"], ref))
    return refs


def audience_issues(definition: dict[str, Any], audiences: dict[str, str]) -> list[Issue]:
    """An error for each audience named that the project does not have (`audiences`: the
    project's audience ids → names)."""
    names = set(audiences.values())
    return [Issue("error", "unknown_audience", f"no audience has the id or name {ref!r}", path,
                  step_id)
            for path, step_id, ref in audience_refs(definition)
            if ref not in audiences and ref not in names]


def uses_audience(definition: dict[str, Any], audience_id: str, name: str) -> bool:
    return any(ref in (audience_id, name) for _, _, ref in audience_refs(definition))
