"""The peer: DBOS Transact (durable workflows in a library, on SQLite) doing the bench's work.

The bench runs this module in its own subprocess, so DBOS's threads never share a process (or
a GIL) with the bench client or the flowd server:

    python -m flowd.bench.peer --dir TMP --workflows 1000 --steps 20 --chain-steps 40

It prints one JSON line on stdout: {"dbos_version", "mode", "steps": {…}, "chain": {…}}.

What DBOS does here, so that it does the same work as flowd's `steps` and `chain` scenarios:
  * `steps`: N workflows of S trivial steps, all started at once; DBOS checkpoints every step's
    result to its system database before the next one. Throughput = N×S steps over the time from
    the first start to the last result (this process's clock).
  * `chain`: one workflow of 40 steps, start to result (the median of a few repetitions).
DBOS is configured programmatically: a SQLite system database in the given directory, no admin
server, no Conductor, no network. Its SQLite connections get the same durability settings as
the flowd server under test (WAL, `synchronous` NORMAL or FULL), set through a SQLAlchemy
`connect` listener; everything else is DBOS's default. Workflows are plain functions started
with `DBOS.start_workflow` (DBOS's thread pool); on the 2-core reference machine that was faster
than the `async` form (`--mode async`, `DBOS.start_workflow_async`), so it is the default: the
peer gets its best showing.

Only this module imports `dbos`; it is the optional extra `pip install '.[bench]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import logging
import os
import statistics
import sys
import time
from typing import Any, Sequence

INSTALL_HINT = "not installed: pip install '.[bench]'"


def installed_version() -> str | None:
    """DBOS's version when it can be imported by this interpreter, else None (nothing imported)."""
    if importlib.util.find_spec("dbos") is None:
        return None
    try:
        return importlib.metadata.version("dbos")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _configure(directory: str, synchronous: str, threads: int | None) -> Any:
    import sqlalchemy
    from dbos import DBOS, DBOSConfig

    pragma = "FULL" if synchronous == "full" else "NORMAL"

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "connect")
    def _durability(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode = WAL")
        dbapi_conn.execute(f"PRAGMA synchronous = {pragma}")

    config: DBOSConfig = {
        "name": "flowd-bench-peer",
        "system_database_url": f"sqlite:///{os.path.join(directory, 'dbos.sqlite')}",
        "run_admin_server": False,
        "log_level": "WARNING",
        "enable_otlp": False,
    }
    if threads:
        config["max_executor_threads"] = threads
    DBOS(config=config)
    return DBOS


def _define(DBOS: Any) -> dict[str, Any]:
    """The workflows, registered before launch as DBOS requires."""

    @DBOS.step()
    def sync_step(i: int) -> int:
        return i + 1

    @DBOS.workflow()
    def sync_workflow(steps: int) -> int:
        total = 0
        for i in range(steps):
            total += sync_step(i)
        return total

    @DBOS.step()
    async def async_step(i: int) -> int:
        return i + 1

    @DBOS.workflow()
    async def async_workflow(steps: int) -> int:
        total = 0
        for i in range(steps):
            total += await async_step(i)
        return total

    return {"sync": sync_workflow, "async": async_workflow}


async def _measure_async(DBOS: Any, workflow: Any, workflows: int, steps: int,
                         chain_steps: int, repeats: int) -> dict[str, Any]:
    expected = sum(i + 1 for i in range(steps))
    t0 = time.perf_counter()
    handles = await asyncio.gather(*(DBOS.start_workflow_async(workflow, steps)
                                     for _ in range(workflows)))
    results = await asyncio.gather(*(h.get_result() for h in handles))
    elapsed = time.perf_counter() - t0
    if any(r != expected for r in results):
        raise RuntimeError("a DBOS workflow returned a wrong result")
    chain = []
    for _ in range(repeats):
        c0 = time.perf_counter()
        handle = await DBOS.start_workflow_async(workflow, chain_steps)
        await handle.get_result()
        chain.append((time.perf_counter() - c0) * 1000)
    return _result(workflows, steps, elapsed, chain_steps, chain)


def _measure_sync(DBOS: Any, workflow: Any, workflows: int, steps: int, chain_steps: int,
                  repeats: int) -> dict[str, Any]:
    expected = sum(i + 1 for i in range(steps))
    t0 = time.perf_counter()
    handles = [DBOS.start_workflow(workflow, steps) for _ in range(workflows)]
    results = [h.get_result() for h in handles]
    elapsed = time.perf_counter() - t0
    if any(r != expected for r in results):
        raise RuntimeError("a DBOS workflow returned a wrong result")
    chain = []
    for _ in range(repeats):
        c0 = time.perf_counter()
        workflow(chain_steps)
        chain.append((time.perf_counter() - c0) * 1000)
    return _result(workflows, steps, elapsed, chain_steps, chain)


def _result(workflows: int, steps: int, elapsed: float, chain_steps: int,
            chain: list[float]) -> dict[str, Any]:
    return {
        "steps": {"workflows": workflows, "steps_per_workflow": steps,
                  "seconds": round(elapsed, 3),
                  "steps_per_s": round(workflows * steps / max(elapsed, 1e-9), 1)},
        "chain": {"steps": chain_steps, "repeats": len(chain),
                  "median_ms": round(statistics.median(chain), 2),
                  "min_ms": round(min(chain), 2)},
    }


def run(directory: str, *, workflows: int, steps: int, chain_steps: int, repeats: int,
        synchronous: str, mode: str, threads: int | None = None) -> dict[str, Any]:
    DBOS = _configure(directory, synchronous, threads)
    defined = _define(DBOS)
    DBOS.launch()
    try:
        # One short warm-up workflow: the first call pays for imports and table creation.
        if mode == "async":
            result = asyncio.run(_warm_then_measure(DBOS, defined["async"], workflows, steps,
                                                    chain_steps, repeats))
        else:
            defined["sync"](2)
            result = _measure_sync(DBOS, defined["sync"], workflows, steps, chain_steps, repeats)
    finally:
        DBOS.destroy()
    return {"dbos_version": installed_version(), "mode": mode, "synchronous": synchronous,
            **result}


async def _warm_then_measure(DBOS: Any, workflow: Any, workflows: int, steps: int,
                             chain_steps: int, repeats: int) -> dict[str, Any]:
    await (await DBOS.start_workflow_async(workflow, 2)).get_result()
    return await _measure_async(DBOS, workflow, workflows, steps, chain_steps, repeats)


# ------------------------------------------------------------------ the bench's side


async def measure(directory: str, *, workflows: int, steps: int, chain_steps: int, repeats: int,
                  synchronous: str, timeout_s: float) -> dict[str, Any]:
    """Run this module in a subprocess and return its result; raises BenchError on failure.
    The subprocess is killed whatever happens."""
    from flowd.bench.server import BenchError

    log_path = os.path.join(directory, "peer.log")
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowd.bench.peer", "--dir", directory,
            "--workflows", str(workflows), "--steps", str(steps), "--chain-steps",
            str(chain_steps), "--repeats", str(repeats), "--synchronous", synchronous,
            cwd=directory, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=log)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except asyncio.TimeoutError:
            raise BenchError(f"the DBOS peer did not finish within {timeout_s:.0f} s") from None
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    if proc.returncode != 0 or "steps" not in result:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        raise BenchError(f"the DBOS peer failed (exit status {proc.returncode}): "
                         f"{result.get('error') or tail}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowd.bench.peer",
                                     description="DBOS Transact doing flowd's steps/chain work.")
    parser.add_argument("--dir", required=True, help="directory for DBOS's SQLite database")
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--chain-steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--synchronous", choices=("normal", "full"), default="normal")
    parser.add_argument("--mode", choices=("async", "sync"), default="sync")
    parser.add_argument("--threads", type=int, default=None,
                        help="DBOS max_executor_threads (default: DBOS's own)")
    args = parser.parse_args(argv)
    if installed_version() is None:
        print(json.dumps({"error": INSTALL_HINT}))
        return 3
    logging.getLogger("dbos").setLevel(logging.WARNING)
    result = run(args.dir, workflows=args.workflows, steps=args.steps,
                 chain_steps=args.chain_steps, repeats=max(1, args.repeats),
                 synchronous=args.synchronous, mode=args.mode, threads=args.threads)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
