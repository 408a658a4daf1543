"""Runs, their step trace, and the event waits that ingest matches against."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable

from flowd.store.paging import count_by_status, fetch_page
from flowd.store.records import Page
from flowd.timeutil import format_ms

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class RunStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = ("pending", "running", "waiting", "paused")
_ACTIVE_SQL = "('pending', 'running', 'waiting', 'paused')"


class RunPreempted(Exception):
    """The run changed under the engine (cancelled, exited, deleted): its step is not recorded."""


@dataclass
class Run:
    id: str
    project_id: str
    workflow_id: str
    workflow_version: int
    contact_id: str | None
    status: RunStatus
    current_step_id: str | None
    trigger: dict[str, Any]
    created_at: int
    updated_at: int
    due_at: int | None = None
    wait: dict[str, Any] | None = None
    wake: dict[str, Any] | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    steps_executed: int = 0
    trace_len: int = 0
    error: dict[str, Any] | None = None
    exit_reason: str | None = None
    parent_run_id: str | None = None
    completed_at: int | None = None
    # Derived from the trace (see step_state), kept in memory while the engine drives the run:
    # writing them with every step would rewrite a growing blob per step.
    outputs: dict[str, Any] = field(default_factory=dict)   # step id -> latest output
    visits: dict[str, int] = field(default_factory=dict)    # step id -> times entered
    # The status the stored row has, which the next save expects (None: as `status`).
    stored_status: RunStatus | None = None

    def to_json(self) -> dict[str, Any]:
        wait = None
        if self.wait is not None:
            wait = {"kind": self.wait["kind"], "until": format_ms(self.wait.get("until"))}
            if self.wait.get("event") is not None:
                wait["event"] = self.wait["event"]
            if self.wait.get("retry"):
                wait["retry"] = True
        return {"id": self.id, "workflow_id": self.workflow_id,
                "workflow_version": self.workflow_version, "contact_id": self.contact_id,
                "status": self.status.value, "current_step_id": self.current_step_id,
                "wait": wait, "trigger": self.trigger, "vars": self.vars, "error": self.error,
                "exit_reason": self.exit_reason, "parent_run_id": self.parent_run_id,
                "created_at": format_ms(self.created_at), "updated_at": format_ms(self.updated_at),
                "completed_at": format_ms(self.completed_at)}


@dataclass
class TraceEntry:
    seq: int
    step_id: str
    type: str
    status: str              # ok | failed | skipped | waiting
    attempt: int
    visit: int
    started_at: int
    finished_at: int | None = None
    outcome: str | None = None
    branch: str | None = None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        duration = None if self.finished_at is None else self.finished_at - self.started_at
        return {"seq": self.seq, "step_id": self.step_id, "type": self.type, "status": self.status,
                "outcome": self.outcome, "branch": self.branch, "attempt": self.attempt,
                "started_at": format_ms(self.started_at), "finished_at": format_ms(self.finished_at),
                "duration_ms": duration, "input": self.input, "output": self.output,
                "error": self.error}


_COLUMNS = ("id, project_id, workflow_id, workflow_version, contact_id, status, current_step_id, "
            "trigger, created_at, updated_at, due_at, wait, wake, vars, attempt, "
            "steps_executed, trace_len, error, exit_reason, parent_run_id, completed_at")
_PLACEHOLDERS = ",".join("?" * 21)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _run(r: tuple) -> Run:
    return Run(r[0], r[1], r[2], r[3], r[4], RunStatus(r[5]), r[6], json.loads(r[7]), r[8], r[9],
               r[10], _loads(r[11]), _loads(r[12]), json.loads(r[13]), r[14], r[15], r[16],
               _loads(r[17]), r[18], r[19], r[20])


def _row(run: Run) -> tuple:
    return (run.id, run.project_id, run.workflow_id, run.workflow_version, run.contact_id,
            run.status.value, run.current_step_id, _dumps(run.trigger), run.created_at,
            run.updated_at, run.due_at, _nullable(run.wait), _nullable(run.wake),
            _dumps(run.vars), run.attempt, run.steps_executed, run.trace_len, _nullable(run.error), run.exit_reason,
            run.parent_run_id, run.completed_at)


def _nullable(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def insert_run(conn: sqlite3.Connection, run: Run) -> None:
    conn.execute(f"INSERT INTO runs ({_COLUMNS}) VALUES ({_PLACEHOLDERS})", _row(run))


def insert_runs(conn: sqlite3.Connection, runs: Iterable[Run]) -> None:
    conn.executemany(f"INSERT INTO runs ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                     (_row(run) for run in runs))


def get_run(conn: sqlite3.Connection, project_id: str | None, run_id: str) -> Run | None:
    if project_id is None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    else:
        row = conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ? AND project_id = ?",
                           (run_id, project_id)).fetchone()
    return _run(row) if row else None


def claimable(conn: sqlite3.Connection, run_ids: list[str], now: int) -> list[Run]:
    """The runs among `run_ids` that are due and not taken (pending or waiting), each with its
    outputs and visits, ready for the engine. Call inside the write transaction that then
    claims them with save_runs(), so nothing can take them in between."""
    found = []
    for start in range(0, len(run_ids), 500):  # bounded statement size
        chunk = run_ids[start:start + 500]
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM runs WHERE id IN ({','.join('?' * len(chunk))}) "
            f"AND status IN ('pending', 'waiting') AND due_at <= ?", (*chunk, now)).fetchall()
        chunk_runs = [_run(row) for row in rows]
        with_trace = [run.id for run in chunk_runs if run.trace_len]
        states = _step_states(conn, with_trace) if with_trace else {}
        for run in chunk_runs:
            run.outputs, run.visits = states.get(run.id, ({}, {}))
            found.append(run)
    return found


def save_runs(conn: sqlite3.Connection, runs: list[Run], expect: list[RunStatus]) -> None:
    """save_run() of many runs in one statement; RunPreempted (for the unit as a whole) when
    any stored row is no longer in its expected status."""
    cursor = conn.executemany(
        f"UPDATE runs SET status = ?, {_MUTABLE} WHERE id = ? AND status = ?",
        ((run.status.value, *_mutable_values(run), run.id, expected.value)
         for run, expected in zip(runs, expect)))
    if cursor.rowcount != len(runs):
        raise RunPreempted(f"{len(runs) - cursor.rowcount} of {len(runs)} runs")


def save_run(conn: sqlite3.Connection, run: Run, *, expect: RunStatus) -> None:
    """Write the run's mutable state; raises RunPreempted if the stored row is no longer in
    `expect` (someone cancelled or ended it meanwhile)."""
    values = _mutable_values(run)
    if run.status is expect:
        # Most saves are a step moving on inside a running run. Naming `status` in the SET
        # list, even unchanged, makes SQLite rewrite both indexes on it (runs_status and
        # runs_workflow_status): a good part of a step's cost.
        cursor = conn.execute(f"UPDATE runs SET {_MUTABLE} WHERE id = ? AND status = ?",
                              (*values, run.id, expect.value))
    else:
        cursor = conn.execute(f"UPDATE runs SET status = ?, {_MUTABLE} WHERE id = ? AND status = ?",
                              (run.status.value, *values, run.id, expect.value))
    if cursor.rowcount != 1:
        raise RunPreempted(run.id)


def _mutable_values(run: Run) -> tuple:
    return (run.current_step_id, run.due_at, _nullable(run.wait), _nullable(run.wake),
            _dumps(run.vars), run.attempt, run.steps_executed, run.trace_len,
            _nullable(run.error), run.exit_reason, run.updated_at, run.completed_at)


_MUTABLE = ", ".join(f"{column} = ?" for column in (
    "current_step_id", "due_at", "wait", "wake", "vars", "attempt", "steps_executed", "trace_len",
    "error", "exit_reason", "updated_at", "completed_at"))


_INSERT_TRACE = ("INTO run_steps (run_id, seq, step_id, type, status, outcome, branch, attempt, "
                 "visit, started_at, finished_at, input, output, error) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def write_trace(conn: sqlite3.Connection, run_id: str, entry: TraceEntry, *,
                replace: bool = False) -> None:
    """Insert a trace entry; `replace`: it ends the `waiting` entry with the same seq."""
    if replace:
        end_waits(conn, [(run_id, entry)])
    else:
        conn.execute(f"INSERT {_INSERT_TRACE}", _trace_row(run_id, entry))


def end_waits(conn: sqlite3.Connection, entries: list[tuple[str, TraceEntry]]) -> None:
    """Waiting trace entries end: each (run id, entry) overwrites the entry of its seq."""
    # An UPDATE of the columns that change costs less than INSERT OR REPLACE, which deletes
    # the row and inserts it again (checking the run it refers to).
    cursor = conn.executemany(
        "UPDATE run_steps SET status = ?, outcome = ?, branch = ?, finished_at = ?, output = ?, "
        "error = ? WHERE run_id = ? AND seq = ?",
        ((entry.status, entry.outcome, entry.branch, entry.finished_at, _nullable(entry.output),
          _nullable(entry.error), run_id, entry.seq) for run_id, entry in entries))
    if cursor.rowcount != len(entries):  # an entry was missing: write them whole
        conn.executemany(f"INSERT OR REPLACE {_INSERT_TRACE}",
                         (_trace_row(run_id, entry) for run_id, entry in entries))


def _trace_row(run_id: str, entry: TraceEntry) -> tuple:
    return (run_id, entry.seq, entry.step_id, entry.type, entry.status, entry.outcome,
            entry.branch, entry.attempt, entry.visit, entry.started_at, entry.finished_at,
            _nullable(entry.input), _nullable(entry.output), _nullable(entry.error))


def step_state(conn: sqlite3.Connection, run_id: str) -> tuple[dict[str, Any], dict[str, int]]:
    """(outputs, visits) of a run, rebuilt from its trace: each step's latest output, and how
    many times each step was entered."""
    return _step_states(conn, [run_id]).get(run_id, ({}, {}))


def _step_states(conn: sqlite3.Connection, run_ids: list[str]
                 ) -> dict[str, tuple[dict[str, Any], dict[str, int]]]:
    """step_state() of many runs in one query."""
    states: dict[str, tuple[dict[str, Any], dict[str, int]]] = {}
    rows = conn.execute(
        f"SELECT run_id, step_id, visit, status, output FROM run_steps "
        f"WHERE run_id IN ({','.join('?' * len(run_ids))}) ORDER BY run_id, seq", run_ids)
    for run_id, step_id, visit, status, output in rows:
        outputs, visits = states.setdefault(run_id, ({}, {}))
        visits[step_id] = max(visits.get(step_id, 0), visit)
        if status != "waiting":
            outputs[step_id] = _loads(output)
    return states


def trace(conn: sqlite3.Connection, run_id: str, limit: int = 20_000) -> list[TraceEntry]:
    rows = conn.execute(
        "SELECT seq, step_id, type, status, attempt, visit, started_at, finished_at, outcome, "
        "branch, input, output, error FROM run_steps WHERE run_id = ? ORDER BY seq LIMIT ?",
        (run_id, limit)).fetchall()
    return [TraceEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], _loads(r[10]),
                       _loads(r[11]), _loads(r[12])) for r in rows]


def list_runs(conn: sqlite3.Connection, project_id: str, *, workflow_id: str | None,
              status: str | None, contact_id: str | None, before: int | None,
              limit: int) -> Page:
    where, args = ["project_id = ?"], [project_id]
    for column, value in (("workflow_id", workflow_id), ("status", status),
                          ("contact_id", contact_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    return fetch_page(conn, table="runs", columns=_COLUMNS, where=where, args=args, before=before,
                      limit=limit, convert=_run)


def due_runs(conn: sqlite3.Connection, until: int, limit: int) -> list[tuple[int, str]]:
    """(due_at, id) of runs due by `until`, earliest first."""
    return conn.execute("SELECT due_at, id FROM runs WHERE due_at <= ? ORDER BY due_at LIMIT ?",
                        (until, limit)).fetchall()


def recover_running(conn: sqlite3.Connection, now: int) -> int:
    """At start: runs a crash left `running` become due again, to go through the claim path."""
    return conn.execute("UPDATE runs SET status = 'pending', due_at = ?, updated_at = ? "
                        "WHERE project_id IN (SELECT id FROM projects) AND status = 'running'",
                        (now, now)).rowcount


def active_run_id(conn: sqlite3.Connection, project_id: str, workflow_id: str,
                  contact_id: str) -> str | None:
    row = conn.execute(f"SELECT id FROM runs WHERE project_id = ? AND contact_id = ? AND "
                       f"workflow_id = ? AND status IN {_ACTIVE_SQL} LIMIT 1",
                       (project_id, contact_id, workflow_id)).fetchone()
    return row[0] if row else None


def latest_run_id(conn: sqlite3.Connection, project_id: str, workflow_id: str,
                  contact_id: str) -> str | None:
    row = conn.execute("SELECT id FROM runs WHERE project_id = ? AND contact_id = ? AND "
                       "workflow_id = ? ORDER BY seq DESC LIMIT 1",
                       (project_id, contact_id, workflow_id)).fetchone()
    return row[0] if row else None


def active_runs_of(conn: sqlite3.Connection, project_id: str, contact_id: str,
                   workflow_ids: Iterable[str]) -> list[str]:
    ids = list(workflow_ids)
    return [r[0] for r in conn.execute(
        f"SELECT id FROM runs WHERE project_id = ? AND contact_id = ? AND workflow_id IN "
        f"({','.join('?' * len(ids))}) AND status IN {_ACTIVE_SQL}", (project_id, contact_id, *ids))]


def active_runs_of_contact(conn: sqlite3.Connection, project_id: str, contact_id: str) -> list[str]:
    return [r[0] for r in conn.execute(
        f"SELECT id FROM runs WHERE project_id = ? AND contact_id = ? AND status IN {_ACTIVE_SQL}",
        (project_id, contact_id))]


def finish(conn: sqlite3.Connection, run_id: str, status: RunStatus, now: int, *,
           exit_reason: str | None = None) -> bool:
    """End an active run from outside the engine (cancel, exit_on). False if it was not active."""
    changed = conn.execute(
        f"UPDATE runs SET status = ?, due_at = NULL, wait = NULL, wake = NULL, exit_reason = ?, "
        f"completed_at = ?, updated_at = ? WHERE id = ? AND status IN {_ACTIVE_SQL}",
        (status.value, exit_reason, now, now, run_id)).rowcount == 1
    if changed:
        conn.execute("DELETE FROM event_waits WHERE run_id = ?", (run_id,))
        # A wait the run was in will never end: close its trace entry.
        conn.execute("UPDATE run_steps SET status = 'skipped', finished_at = ? "
                     "WHERE run_id = ? AND status = 'waiting'", (now, run_id))
    return changed


def active_run_ids(conn: sqlite3.Connection, workflow_id: str, limit: int) -> list[str]:
    return [r[0] for r in conn.execute(
        f"SELECT id FROM runs WHERE workflow_id = ? AND status IN {_ACTIVE_SQL} LIMIT ?",
        (workflow_id, limit))]


def release_paused(conn: sqlite3.Connection, workflow_id: str, now: int) -> list[str]:
    """Paused runs of a workflow become due now; returns their ids, oldest first."""
    rows = conn.execute("UPDATE runs SET status = 'pending', due_at = ?, updated_at = ? "
                        "WHERE workflow_id = ? AND status = 'paused' RETURNING seq, id",
                        (now, now, workflow_id)).fetchall()
    return [run_id for _, run_id in sorted(rows)]


def resume_run(conn: sqlite3.Connection, run_id: str, now: int) -> bool:
    return conn.execute("UPDATE runs SET status = 'pending', due_at = ?, updated_at = ? "
                        "WHERE id = ? AND status = 'paused'", (now, now, run_id)).rowcount == 1


def wake(conn: sqlite3.Connection, run_id: str, reason: dict[str, Any], now: int) -> bool:
    """A waiting run's wait ends (an event matched): due now, with the reason recorded."""
    woke = conn.execute("UPDATE runs SET status = 'pending', due_at = ?, wake = ?, updated_at = ? "
                        "WHERE id = ? AND status IN ('waiting', 'paused') AND wake IS NULL",
                        (now, _dumps(reason), now, run_id)).rowcount == 1
    if woke:
        conn.execute("DELETE FROM event_waits WHERE run_id = ?", (run_id,))
    return woke


