"""Results: one row per figure, printed as one table and written as JSON.

A row's `ratio` is oriented so that ≥ 1 means the target is met: value/target for "≥" targets,
target/value for "≤" targets. A target of "≤ 0" (nothing lost, nothing stuck) has ratio 1 when
met and 0 when not. A row without a target is information (its ratio is empty).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowd import __version__

OK, ERROR, NOT_INSTALLED = "ok", "error", "not installed"


@dataclass
class Row:
    scenario: str
    figure: str
    value: float | None
    unit: str = ""
    op: str | None = None          # ">=" or "<=" (None: no target)
    target: float | None = None
    status: str = OK
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None or self.op is None or self.target is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    @property
    def ratio(self) -> float | None:
        """≥ 1 means met; None when there is no target, no value, or it is infinite."""
        met = self.met
        if met is None:
            return None
        assert self.value is not None and self.target is not None
        if self.target == 0:
            return 1.0 if met else 0.0
        if self.op == ">=":
            return self.value / self.target
        return None if self.value <= 0 else self.target / self.value

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "figure": self.figure, "value": _finite(self.value),
                "unit": self.unit, "target": self.target, "comparison": self.op,
                "met": self.met, "ratio": _finite(self.ratio, 3), "status": self.status,
                "note": self.note}


def _finite(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def machine_info(*, synchronous: str, quick: bool, dbos: str | None,
                 server_env: dict[str, str]) -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_mb = None
    try:
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        pass
    return {"cores": os.cpu_count(), "cpu": model, "memory_mb": mem_mb,
            "platform": platform.platform(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "flowd": __version__,
            "synchronous": synchronous, "size": "quick" if quick else "full",
            "dbos": dbos, "server_env": server_env}


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if value == int(value) or abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def _target(row: Row) -> str:
    if row.op is None or row.target is None:
        return ""
    return f"{'≥' if row.op == '>=' else '≤'} {_number(row.target, row.unit)}"


def _ratio(row: Row) -> str:
    met = row.met
    if met is None:
        return ""
    ratio = row.ratio
    shown = "inf" if ratio is None else f"{ratio:.2f}"
    return f"{shown} {'met' if met else 'MISSED'}"


def table(rows: list[Row], machine: dict[str, Any]) -> str:
    head = (f"flowd bench ({machine['size']} size): {machine['cores']} cores"
            f"{' (' + machine['cpu'] + ')' if machine['cpu'] else ''}, "
            f"{machine['memory_mb']} MB, Python {machine['python']}, SQLite {machine['sqlite']}, "
            f"synchronous={machine['synchronous']}, DBOS {machine['dbos'] or 'not installed'}")
    if machine["server_env"]:
        head += "\nserver settings from the environment: " + ", ".join(
            f"{k}={v}" for k, v in sorted(machine["server_env"].items()))
    cells = [("scenario", "figure", "value", "target", "ratio")]
    for row in rows:
        if row.status == OK:
            value = _number(row.value, row.unit)
        else:
            value = row.status
        cells.append((row.scenario, row.figure, value, _target(row), _ratio(row)))
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    lines = [head, ""]
    for n, c in enumerate(cells):
        lines.append("  ".join(c[i].ljust(widths[i]) if i in (0, 1) else c[i].rjust(widths[i])
                               for i in range(5)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [(row.scenario, row.figure, row.note) for row in rows if row.note]
    if notes:
        lines.append("")
        lines.extend(f"* {s} / {f}: {n}" for s, f, n in notes)
    return "\n".join(lines)


def write_json(path: str, rows: list[Row], machine: dict[str, Any],
               errors: list[str]) -> None:
    document = {"machine": machine, "results": [row.to_json() for row in rows],
                "errors": errors}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2) + "\n")


def emit(text: str) -> None:
    """Print to stdout even when its encoding cannot show ≥ and ≤."""
    try:
        print(text, flush=True)
    except UnicodeEncodeError:
        sys.stdout.buffer.write(text.encode("utf-8", "replace") + b"\n")
        sys.stdout.flush()
