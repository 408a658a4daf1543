"""Definitions of other tools, made into flowd workflows: the shapes of reference documents 000
(a list of steps), 001 (a graph of nodes naming their parents) and 004 (steps plus
transitions), told apart by their shape. Each mapping lives in its own module and reports every
field it could not carry over as a warning `{"path", "message"}` (a path in the source)."""

from __future__ import annotations

from typing import Any

from flowd.errors import Problem, ValidationError
from flowd.imports import ref000, ref001, ref004
from flowd.imports.common import Mapping

# Order matters: a 004 document also has `steps`, so it is recognised before 000.
FORMATS = (("reference 001 (nodes)", ref001), ("reference 004 (steps and transitions)", ref004),
           ("reference 000 (steps)", ref000))
DEFAULT_NAME = "Imported workflow"


def convert(body: dict[str, Any]) -> tuple[str, dict[str, Any], list[dict[str, str]]]:
    """(which format, the workflow as a bundle entry, warnings); 422 for an unknown shape."""
    for source, module in FORMATS:
        if module.detect(body):
            mapping = Mapping()
            try:
                entry = module.convert(body, mapping)
            except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
                # The source is any JSON: a shape no mapping foresaw is the sender's to fix.
                raise ValidationError([Problem("", f"could not be read as {source}: "
                                                   f"{type(exc).__name__}", "unreadable")],
                                      ) from None
            if not isinstance(entry.get("name"), str) or not entry["name"].strip():
                mapping.warn("name", f"no name: imported as {DEFAULT_NAME!r}")
                entry["name"] = DEFAULT_NAME
            entry["name"] = entry["name"][:200]
            if not isinstance(entry.get("description"), str):
                mapping.warn("description", "not text: not imported")
                entry["description"] = ""
            return source, entry, mapping.warnings
    raise ValidationError([Problem("", "neither a flowd bundle (no \"format\") nor a definition "
                                       "in the shape of reference 000 (\"steps\"), 001 "
                                       "(\"nodes\") or 004 (\"steps\" and \"transitions\")",
                                   "unknown_format")])
