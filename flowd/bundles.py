"""Bundles: exporting a project's workflows, audiences and templates as one canonical JSON
document (flowd.bundle/1), and importing one as ONE unit of work — idempotent by name, all or
nothing.

References between objects travel by name, never by this server's ids (which mean nothing on
another server): a messaging step's `template` and `audience`, a schedule trigger's `audience`
and a `run_workflow` step's `workflow` are turned from ids into names on export; names are
stored as they are on import (each accepts an id or a name). The text is canonical (sorted keys,
two-space indent, workflows, audiences and templates sorted by name), so export → import into a
fresh server → export gives the same bytes apart from the `$schema` URL.

Used by the HTTP API (flowd.api.bundles) and by `python -m flowd export|import`, both through
the store's transactions.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from typing import Any

from flowd.audiences import compile_filter
from flowd.bundle_schema import BUNDLE, FORMAT, MAX_ITEMS, SCHEMA_PATH
from flowd.definitions import audience_refs, normalize
from flowd.errors import Conflict, NotFound, Problem, ValidationError
from flowd.imports import convert
from flowd.store import Transaction
from flowd.store.records import Audience, NameTaken, Template, Workflow
from flowd.template_schema import template_content
from flowd.workflows import WorkflowService, canonical

# Step config keys that name another object of the project.
_TEMPLATE_KEY, _WORKFLOW_KEY, _AUDIENCE_KEY = "template", "workflow", "audience"


def dumps(bundle: dict[str, Any]) -> str:
    """The canonical text of a bundle."""
    return json.dumps(bundle, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- export

def _refs(definition: dict[str, Any], key: str, *types: str) -> list[str]:
    return [step["config"][key] for step in definition.get("steps") or []
            if (not types or step.get("type") in types)
            and isinstance((step.get("config") or {}).get(key), str)]


class Names:
    """A project's objects by id → name: what references become on export."""

    def __init__(self, templates: dict[str, str], workflows: dict[str, str],
                 audiences: dict[str, str]) -> None:
        self.templates = templates
        self.workflows = workflows
        self.audiences = audiences


def _by_name(definition: dict[str, Any], names: Names) -> dict[str, Any]:
    """The definition with ids of templates, audiences and workflows replaced by their
    names."""
    definition = copy.deepcopy(definition)
    trigger = definition.get("trigger") or {}
    if trigger.get("type") == "schedule" and isinstance(trigger.get(_AUDIENCE_KEY), str):
        trigger[_AUDIENCE_KEY] = names.audiences.get(trigger[_AUDIENCE_KEY],
                                                     trigger[_AUDIENCE_KEY])
    for step in definition.get("steps") or []:
        config = step.get("config") or {}
        if isinstance(config.get(_TEMPLATE_KEY), str):
            config[_TEMPLATE_KEY] = names.templates.get(config[_TEMPLATE_KEY],
                                                        config[_TEMPLATE_KEY])
        if isinstance(config.get(_AUDIENCE_KEY), str):
            config[_AUDIENCE_KEY] = names.audiences.get(config[_AUDIENCE_KEY],
                                                        config[_AUDIENCE_KEY])
        if step.get("type") == "run_workflow" and isinstance(config.get(_WORKFLOW_KEY), str):
            config[_WORKFLOW_KEY] = names.workflows.get(config[_WORKFLOW_KEY],
                                                        config[_WORKFLOW_KEY])
    return definition


def _entry(workflow: Workflow, names: Names) -> dict[str, Any]:
    definition = _by_name(workflow.definition, names)
    return {"name": workflow.name, "description": workflow.description,
            "status": workflow.status.value, **definition}


def _template_entry(template: Template) -> dict[str, Any]:
    return {"name": template.name, "channel": template.channel, **template.content}


def _audience_entry(audience: Audience) -> dict[str, Any]:
    return {"name": audience.name, "description": audience.description,
            "filter": audience.filter}


def _with_children(start: Workflow, every: list[Workflow]) -> list[Workflow]:
    """The workflow and those its `run_workflow` steps start (by id or name), transitively:
    a bundle of one workflow still runs on another server."""
    by_ref: dict[str, Workflow] = {}
    for workflow in reversed(every):          # the oldest of a name wins
        by_ref[workflow.name] = workflow
    by_ref.update({w.id: w for w in every})
    chosen: dict[str, Workflow] = {}
    todo = [start]
    while todo:
        workflow = todo.pop()
        if workflow.id in chosen:
            continue
        chosen[workflow.id] = workflow
        todo += [by_ref[ref] for ref in _refs(workflow.definition, _WORKFLOW_KEY, "run_workflow")
                 if ref in by_ref]
    return list(chosen.values())


