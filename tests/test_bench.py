"""`python -m flowd bench --quick` runs end to end, so the benchmark never rots.

No timing is asserted: a slow machine measures slow figures. What is asserted is that every
scenario produced a number (the DBOS peer rows may say "not installed" instead), that the JSON
has the documented shape, and that the command exits 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flowd.bench.cli import ALL, FLOWD_SCENARIOS, PEERS


def test_bench_quick_measures_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWD_")}
    proc = subprocess.run([sys.executable, "-m", "flowd", "bench", "--quick", "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}"
    document = json.loads(out.read_text())
    assert document["errors"] == []
    machine = document["machine"]
    assert machine["cores"] and machine["synchronous"] == "normal" and machine["size"] == "quick"
    results = document["results"]
    for row in results:
        assert set(row) >= {"scenario", "figure", "value", "unit", "target", "met", "ratio"}
    for scenario in FLOWD_SCENARIOS:
        rows = [r for r in results if r["scenario"] == scenario]
        assert rows, f"no row for {scenario}"
        for row in rows:
            assert isinstance(row["value"], (int, float)), row
            if row["target"] is not None:
                assert isinstance(row["met"], bool), row
    for scenario in PEERS:
        rows = [r for r in results if r["scenario"] == scenario]
        assert rows, f"no row for {scenario}"
        for row in rows:
            if machine["dbos"] is None:
                assert row["status"] == "not installed" and row["value"] is None, row
            else:
                assert isinstance(row["value"], (int, float)), row
    assert {r["scenario"] for r in results} == set(ALL)
    # The table went to stdout, one line per row (plus the header).
    for scenario in ALL:
        assert scenario in proc.stdout
