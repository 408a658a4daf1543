"""`python -m flowd bench [SCENARIO…] [--quick] [--json PATH] [--synchronous normal|full]`

Runs the scenarios (all by default) one after another, each against its own flowd server
subprocess on a fresh temporary database, then prints one table: scenario, figure, value,
target, and the ratio (≥ 1: met). `--json PATH` writes the same rows for machines. The exit
status is 0 when every scenario could be measured, whether or not its target was met; 1 when
the bench itself failed somewhere (the server died, a response was an error, runs failed), with
the reason on stderr; 2 for a usage error.
"""

from __future__ import annotations

# `python -m flowd` builds its parser (and so imports this module) on every start, serving
# included: the measuring machinery is imported only when the bench runs.
import argparse
import sys
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from flowd.bench.report import Row
    from flowd.bench.scenarios import Context

FLOWD_SCENARIOS = ["ingest", "ingest-batch", "fanout", "steps", "chain", "timers", "wait-scale",
                   "recovery", "webhooks", "email", "bulk", "cron", "children", "loop",
                   "approvals", "test-run", "purge", "cross-channel", "code", "audience"]
PEERS = {"peer-steps": "steps", "peer-chain": "chain"}   # peer → the flowd scenario it compares
ALL = [*FLOWD_SCENARIOS, *PEERS]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"what to run (default: all): {', '.join(ALL)}")
    parser.add_argument("--quick", action="store_true",
                        help="every scenario at a small size (well under a minute in all)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--synchronous", choices=("normal", "full"), default="normal",
                        help="the server's storage.synchronous (and the DBOS peer's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flowd bench", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def selected(names: Sequence[str]) -> list[str]:
    """The scenarios to run, in the standard order; a peer brings the flowd scenario it needs."""
    unknown = [n for n in names if n not in ALL]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(ALL)}")
    wanted = set(names or ALL)
    wanted |= {PEERS[n] for n in wanted if n in PEERS}
    return [n for n in ALL if n in wanted]


async def _peer_rows(ctx: Context, name: str, dbos: str | None) -> list[Row]:
    from flowd.bench import peer, report
    from flowd.bench.report import ERROR, NOT_INSTALLED, Row

    s = ctx.sizes
    if name == "peer-steps":
        figure = f"DBOS steps/s, {s.peer_workflows:,} workflows × 20 steps"
        ratio_figure, flowd_key = "flowd ÷ DBOS, steps/s", "steps_per_s"
    else:
        figure = "DBOS one workflow of 40 steps, wall"
        ratio_figure, flowd_key = "DBOS ÷ flowd, chain wall", "chain_ms"
    if dbos is None:
        return [Row(name, figure, None, status=NOT_INSTALLED, note=peer.INSTALL_HINT),
                Row(name, ratio_figure, None, "×", ">=", 20 if name == "peer-steps" else 4,
                    status=NOT_INSTALLED)]
    if "peer" not in ctx.shared:
        directory = ctx.tmp / "peer"
        directory.mkdir(exist_ok=True)
        ctx.say(f"peer: DBOS {dbos}, {s.peer_workflows} workflows × 20 steps and a 40-step chain")
        ctx.shared["peer"] = await peer.measure(
            str(directory), workflows=s.peer_workflows, steps=20, chain_steps=40,
            repeats=s.peer_repeats, synchronous=ctx.synchronous, timeout_s=s.scenario_s)
    result = ctx.shared["peer"]
    how = (f"DBOS {dbos} in its own process, SQLite system database (WAL, "
           f"synchronous={result['synchronous']}), {result['mode']} workflows")
    flowd_value = ctx.shared.get(flowd_key)
    if name == "peer-steps":
        dbos_value = result["steps"]["steps_per_s"]
        rows = [Row(name, figure, dbos_value, "steps/s",
                    note=f"{how}; first start → last result: {result['steps']['seconds']} s")]
        ratio = None if flowd_value is None else flowd_value / dbos_value
        note = "" if flowd_value is None else f"flowd {flowd_value:,.0f} steps/s (the steps row)"
        rows.append(Row(name, ratio_figure, ratio, "×", ">=", 20, note=note,
                        status=ERROR if ratio is None else report.OK))
        return rows
    dbos_value = result["chain"]["median_ms"]
    rows = [Row(name, figure, dbos_value, "ms",
                note=f"{how}; median of {result['chain']['repeats']}, start → result")]
    ratio = None if not flowd_value else dbos_value / flowd_value
    note = "" if ratio is None else (
        f"flowd {flowd_value:.0f} ms server-side (the chain row); against flowd's "
        f"client-observed {ctx.shared['chain_client_ms']:.0f} ms: "
        f"{dbos_value / ctx.shared['chain_client_ms']:.2f}×")
    rows.append(Row(name, ratio_figure, ratio, "×", ">=", 4, note=note,
                    status=ERROR if ratio is None else report.OK))
    return rows


