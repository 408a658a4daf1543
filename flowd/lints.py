"""Lints: warnings about workflows that are valid but almost surely not what their author meant.

This module owns two checks that `definitions.analyze()` runs on every definition, drafts with
errors included:

- `unknown_field`: a condition field or template path whose root or first part can never hold a
  value where it is read — `contact.data.plan` (a flowd contact keeps custom attributes in
  `traits`), `steps.<no such step>`, `run.status`, `vars.x` in a trigger filter — with a
  suggestion. Such a path is not an error: it is simply missing at run time, so a condition on it
  is silently false and a template renders empty text.
- `branch_falls_through`: the last step of a branch has no `next`, so the run falls through into
  the step where another branch of the same branching step starts.

Both read the raw definition rather than the compiled one, so they also work where compiling
failed; anything that does not parse is skipped, as it is already an error. Both are linear in
the size of the definition and never raise on odd input.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, Callable

from flowd.conditions import MAX_CONDITION_DEPTH, MAX_CONDITION_PARTS
from flowd.steps import STEP_TYPES
from flowd.templates import (
    CONTACT_ROOTS,
    ROOTS,
    Path,
    PathError,
    TemplateError,
    compile_path,
    compile_template,
)
from flowd.validation import MAX_JSON_DEPTH, join

Warn = Callable[[str, str, str, str | None], None]  # (code, path, message, step_id)


def lint(definition: dict[str, Any], warn: Warn) -> None:
    """Report each lint of a normalized definition through `warn`."""
    steps = definition.get("steps")
    # Odd entries become empty steps rather than vanish, so that `steps[i]` paths stay right.
    steps = [s if isinstance(s, dict) else {} for s in steps] if isinstance(steps, list) else []
    _FieldLint(steps, warn).run(definition)
    _lint_fall_through(steps, warn)


# ---------------------------------------------------------------- unknown_field

# What the scope really holds under each root (a test keeps these in step with the engine).
CONTACT_FIELDS = ("id", "email", "phone", "timezone", "traits", "tags", "subscribed",
                  "push_tokens", "created_at", "updated_at")   # Contact.to_json()
RUN_FIELDS = ("id", "workflow_id", "workflow_version", "contact_id", "parent_run_id")  # Engine._scope()
LOOP_FIELDS = ("item", "index", "iterations")  # API.md, `loop` step

# What other tools call the bag of custom attributes (lower case, without _ and -): where
# flowd's contact has `traits`, an imported or hand-written definition often has one of these.
_ATTRIBUTE_BAGS = frozenset({
    "data", "attributes", "attrs", "customattributes", "properties", "props",
    "customproperties", "userproperties", "customfields", "fields", "profile", "custom",
    "customdata", "metadata", "meta", "extra", "trait"})

# Filters matched against an incoming event see a scope of that event and its contact only
# (flowd.matching); run data reaches them only through templates rendered beforehand.
_MATCH_ROOTS = frozenset(CONTACT_ROOTS | {"event"})
_CLOSE = 0.75  # difflib ratio: `emial` → email, `sned` → send; not `plan` → phone
MAX_UNKNOWN_FIELD_WARNINGS = 100  # issues are stored with each version: keep them readable


@dataclass(frozen=True)
class _Reader:
    """A place paths are read: the roots its scope has, and how to tell the user about it."""

    roots: frozenset[str]
    name: str = ""
    hint: str = ""


_IN_STEP = _Reader(frozenset(ROOTS))  # every root a path can have: never the reason
_IN_TRIGGER = _Reader(_MATCH_ROOTS, "a trigger filter")
_IN_EXIT_RULE = _Reader(_MATCH_ROOTS, "an exit_on filter")
_IN_WAIT_FILTER = _Reader(
    _MATCH_ROOTS, "a wait_for_event filter",
    "; to compare with run data, put a template in the value instead, e.g. "
    '"value": "{{{{ {path} }}}}"')


class _FieldLint:
    """Finds every condition field and template path of a definition and checks each once."""

    def __init__(self, steps: list[dict[str, Any]], warn: Warn) -> None:
        self.step_ids = {step["id"] for step in steps if isinstance(step.get("id"), str)}
        self.steps = steps
        self.warn = warn
        self.reported: set[tuple[str, str]] = set()

    def run(self, definition: dict[str, Any]) -> None:
        trigger = definition.get("trigger")
        if isinstance(trigger, dict) and "filter" in trigger:
            self.condition(trigger["filter"], "trigger.filter", _IN_TRIGGER, None)
            # Values of event-matching filters render against the same event-and-contact scope.
            self.templates(trigger["filter"], "trigger.filter", _IN_TRIGGER, None)
        settings = definition.get("settings")
        rules = settings.get("exit_on") if isinstance(settings, dict) else None
        for i, rule in enumerate(rules if isinstance(rules, list) else ()):
            if isinstance(rule, dict) and "filter" in rule:
                where = f"settings.exit_on[{i}].filter"
                self.condition(rule["filter"], where, _IN_EXIT_RULE, None)
                self.templates(rule["filter"], where, _IN_EXIT_RULE, None)
        for i, step in enumerate(self.steps):
            self.step(step, f"steps[{i}]")

    def step(self, step: dict[str, Any], path: str) -> None:
        step_id = step.get("id") if isinstance(step.get("id"), str) else None
        config = step.get("config")
        if not isinstance(config, dict):
            return
        conditions = _step_conditions(step.get("type"), config, f"{path}.config")
        for condition, where, reader in conditions:
            self.condition(condition, where, reader, step_id)
        # Every string of a step's config is a template rendered against the run's whole scope,
        # condition values (even in a wait_for_event filter) included; not its literal keys.
        kind = step.get("type")
        literal = STEP_TYPES[kind].literal if isinstance(kind, str) and kind in STEP_TYPES else ()
        self.templates({k: v for k, v in config.items() if k not in literal},
                       f"{path}.config", _IN_STEP, step_id)

    def condition(self, condition: Any, where: str, reader: _Reader, step_id: str | None) -> None:
        for field_where, text in _condition_fields(condition, where):
            try:
                path = compile_path(text)
            except PathError:
                continue  # already an invalid_condition error
            self.check(path, field_where, reader, step_id)

    def templates(self, value: Any, where: str, reader: _Reader, step_id: str | None) -> None:
        for string_where, text in _template_strings(value, where):
            try:
                template = compile_template(text)
            except TemplateError:
                continue  # already an invalid_template or invalid_condition error
            for path in template.paths:
                self.check(path, string_where, reader, step_id)

    def check(self, path: Path, where: str, reader: _Reader, step_id: str | None) -> None:
        if (where, path.text) in self.reported or len(self.reported) >= MAX_UNKNOWN_FIELD_WARNINGS:
            return
        reason = _why_always_missing(path, reader, self.step_ids)
        if reason is not None:
            self.reported.add((where, path.text))
            self.warn("unknown_field", where, f"'{path.text}' is always missing: {reason}",
                      step_id)


def _step_conditions(step_type: Any, config: dict[str, Any], path: str
                     ) -> Iterator[tuple[Any, str, _Reader]]:
    """(condition, where, reader) for each condition in a step's config."""
    if step_type == "condition" and "if" in config:
        yield config["if"], f"{path}.if", _IN_STEP
    elif step_type == "split" and isinstance(config.get("branches"), list):
        for i, branch in enumerate(config["branches"]):
            if isinstance(branch, dict) and "if" in branch:
                yield branch["if"], f"{path}.branches[{i}].if", _IN_STEP
    elif step_type == "wait_for_event" and "filter" in config:
        yield config["filter"], f"{path}.filter", _IN_WAIT_FILTER