def export(tx: Transaction, project_id: str, public_url: str,
           workflow_id: str | None = None) -> dict[str, Any]:
    """Every workflow, audience and template of the project, or one workflow with what it
    uses."""
    every = _every(tx.workflows, project_id, "workflows")
    templates = _every(tx.templates, project_id, "templates")
    audiences = _every(tx.audiences, project_id, "audiences")
    names = Names({t.id: t.name for t in templates}, {w.id: w.name for w in every},
                  {a.id: a.name for a in audiences})
    if workflow_id is None:
        chosen = every
    else:
        start = next((w for w in every if w.id == workflow_id), None)
        if start is None:
            raise NotFound("no such workflow")
        chosen = _with_children(start, every)
    entries = [_entry(w, names) for w in chosen]
    if workflow_id is not None:
        used = {ref for entry in entries for ref in _refs(entry, _TEMPLATE_KEY)}
        templates = [t for t in templates if t.name in used]
        named = {ref for entry in entries for _, _, ref in audience_refs(entry)}
        audiences = [a for a in audiences if a.name in named]
    # Sorted by name, then by the whole text: the same project gives the same bytes.
    return {
        "$schema": public_url.rstrip("/") + SCHEMA_PATH,
        "format": FORMAT,
        "workflows": sorted(entries, key=lambda e: (e["name"], dumps(e))),
        "audiences": sorted((_audience_entry(a) for a in audiences), key=lambda e: e["name"]),
        "templates": sorted((_template_entry(t) for t in templates), key=lambda e: e["name"]),
    }


def _every(family: Any, project_id: str, what: str) -> list[Any]:
    """All of a project's workflows, audiences or templates, which a bundle holds at most MAX_ITEMS of:
    a project with more is refused rather than read whole into memory."""
    found = family.every(project_id, MAX_ITEMS + 1)
    if len(found) > MAX_ITEMS:
        raise Conflict(f"the project has more than {MAX_ITEMS:,} {what}: a bundle holds at most "
                       "that many")
    return found


# ---------------------------------------------------------------- import

class Prepared:
    """An import body made ready: a validated bundle, and for a definition of another tool
    the warnings about what had no equivalent."""

    def __init__(self, bundle: dict[str, Any], warnings: list[dict[str, str]] | None,
                 source: str = FORMAT) -> None:
        self.bundle = bundle
        self.warnings = warnings
        self.source = source

    @property
    def foreign(self) -> bool:
        return self.warnings is not None


def prepare(body: Any) -> Prepared:
    """A bundle (checked against the bundle schema: 422 with paths), or one definition in the
    shape of another tool (flowd.imports), made into a bundle of one workflow."""
    if not isinstance(body, dict):
        raise ValidationError([Problem("", "must be a JSON object: a bundle or a definition")])
    if "format" in body:
        problems: list[Problem] = []
        bundle = BUNDLE.validate(body, "", problems)
        if problems:
            raise ValidationError(problems, message="the bundle is not valid; nothing was "
                                                    "imported")
        return Prepared(bundle, None)
    source, entry, warnings = convert(body)
    problems = []
    checked = BUNDLE.validate({"format": FORMAT, "workflows": [entry]}, "", problems)
    if problems:   # a mapping that makes no valid workflow is this server's bug, but say where
        raise ValidationError(problems, message=f"the {source} definition could not be "
                                                "mapped; nothing was imported")
    return Prepared(checked, warnings, source)


def _duplicates(items: list[dict[str, Any]], kind: str) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for i, item in enumerate(items):
        if item["name"] in seen:
            problems.append(Problem(f"{kind}[{i}].name", f"{item['name']!r} is also the name of "
                                    f"{kind}[{seen[item['name']]}]", "duplicate_name"))
        seen.setdefault(item["name"], i)
    return problems


def _import_templates(tx: Transaction, project_id: str, items: list[dict[str, Any]],
                      now: int, result: dict[str, list[dict[str, Any]]],
                      problems: list[Problem]) -> None:
    existing = {t.name: t for t in _every(tx.templates, project_id, "templates")}
    for i, item in enumerate(items):
        path = f"templates[{i}]"
        try:
            content = template_content(item)
        except ValidationError as error:
            problems += [Problem(f"{path}.{p.path}" if p.path else path, p.message, p.code)
                         for p in error.problems]
            continue
        current = existing.get(item["name"])
        if current is None:
            try:
                template = tx.templates.create(project_id=project_id, name=item["name"],
                                               channel=item["channel"], content=content, now=now)
            except NameTaken:   # pragma: no cover - names were read in this transaction
                problems.append(Problem(f"{path}.name", "the name is taken", "name_taken"))
                continue
            outcome = "created"
        elif current.channel != item["channel"]:
            problems.append(Problem(f"{path}.channel", f"the template {item['name']!r} is for "
                                    f"{current.channel}; its channel cannot change",
                                    "channel_changed"))
            continue
        elif current.content == content:
            template, outcome = current, "unchanged"
        else:
            template, outcome = tx.templates.update(current, name=current.name, content=content,
                                                    now=now), "updated"
        result[outcome].append({"type": "template", "id": template.id, "name": template.name})