async def run_all(names: list[str], ctx: Context, dbos: str | None
                  ) -> tuple[list[Row], list[str]]:
    import asyncio
    import time
    import traceback

    from flowd.bench.report import ERROR, Row, cpu_seconds
    from flowd.bench.scenarios import SCENARIOS
    from flowd.bench.server import BenchError

    assert list(SCENARIOS) == FLOWD_SCENARIOS
    rows: list[Row] = []
    errors: list[str] = []
    for name in names:
        t0 = time.perf_counter()
        cpu0 = cpu_seconds()
        ctx.say(f"{name} …")
        try:
            if name in PEERS:
                work = _peer_rows(ctx, name, dbos)
            else:
                work = SCENARIOS[name](ctx)
            got = await asyncio.wait_for(work, ctx.sizes.scenario_s)
        except asyncio.TimeoutError:
            got = [Row(name, "failed", None, status=ERROR,
                       note=f"did not finish within {ctx.sizes.scenario_s:g} s")]
            errors.append(f"{name}: did not finish within {ctx.sizes.scenario_s:g} s")
        except BenchError as exc:
            got = [Row(name, "failed", None, status=ERROR, note=str(exc).splitlines()[0])]
            errors.append(f"{name}: {exc}")
        except Exception as exc:   # a bug in the bench: say where, go on with the rest
            traceback.print_exc(file=sys.stderr)
            got = [Row(name, "failed", None, status=ERROR, note=f"{type(exc).__name__}: {exc}")]
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
        rows.extend(got)
        elapsed = time.perf_counter() - t0
        cpu1 = cpu_seconds()
        other = ""
        if cpu0 and cpu1 and elapsed > 0:
            cores = max(0.0, (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1])) / elapsed
            ctx.other_load[name] = round(cores, 2)
            other = f"; other processes used {cores:.2f} cores meanwhile"
        ctx.say(f"{name} done in {elapsed:.1f} s{other}")
    return rows, errors


def run(args: argparse.Namespace) -> int:
    import asyncio
    import tempfile
    import time
    from pathlib import Path

    from flowd.bench import peer, report
    from flowd.bench.scenarios import FULL, QUICK, Context
    from flowd.bench.server import passthrough_env

    try:
        names = selected(args.scenarios)
    except ValueError as exc:
        print(f"flowd bench: {exc}", file=sys.stderr)
        return 2
    sizes = QUICK if args.quick else FULL
    dbos = peer.installed_version()
    machine = report.machine_info(synchronous=args.synchronous, quick=args.quick, dbos=dbos,
                                  server_env=passthrough_env())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flowd-bench-") as tmp:
        ctx = Context(sizes=sizes, synchronous=args.synchronous, tmp=Path(tmp))
        try:
            rows, errors = asyncio.run(run_all(names, ctx, dbos))
        except KeyboardInterrupt:
            print("flowd bench: interrupted", file=sys.stderr)
            return 130
    machine["seconds"] = round(time.perf_counter() - started, 1)
    machine["other_load_cores"] = ctx.other_load
    report.emit(report.table(rows, machine))
    if args.json:
        report.write_json(args.json, rows, machine, errors)
    for error in errors:
        print(f"flowd bench: {error}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
