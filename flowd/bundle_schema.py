"""The shape of a bundle (`flowd.bundle/1`): a project's workflows, audiences and templates as
one JSON document, references between them by name. The same schema objects validate an import (422
with paths) and render `GET /v1/schemas/bundle.json`, a self-contained JSON Schema (Draft
2020-12) whose shared shapes live under `$defs`."""

from __future__ import annotations

from typing import Any

from flowd.conditions import CONDITION
from flowd.definition_schema import DEFINITION_FIELDS, WORKFLOW_STATUSES
from flowd.template_schema import TEMPLATE_BODY
from flowd.validation import Array, Components, Enum, Object, String, text

FORMAT = "flowd.bundle/1"
MAX_ITEMS = 10_000   # workflows, audiences, templates in one bundle (export refuses more)
SCHEMA_PATH = "/v1/schemas/bundle.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

BUNDLE_WORKFLOW = Object({
    **DEFINITION_FIELDS,
    "status": Enum(WORKFLOW_STATUSES, description=(
        "The status the workflow is imported with (default draft). active or paused needs a "
        "definition without `error` issues.")),
}, required=("name",), description=(
    "A workflow by name (unique in a bundle): its definition, without the server's ids. A "
    "messaging step's `template` and `audience`, a schedule trigger's `audience` and a "
    "`run_workflow` step's `workflow` name their target."
)).named("BundleWorkflow")
AUDIENCE = Object({
    "name": text(1, 200, description="Unique in a bundle and in a project."),
    "description": String(max_len=2000),
    "filter": CONDITION,
}, required=("name", "filter"), description=(
    "An audience by name: its filter, a condition over the contact (see POST /v1/audiences)."
)).named("BundleAudience")
BUNDLE = Object({
    "$schema": String(max_len=2000, description="Where this schema is served (a URL; not "
                                                "checked on import)."),
    "format": Enum((FORMAT,)),
    "workflows": Array(BUNDLE_WORKFLOW, max_items=MAX_ITEMS,
                       description="Sorted by name on export."),
    "audiences": Array(AUDIENCE, max_items=MAX_ITEMS,
                       description="By name (unique in a bundle); sorted by name on export."),
    "templates": Array(TEMPLATE_BODY, max_items=MAX_ITEMS,
                       description="By name (unique in a bundle); sorted by name on export."),
}, required=("format", "workflows"), description=(
    "Workflows and the audiences and templates they use, references by name. An import is "
    "idempotent by name and all or nothing.")).named("Bundle")


def bundle_json_schema(public_url: str) -> dict[str, Any]:
    """The JSON Schema of a bundle, self-contained: every named shape under `$defs`."""
    components = Components(prefix="#/$defs/")
    root = BUNDLE.render(components)
    return {"$schema": DIALECT, "$id": public_url.rstrip("/") + SCHEMA_PATH,
            "title": "flowd bundle", **root,
            "$defs": dict(sorted(components.schemas.items()))}