def _condition_fields(condition: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, text) of each leaf's `field`, as far as the raw condition has the right shape.
    Bounded like compiling a condition is, since a draft may hold one too big to compile."""
    stack = [(condition, where, 1)]
    parts = 0
    while stack and parts < MAX_CONDITION_PARTS:
        node, here, depth = stack.pop()
        parts += 1
        if not isinstance(node, dict) or depth > MAX_CONDITION_DEPTH:
            continue
        if isinstance(node.get("field"), str):
            yield join(here, "field"), node["field"]
        if "not" in node:
            stack.append((node["not"], join(here, "not"), depth + 1))
        for group in ("any", "all"):
            items = node.get(group)
            if isinstance(items, list):  # pushed last to first, so reports keep their order
                stack.extend((item, join(join(here, group), i), depth + 1)
                             for i, item in reversed(list(enumerate(items[:MAX_CONDITION_PARTS]))))


def _template_strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, text) of each string holding `{{` inside a JSON value, in document order."""
    stack = [(value, where, 1)]
    while stack:
        node, here, depth = stack.pop()
        if isinstance(node, str):
            if "{{" in node:
                yield here, node
        elif depth <= MAX_JSON_DEPTH and isinstance(node, dict):
            stack.extend((item, join(here, str(key)), depth + 1)
                         for key, item in reversed(list(node.items())))
        elif depth <= MAX_JSON_DEPTH and isinstance(node, list):
            stack.extend((item, join(here, i), depth + 1)
                         for i, item in reversed(list(enumerate(node))))


