"""Writing runs (and contacts) straight into a stopped server's database through the store's
verbs, for states that would take too long to reach through HTTP (a million runs waiting on a
timer, 100,000 contacts)."""

from __future__ import annotations

import time
from pathlib import Path

from flowd.ids import new_id
from flowd.store import DbSettings, SyncStore
from flowd.store.records import Run, RunStatus, TraceEntry
from flowd.waits import Wait, WaitKind

CHUNK = 20_000   # runs per transaction


def waiting_runs(db_path: Path, *, workflow_id: str, version: int, wait_step: str,
                 wait_config: dict, count: int, due_in_ms: int, synchronous: str = "normal",
                 project_id: str = "default") -> float:
    """Insert `count` runs of the workflow, each waiting at `wait_step` on a timer due
    `due_in_ms` from now, with the trace entry a real wait leaves ('waiting'). The server must
    be stopped. Returns the seconds it took."""
    t0 = time.perf_counter()
    store = SyncStore(DbSettings(path=str(db_path), synchronous=synchronous))
    try:
        now = int(time.time() * 1000)
        due = now + due_in_ms
        trigger = {"type": "api", "event": {"id": None, "name": "bench.seed", "contact_id": None,
                                            "properties": {}, "timestamp": None,
                                            "received_at": None, "message_id": None}}
        wait = Wait(WaitKind.TIMER, until=due, started_at=now, input=wait_config)
        for start in range(0, count, CHUNK):
            runs = [Run(id=new_id("run", now), project_id=project_id, workflow_id=workflow_id,
                        workflow_version=version, contact_id=None, status=RunStatus.WAITING,
                        current_step_id=wait_step, trigger=trigger, created_at=now,
                        updated_at=now, due_at=due, wait=wait, steps_executed=1, trace_len=1)
                    for _ in range(min(CHUNK, count - start))]
            with store.transaction() as tx:
                tx.runs.insert(runs)
                for run in runs:
                    tx.runs.write_trace(run.id, TraceEntry(
                        1, wait_step, "wait", "waiting", 1, 1, started_at=now,
                        outcome="waiting", input=wait_config))
        # A server that ran for a while has a WAL of at most wal_max_bytes: start like that.
        store.truncate_wal()
    finally:
        store.close()
    return time.perf_counter() - t0


def ended_runs(db_path: Path, *, workflow_id: str, version: int, step_id: str, count: int,
               ended_ms_ago: int, synchronous: str = "normal", project_id: str = "default",
               now_ms: int | None = None) -> float:
    """Insert `count` ended runs (completed, failed and cancelled in turn) of the workflow, each
    with a two-entry trace, that ended `ended_ms_ago` before now: what retention deletes. The
    server must be stopped (or not yet started). Returns the seconds it took."""
    t0 = time.perf_counter()
    store = SyncStore(DbSettings(path=str(db_path), synchronous=synchronous))
    statuses = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
    try:
        store.migrate()
        now = int(time.time() * 1000) if now_ms is None else now_ms
        ended = now - ended_ms_ago
        trigger = {"type": "api", "event": {"id": None, "name": "bench.seed", "contact_id": None,
                                            "properties": {}, "timestamp": None,
                                            "received_at": None, "message_id": None}}
        for start in range(0, count, CHUNK):
            runs = [Run(id=new_id("run", ended), project_id=project_id, workflow_id=workflow_id,
                        workflow_version=version, contact_id=f"seed-{(start + i) % 1000}",
                        status=statuses[(start + i) % 3], current_step_id=step_id,
                        trigger=trigger, created_at=ended - 1000, updated_at=ended,
                        steps_executed=2, trace_len=2, completed_at=ended)
                    for i in range(min(CHUNK, count - start))]
            with store.transaction() as tx:
                tx.runs.insert(runs)
                for run in runs:
                    for seq in (1, 2):
                        tx.runs.write_trace(run.id, TraceEntry(
                            seq, step_id, "set", "ok", 1, seq, started_at=ended - 1000,
                            finished_at=ended, outcome="ok", input={"n": seq}, output={"n": seq}))
        store.truncate_wal()
    finally:
        store.close()
    return time.perf_counter() - t0


PLANS = ("free", "pro", "team")


def contact_traits(i: int) -> dict:
    """The traits of seeded contact `i`: a plan, an age, a country, a name, a score."""
    return {"plan": PLANS[i % 3], "age": 18 + (i * 7) % 60,
            "country": ("DE", "US", "FR")[(i // 3) % 3], "first_name": f"Name{i}",
            "score": round((i * 37) % 1000 / 10, 1)}


def contacts(db_path: Path, *, count: int, synchronous: str = "normal",
             project_id: str = "default") -> float:
    """Upsert `count` contacts `c0`, `c1`, … with contact_traits(i) and an email each, in
    chunks of CHUNK per transaction. The server must be stopped. Returns the seconds it took."""
    t0 = time.perf_counter()
    store = SyncStore(DbSettings(path=str(db_path), synchronous=synchronous))
    try:
        store.migrate()
        now = int(time.time() * 1000)
        for start in range(0, count, CHUNK):
            with store.transaction() as tx:
                for i in range(start, min(count, start + CHUNK)):
                    tx.contacts.upsert(project_id, f"c{i}", {
                        "email": f"c{i}@example.com", "traits": contact_traits(i)}, now)
        store.truncate_wal()
    finally:
        store.close()
    return time.perf_counter() - t0
