"""`python -m flowd bench --quick` runs end to end, so the benchmark never rots.

No timing is asserted: a slow machine measures slow figures. What is asserted is that every
scenario produced a number (the DBOS peer rows may say "not installed" instead, and so may the
email scenario's SMTP row without aiosmtpd), that the JSON has the documented shape, and that
the command exits 0. The quick bench runs once for the module; each test reads its own part.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flowd.bench import mailsink, scenarios
from flowd.bench.cli import ALL, FLOWD_SCENARIOS, PEERS
from flowd.bench.report import NOT_INSTALLED


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Any]:
    """The finished `bench --quick --json` command and the JSON it wrote."""
    tmp_path = tmp_path_factory.mktemp("bench")
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWD_")}
    proc = subprocess.run([sys.executable, "-m", "flowd", "bench", "--quick", "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}"
    return proc, json.loads(out.read_text())


def test_bench_quick_measures_every_scenario(quick) -> None:
    proc, document = quick
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
            if scenario == "email" and row["status"] == NOT_INSTALLED:
                assert mailsink.installed_version() is None, row
                continue
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


def test_bench_email_rows(quick) -> None:
    """SMTP (through the aiosmtpd subprocess) and the outbox, each with its target, every
    message recorded sent (and received once by the SMTP server), CPU per email in the note."""
    _, document = quick
    smtp, outbox = [r for r in document["results"] if r["scenario"] == "email"]
    n = scenarios.QUICK.email_runs
    assert smtp["figure"].startswith("emails/s through SMTP") and smtp["unit"] == "emails/s"
    assert (smtp["comparison"], smtp["target"]) == (">=", 1000)
    assert outbox["figure"].startswith("emails/s to the outbox") and outbox["unit"] == "emails/s"
    assert (outbox["comparison"], outbox["target"]) == (">=", 3000)
    assert outbox["status"] == "ok" and outbox["value"] > 0
    assert f"{n:,} runs of one send_email step" in outbox["note"]
    assert "every one recorded sent" in outbox["note"]
    assert "µs per email" in outbox["note"]          # Linux: the server's CPU from /proc
    if mailsink.installed_version() is None:
        assert smtp["status"] == NOT_INSTALLED and smtp["value"] is None, smtp
        return
    assert smtp["status"] == "ok" and smtp["value"] > 0
    assert "received once by the SMTP server" in smtp["note"]
    assert "µs per email" in smtp["note"] and "µs CPU per message" in smtp["note"]
    assert "0 repeated messages" in smtp["note"]


async def test_bench_email_says_not_installed_without_aiosmtpd(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """Without aiosmtpd the SMTP row says so (as the DBOS rows do without dbos); the outbox
    is still measured."""
    for name in [k for k in os.environ if k.startswith("FLOWD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(mailsink, "installed_version", lambda: None)
    sizes = dataclasses.replace(scenarios.QUICK, email_runs=50)
    ctx = scenarios.Context(sizes=sizes, synchronous="normal", tmp=tmp_path)
    smtp, outbox = await scenarios.email(ctx)
    assert smtp.status == NOT_INSTALLED and smtp.value is None
    assert smtp.note == mailsink.INSTALL_HINT and smtp.target == 1000
    assert outbox.status == "ok" and outbox.value is not None and outbox.value > 0
    assert not (tmp_path / "email-sink").exists()   # no SMTP server was started


async def test_bench_cron_row(tmp_path: Path, monkeypatch) -> None:
    """The cron scenario on its own: 1,000 schedules fire, and the row says how soon."""
    for name in [k for k in os.environ if k.startswith("FLOWD_")]:
        monkeypatch.delenv(name)
    ctx = scenarios.Context(sizes=scenarios.QUICK, synchronous="normal", tmp=tmp_path)
    [row] = await scenarios.cron(ctx)
    assert row.status == "ok" and row.unit == "ms" and (row.op, row.target) == ("<=", 1000)
    assert isinstance(row.value, (int, float)) and row.value >= 0
    assert "µs per fire" in row.note
    assert not (tmp_path / "cron").exists()


def _quick_ctx(tmp_path: Path, monkeypatch) -> scenarios.Context:
    for name in [k for k in os.environ if k.startswith("FLOWD_")]:
        monkeypatch.delenv(name)
    return scenarios.Context(sizes=scenarios.QUICK, synchronous="normal", tmp=tmp_path)


async def test_bench_children_row(tmp_path: Path, monkeypatch) -> None:
    """Parents each waiting for a child workflow: pairs/s against its target, CPU per pair."""
    [row] = await scenarios.children(_quick_ctx(tmp_path, monkeypatch))
    n = scenarios.QUICK.child_runs
    assert row.status == "ok" and row.unit == "pairs/s" and (row.op, row.target) == (">=", 1000)
    assert isinstance(row.value, (int, float)) and row.value > 0
    assert f"{n:,} events in batches of 100" in row.note and "µs per pair" in row.note
    assert f"all {n:,} children completed" in row.note
    assert not (tmp_path / "children").exists()


async def test_bench_loop_row(tmp_path: Path, monkeypatch) -> None:
    """One run's loop over 1,000 items even in quick mode: its wall time, CPU per iteration."""
    [row] = await scenarios.loop(_quick_ctx(tmp_path, monkeypatch))
    assert scenarios.QUICK.loop_items == 1000
    assert row.status == "ok" and row.unit == "ms" and (row.op, row.target) == ("<=", 250)
    assert isinstance(row.value, (int, float)) and row.value > 0
    assert "2,001 committed steps each" in row.note and "µs per iteration" in row.note
    assert not (tmp_path / "loop").exists()