def _why_always_missing(path: Path, reader: _Reader, step_ids: set[str]) -> str | None:
    """Why `path` can never hold a value where `reader` reads it, with a suggestion; None when
    it may. Only the root and the first segment are judged: below them lies user data."""
    if path.root not in reader.roots:
        return (f"{reader.name} sees only the event and the contact"
                + reader.hint.format(path=path.text))
    if not path.segments:
        return None
    first = path.segments[0][0]
    if path.root == "contact":
        return _contact_field_problem(path, first)
    if path.root == "run":
        return _name_problem(path, first, RUN_FIELDS, f"a run has only {', '.join(RUN_FIELDS)}")
    if path.root == "loop":
        return _name_problem(path, first, LOOP_FIELDS, "loop has only item, index and iterations")
    if path.root == "steps":
        return _name_problem(path, first, step_ids, f"no step has the id '{first}'")
    if path.root == "now":
        return "now is the current time as text and has no parts. Did you mean 'now'?"
    return None  # event.x is short for event.properties.x; vars, user, profile, trait: anything


def _contact_field_problem(path: Path, first: str) -> str | None:
    if first in CONTACT_FIELDS:
        return None
    rest = path.segments[1:]
    if first.lower().replace("_", "").replace("-", "") in _ATTRIBUTE_BAGS:
        return (f"a contact keeps custom attributes in traits, not {first}. "
                f"Did you mean '{_path_text('contact', [('traits', None), *rest])}'?")
    in_traits = _path_text("contact", [("traits", None), *path.segments])
    typo = difflib.get_close_matches(first, CONTACT_FIELDS, n=1, cutoff=_CLOSE)
    if typo:
        return (f"a contact has no field '{first}'. Did you mean "
                f"'{_path_text('contact', [(typo[0], None), *rest])}'? "
                f"(A custom attribute would be '{in_traits}'.)")
    return (f"a contact has only {', '.join(CONTACT_FIELDS)}; custom attributes are in traits. "
            f"Did you mean '{in_traits}'?")


def _name_problem(path: Path, first: str, names: Collection[str], reason: str) -> str | None:
    """None when `first` is one of `names`; else `reason` and the closest name as a suggestion."""
    if first in names:
        return None
    close = difflib.get_close_matches(first, sorted(names), n=1, cutoff=_CLOSE)  # sorted: stable
    if not close:
        return reason
    suggestion = _path_text(path.root, [(close[0], None), *path.segments[1:]])
    return f"{reason}. Did you mean '{suggestion}'?"


