"""schemathesis against a real `python -m flowd` on a temporary database: every check, every
operation, a bounded number of examples each, then the stateful phase that follows the
document's links (create → get/update/delete). Any failure fails the suite, with schemathesis'
own report (and `curl` reproductions) in the assertion message.

`FUZZ_SEED` picks another seed (default: a fixed one, so CI is repeatable); `FUZZ_EXAMPLES`
another number of examples per operation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ServerProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SEED = os.environ.get("FUZZ_SEED", "20261129")
EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "25")


def test_schemathesis_finds_nothing(server: ServerProcess, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks"}
    env = {k: v for k, v in env.items() if not k.startswith("FLOWD_")}
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(HERE / "schemathesis.toml"),
         "run", f"{server.url}/v1/openapi.json",
         "--header", f"Authorization: Bearer {server.key}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--max-examples", EXAMPLES, "--seed", SEED, "--workers", "2",
         "--request-timeout", "20", "--generation-database", "none", "--no-color"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    summary = re.search(r"(\d+) generated, (.*)", output)
    sections = [output.find(title) for title in ("ERRORS", "FAILURES") if title in output]
    report = output[min(sections):] if sections else output
    assert result.returncode == 0 and summary, report[:6000]
    assert "passed" in summary.group(2), summary.group(0)
    log = server.log_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-5000:]