async def test_bench_code_rows(tmp_path: Path, monkeypatch) -> None:
    """Runs of one code step (steps/s, CPU of the server and of its workers per step), then
    /healthz polled while a script spins until its limit stops it."""
    steps, healthz = await scenarios.code(_quick_ctx(tmp_path, monkeypatch))
    n = scenarios.QUICK.code_runs
    assert steps.status == "ok" and steps.unit == "steps/s" and (steps.op, steps.target) == (
        ">=", 2000)
    assert isinstance(steps.value, (int, float)) and steps.value > 0
    assert f"{n:,} runs of one trivial code step" in steps.figure
    assert "µs per step" in steps.note and "sandbox workers' CPU" in steps.note
    assert healthz.status == "ok" and healthz.unit == "ms" and (healthz.op, healthz.target) == (
        "<=", 50)
    assert "failed with code_timeout" in healthz.note
    assert not (tmp_path / "code").exists()


async def test_bench_approvals_rows(tmp_path: Path, monkeypatch) -> None:
    """Waiting approvals decided by POSTs to their links: decisions/s, then the runs' end."""
    posts, after = await scenarios.approvals(_quick_ctx(tmp_path, monkeypatch))
    assert posts.status == "ok" and posts.unit == "decisions/s"
    assert (posts.op, posts.target) == (">=", 1000)
    assert isinstance(posts.value, (int, float)) and posts.value > 0
    assert "µs per decision" in posts.note and "32 connections" in posts.figure
    assert after.unit == "ms" and after.target is None and isinstance(after.value, (int, float))
    assert not (tmp_path / "approvals").exists()


async def test_bench_test_run_row(tmp_path: Path, monkeypatch) -> None:
    """Dry runs of a 90-day journey over HTTP: ms per test run, with its target."""
    [row] = await scenarios.test_run(_quick_ctx(tmp_path, monkeypatch))
    assert row.status == "ok" and row.unit == "ms" and (row.op, row.target) == ("<=", 50)
    assert isinstance(row.value, (int, float)) and row.value > 0
    assert "µs per test run" in row.note
    assert not (tmp_path / "test-run").exists()
async def test_bench_purge_row(tmp_path: Path, monkeypatch) -> None:
    """Retention deleting ended runs while events arrive: its rate, and ingest p99 during it
    against without it (a ratio with its ≤ 2× target)."""
    ctx = _quick_ctx(tmp_path, monkeypatch)
    ctx = dataclasses.replace(ctx, sizes=dataclasses.replace(ctx.sizes, purge_runs=5000,
                                                             open_loop_s=1.0))
    rate, ratio = await scenarios.purge(ctx)
    assert rate.status == "ok" and rate.unit == "runs/s" and rate.value > 0
    assert "5,000 runs" in rate.figure and "after the incremental vacuum" in rate.note
    assert ratio.unit == "×" and (ratio.op, ratio.target) == ("<=", 2)
    assert isinstance(ratio.value, float) and ratio.value > 0
    assert "p99" in ratio.note
    assert not (tmp_path / "purge").exists()


async def test_bench_cross_channel_row(tmp_path: Path, monkeypatch) -> None:
    """Runs of push → email → SMS to the outboxes: messages/s against its target, CPU per
    message, every message of every channel recorded sent."""
    [row] = await scenarios.cross_channel(_quick_ctx(tmp_path, monkeypatch))
    n = scenarios.QUICK.cross_channel_runs
    assert row.status == "ok" and row.unit == "messages/s"
    assert (row.op, row.target) == (">=", 1500)
    assert isinstance(row.value, (int, float)) and row.value > 0
    assert f"every one of the {3 * n:,} messages recorded sent" in row.note
    assert "µs per message" in row.note
    assert not (tmp_path / "cross-channel").exists()


async def test_bench_audience_rows(tmp_path: Path, monkeypatch) -> None:
    """An audience evaluated over seeded contacts: count and first page, p50 with targets."""
    ctx = _quick_ctx(tmp_path, monkeypatch)
    ctx = dataclasses.replace(ctx, sizes=dataclasses.replace(ctx.sizes, audience_contacts=3000,
                                                             audience_calls=3))
    count, page = await scenarios.audience(ctx)
    assert count.status == page.status == "ok" and count.unit == page.unit == "ms"
    assert (count.op, count.target, page.op, page.target) == ("<=", 100, "<=", 20)
    assert "3,000 contacts" in count.figure and "800 members" in count.note
    assert "p99" in page.note and "µs per call" in count.note
    assert not (tmp_path / "audience").exists()