_PLAIN_KEY = re.compile(r"[\w$-]+")


def _path_text(root: str, segments: list[tuple[str, Any]] | tuple[tuple[str, Any], ...]) -> str:
    """A path's text from its parts, e.g. for a suggestion: `contact.traits["Plan name"]`."""
    return root + "".join(f".{key}" if _PLAIN_KEY.fullmatch(key) else f'["{key}"]'
                          for key, _ in segments)


# ---------------------------------------------------------------- branch_falls_through

def _lint_fall_through(steps: list[dict[str, Any]], warn: Warn) -> None:
    """Per branching step: two of its branch targets where the first one's path, through steps
    without `next`, runs on into the second. Only the nearest pair in list order matters: a
    path that runs further has crossed that one first."""
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        if isinstance(step.get("id"), str):
            index.setdefault(step["id"], i)
    runs_on_to = _fall_through_ends(steps)
    for b, step in enumerate(steps):
        targets = _branch_targets(step, b, steps, index)
        ordered = sorted(targets)
        for here, there in zip(ordered, ordered[1:]):
            if there <= runs_on_to[here]:
                last = steps[there - 1].get("id")
                warn("branch_falls_through", f"steps[{there - 1}]",
                     _fall_through_message(step.get("id"), targets[here], targets[there], last,
                                           steps[there]["id"]), last)


def _fall_through_ends(steps: list[dict[str, Any]]) -> list[int]:
    """For each step, how far a run entering it gets by falling through (`next` absent means the
    following step): to the first step from there on whose `next` is set, or to the last step."""
    ends = list(range(len(steps)))
    for i in range(len(steps) - 2, -1, -1):
        if "next" not in steps[i]:
            ends[i] = ends[i + 1]
    return ends


def _branch_targets(step: dict[str, Any], position: int, steps: list[dict[str, Any]],
                    index: dict[str, int]) -> dict[int, list[str]]:
    """Index of each step a branch of `step` leads to → the labels leading there. Empty for a
    step without a branch map, and for one whose type is unknown (its labels are unknowable)."""
    raw, type_name = step.get("next"), step.get("type")
    step_type = STEP_TYPES.get(type_name) if isinstance(type_name, str) else None
    if not isinstance(raw, dict) or step_type is None:
        return {}
    produced = _labels_produced(step_type, step.get("config"))
    targets: dict[int, list[str]] = {}
    for label, target in raw.items():
        taken = produced is None or label in produced
        if taken and isinstance(target, str) and target in index:
            targets.setdefault(index[target], []).append(label)
    # A type without branches of its own takes its default path to the following step unless
    # `next` maps `default` (CompiledStep.target): that is a branch too, e.g. beside `error`.
    if not step_type.branches and "default" not in raw and position + 1 < len(steps):
        targets.setdefault(position + 1, []).append("default")
    return targets


def _labels_produced(step_type: Any, config: Any) -> set[str] | None:
    """The labels a step can take (None: unknown): a label it never takes leads nowhere, and is
    already an unknown_branch warning."""
    try:
        return set(step_type.branch_labels(config if isinstance(config, dict) else {})) | {
            "error", "default"}
    except (TypeError, AttributeError, ValueError):  # a draft's config of the wrong shape
        return None


def _fall_through_message(branching: str, from_labels: list[str], to_labels: list[str],
                          last: str, into: str) -> str:
    other = _branches(to_labels)
    return (f"the {_branches(from_labels)} of '{branching}' reaches '{last}', which has no next, "
            f"so the run falls through into '{into}', where the {other} "
            f"{'go' if len(to_labels) > 1 else 'goes'}: give '{last}' a next (null to end the "
            f"run there, or \"{into}\" if both paths should go on there)")


def _branches(labels: list[str]) -> str:
    names = " and ".join(f"'{label}'" for label in labels)
    return f"{names} branches" if len(labels) > 1 else f"{names} branch"