def add_event_wait(conn: sqlite3.Connection, run: Run, pattern: str, filter_: Any,
                   since: int) -> None:
    conn.execute("INSERT OR REPLACE INTO event_waits (run_id, project_id, contact_id, event_name, "
                 "wildcard, filter, since) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (run.id, run.project_id, run.contact_id, pattern, int("*" in pattern),
                  _nullable(filter_), since))


def waited_event_names(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT DISTINCT project_id, event_name FROM event_waits").fetchall()


def remove_event_wait(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM event_waits WHERE run_id = ?", (run_id,))


def remove_event_waits(conn: sqlite3.Connection, run_ids: list[str]) -> None:
    conn.executemany("DELETE FROM event_waits WHERE run_id = ?", ((run_id,) for run_id in run_ids))


@dataclass(frozen=True)
class EventWait:
    run_id: str
    pattern: str
    filter: Any
    since: int


def event_waits_for(conn: sqlite3.Connection, project_id: str, name: str,
                    contact_id: str | None) -> list[EventWait]:
    """Waits an event named `name` of `contact_id` may end: the contact's own, and contact-less
    runs' waits (which match by filter alone)."""
    # Four index searches rather than one OR, which would read every wait for the name.
    select = "SELECT run_id, event_name, filter, since FROM event_waits WHERE project_id = ? AND "
    rows = conn.execute(
        f"{select} event_name = ? AND contact_id = ? UNION ALL "
        f"{select} event_name = ? AND contact_id IS NULL UNION ALL "
        f"{select} wildcard = 1 AND contact_id = ? UNION ALL "
        f"{select} wildcard = 1 AND contact_id IS NULL",
        (project_id, name, contact_id, project_id, name, project_id, contact_id,
         project_id)).fetchall()
    return [EventWait(r[0], r[1], _loads(r[2]), r[3]) for r in rows]


def status_counts(conn: sqlite3.Connection, project_id: str) -> dict[str, int]:
    return count_by_status(conn, "runs", project_id, (s.value for s in RunStatus))
