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
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowd import __version__
from flowd.store import SQLITE_VERSION

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


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and its
    reaped children: the servers and the peer). Their difference over a scenario is what other
    processes took from the machine meanwhile. None when /proc/stat cannot be read."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    except (OSError, ValueError, IndexError):
        return None
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


def _revision() -> str | None:
    """The git commit of the flowd source being measured (+dirty for local changes), if any."""
    source = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--", "flowd"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


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
            "sqlite": SQLITE_VERSION, "flowd": __version__, "revision": _revision(),
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
    if shown == "1.00" and not met:
        shown = f"{ratio:.3f}"
    return f"{shown} {'met' if met else 'MISSED'}"


def table(rows: list[Row], machine: dict[str, Any]) -> str:
    revision = f" at {machine['revision']}" if machine.get("revision") else ""
    head = (f"flowd {machine['flowd']}{revision}, bench ({machine['size']} size): "
            f"{machine['cores']} cores"
            f"{' (' + machine['cpu'] + ')' if machine['cpu'] else ''}, "
            f"{machine['memory_mb']} MB, Python {machine['python']}, SQLite {machine['sqlite']}, "
            f"synchronous={machine['synchronous']}, DBOS {machine['dbos'] or 'not installed'}")
    others = {k: v for k, v in (machine.get("other_load_cores") or {}).items() if v >= 0.25}
    if others:
        head += ("\nwarning: other processes were busy on this machine during "
                 + ", ".join(f"{k} ({v:.1f} cores)" for k, v in others.items())
                 + "; those figures may be low")
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
