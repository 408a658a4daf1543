"""The shape of a bundle (`flowd.bundle/1`): a project's workflows and templates as one JSON
document, references between them by name. The same schema objects validate an import (422
with paths) and render `GET /v1/schemas/bundle.json`, a self-contained JSON Schema (Draft
2020-12) whose shared shapes live under `$defs`."""

from __future__ import annotations

from typing import Any

from flowd.definition_schema import DEFINITION_FIELDS, WORKFLOW_STATUSES
from flowd.template_schema import TEMPLATE_BODY
from flowd.validation import Array, Components, Enum, Json, Object, String

FORMAT = "flowd.bundle/1"
MAX_ITEMS = 10_000   # workflows, and templates, in one bundle (export refuses a bigger project)
SCHEMA_PATH = "/v1/schemas/bundle.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

BUNDLE_WORKFLOW = Object({
    **DEFINITION_FIELDS,
    "status": Enum(WORKFLOW_STATUSES, description=(
        "The status the workflow is imported with (default draft). active or paused needs a "
        "definition without `error` issues.")),
}, required=("name",), description=(
    "A workflow by name (unique in a bundle): its definition, without the server's ids. A "
    "`send_email` step's `template` and a `run_workflow` step's `workflow` name their target."
)).named("BundleWorkflow")
# Audiences travel in bundles once the server has them; until then a bundle has none.
AUDIENCE = Json(object_only=True, description="Reserved: this server has no audiences yet."
                ).named("BundleAudience")
BUNDLE = Object({
    "$schema": String(max_len=2000, description="Where this schema is served (a URL; not "
                                                "checked on import)."),
    "format": Enum((FORMAT,)),
    "workflows": Array(BUNDLE_WORKFLOW, max_items=MAX_ITEMS,
                       description="Sorted by name on export."),
    "audiences": Array(AUDIENCE, max_items=0),
    "templates": Array(TEMPLATE_BODY, max_items=MAX_ITEMS,
                       description="By name (unique in a bundle); sorted by name on export."),
}, required=("format", "workflows"), description=(
    "Workflows and the templates they use, references by name. An import is idempotent by "
    "name and all or nothing.")).named("Bundle")


def bundle_json_schema(public_url: str) -> dict[str, Any]:
    """The JSON Schema of a bundle, self-contained: every named shape under `$defs`."""
    components = Components(prefix="#/$defs/")
    root = BUNDLE.render(components)
    return {"$schema": DIALECT, "$id": public_url.rstrip("/") + SCHEMA_PATH,
            "title": "flowd bundle", **root,
            "$defs": dict(sorted(components.schemas.items()))}