def _import_audiences(tx: Transaction, project_id: str, items: list[dict[str, Any]],
                      now: int, result: dict[str, list[dict[str, Any]]],
                      problems: list[Problem]) -> None:
    existing = {a.name: a for a in _every(tx.audiences, project_id, "audiences")}
    for i, item in enumerate(items):
        path = f"audiences[{i}]"
        try:
            compile_filter(item["filter"], f"{path}.filter")
        except ValidationError as error:
            problems += error.problems
            continue
        description = item.get("description", "")
        current = existing.get(item["name"])
        if current is None:
            audience = tx.audiences.create(project_id=project_id, name=item["name"],
                                           description=description, filter=item["filter"],
                                           now=now)
            outcome = "created"
        elif current.description == description \
                and dumps(current.filter) == dumps(item["filter"]):   # JSON equality: 1 ≠ true
            audience, outcome = current, "unchanged"
        else:
            audience, outcome = tx.audiences.update(current, name=current.name,
                                                    description=description,
                                                    filter=item["filter"], now=now), "updated"
        result[outcome].append({"type": "audience", "id": audience.id, "name": audience.name})


def _same(existing: Workflow, entry: dict[str, Any], names: Names) -> bool:
    stored = _entry(existing, names)
    return canonical(stored) == canonical({**entry, **normalize(entry),
                                           "description": entry.get("description", ""),
                                           "status": entry.get("status", "draft")})


def apply(tx: Transaction, service: WorkflowService, project_id: str, prepared: Prepared,
          now: int) -> dict[str, Any]:
    """Import inside the caller's unit of work: templates and audiences first (workflows may
    name them), then workflows by name. Any problem raises a ValidationError listing every
    one, so the unit rolls back and nothing is imported."""
    bundle = prepared.bundle
    workflows, templates = bundle["workflows"], bundle.get("templates") or []
    audiences = bundle.get("audiences") or []
    problems = (_duplicates(workflows, "workflows") + _duplicates(templates, "templates")
                + _duplicates(audiences, "audiences"))
    result: dict[str, list[dict[str, Any]]] = {"created": [], "updated": [], "unchanged": []}
    _import_templates(tx, project_id, templates, now, result, problems)
    _import_audiences(tx, project_id, audiences, now, result, problems)
    named: dict[str, list[Workflow]] = defaultdict(list)
    every = _every(tx.workflows, project_id, "workflows")
    for workflow in every:
        named[workflow.name].append(workflow)
    # A stored reference by id equals the bundle's by name: compare as an export would show it.
    names = Names(tx.templates.names(project_id), {w.id: w.name for w in every},
                  tx.audiences.names(project_id))
    warnings = list(prepared.warnings or [])
    for i, entry in enumerate(workflows):
        path = f"workflows[{i}]"
        if len(named[entry["name"]]) > 1:
            problems.append(Problem(f"{path}.name", f"{len(named[entry['name']])} workflows of "
                                    f"this project are named {entry['name']!r}: rename all but "
                                    "one, so that the import knows which to update",
                                    "ambiguous_name"))
            continue
        existing = named[entry["name"]][0] if named[entry["name"]] else None
        if existing is not None and _same(existing, entry, names):
            result["unchanged"].append({"type": "workflow", "id": existing.id,
                                        "name": existing.name})
            continue
        refused: list[Problem] = []
        outcome, workflow = service.import_in(tx, project_id, existing, entry, now, path,
                                              refused)
        if outcome == "refused" and prepared.foreign:
            # Another tool's "active" is a wish: with errors it is saved as a draft to fix.
            warnings.append({"path": "status", "message": (
                "the source says active, but the workflow has errors "
                f"({'; '.join(p.message for p in refused)}), so it was saved as a draft")})
            outcome, workflow = service.import_in(tx, project_id, existing,
                                                  {**entry, "status": "draft"}, now, path,
                                                  problems)
        else:
            problems += refused
        if workflow is not None:
            result[outcome].append({"type": "workflow", "id": workflow.id,
                                    "name": workflow.name})
    if problems:
        raise ValidationError(problems, message=f"{len(problems)} problem(s) in the import; "
                                                "nothing was imported")
    if prepared.foreign:
        # One workflow: its entry carries the warnings (as the contract puts it), and so does
        # the answer itself, for a client that reads one place.
        for entry in result["created"] + result["updated"] + result["unchanged"]:
            entry["warnings"] = warnings
        result["source"] = prepared.source
        result["warnings"] = warnings
    return result
