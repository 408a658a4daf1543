"""Runs, their step trace, and the event waits ingest matches against, in SQLite."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from flowd.store import base
from flowd.store.records import (
    ACTIVE_STATUSES,
    EventWait,
    Page,
    Run,
    RunPreempted,
    RunStatus,
    StepCounts,
    TraceEntry,
)
from flowd.store.sqlite.paging import count_by_status, fetch_page
from flowd.waits import EventWaitSpec, Wait, WaitKind, Wake

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

_ACTIVE_SQL = "(" + ", ".join(f"'{s.value}'" for s in ACTIVE_STATUSES) + ")"
# One list (not `= 'failed' OR IN …`), so the search uses both columns of the index.
_COUNTED_SQL = "('failed', " + ", ".join(f"'{s.value}'" for s in ACTIVE_STATUSES) + ")"
_COLUMNS = ("id, project_id, workflow_id, workflow_version, contact_id, status, current_step_id, "
            "trigger, created_at, updated_at, due_at, wait, wake, vars, attempt, "
            "steps_executed, trace_len, error, exit_reason, parent_run_id, completed_at")
_PLACEHOLDERS = ",".join("?" * 21)
_CHUNK = 500   # ids per IN (...) list: bounded statement size


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _nullable(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _run(r: tuple) -> Run:
    return Run(r[0], r[1], r[2], r[3], r[4], RunStatus(r[5]), r[6], json.loads(r[7]), r[8], r[9],
               r[10], None if r[11] is None else Wait.from_record(json.loads(r[11])),
               None if r[12] is None else Wake.from_record(json.loads(r[12])),
               json.loads(r[13]), r[14], r[15], r[16], _loads(r[17]), r[18], r[19], r[20])


def _row(run: Run) -> tuple:
    return (run.id, run.project_id, run.workflow_id, run.workflow_version, run.contact_id,
            run.status.value, run.current_step_id, _dumps(run.trigger), run.created_at,
            run.updated_at, run.due_at, *_wait_columns(run), _dumps(run.vars), run.attempt,
            run.steps_executed, run.trace_len, _nullable(run.error), run.exit_reason,
            run.parent_run_id, run.completed_at)


def _wait_columns(run: Run) -> tuple[str | None, str | None]:
    return (None if run.wait is None else _dumps(run.wait.to_record()),
            None if run.wake is None else _dumps(run.wake.to_record()))


def _mutable_values(run: Run) -> tuple:
    return (run.current_step_id, run.due_at, *_wait_columns(run), _dumps(run.vars), run.attempt,
            run.steps_executed, run.trace_len, _nullable(run.error), run.exit_reason,
            run.updated_at, run.completed_at)


_MUTABLE = ", ".join(f"{column} = ?" for column in (
    "current_step_id", "due_at", "wait", "wake", "vars", "attempt", "steps_executed", "trace_len",
    "error", "exit_reason", "updated_at", "completed_at"))
_INSERT_TRACE = ("INTO run_steps (run_id, seq, step_id, type, status, outcome, branch, attempt, "
                 "visit, started_at, finished_at, input, output, error) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def _trace_row(run_id: str, entry: TraceEntry) -> tuple:
    return (run_id, entry.seq, entry.step_id, entry.type, entry.status, entry.outcome,
            entry.branch, entry.attempt, entry.visit, entry.started_at, entry.finished_at,
            _nullable(entry.input), _nullable(entry.output), _nullable(entry.error))


def _in(ids: list[str]) -> str:
    return f"({','.join('?' * len(ids))})"


class SqliteRuns(base.Runs):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def ended_by_workflow(self, project_id: str, since: int) -> list[tuple[str, str, int, int]]:
        # A range of runs_project_ended (index entries only); one name lookup per workflow.
        return self._conn.execute(
            "SELECT ended.workflow_id, COALESCE(w.name, ''), ended.n, ended.failed FROM "
            "(SELECT workflow_id, COUNT(*) AS n, SUM(status = 'failed') AS failed FROM runs "
            " WHERE project_id = ? AND completed_at >= ? GROUP BY workflow_id) AS ended "
            "LEFT JOIN workflows w ON w.id = ended.workflow_id", (project_id, since)).fetchall()

    def insert(self, runs: list[Run]) -> None:
        self._conn.executemany(f"INSERT INTO runs ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                               (_row(run) for run in runs))

    def insert_new(self, runs: list[Run]) -> list[Run]:
        # One statement per run: executemany's rowcount is the total, not which ones.
        sql = (f"INSERT INTO runs ({_COLUMNS}) VALUES ({_PLACEHOLDERS}) "
               "ON CONFLICT (id) DO NOTHING")
        return [run for run in runs if self._conn.execute(sql, _row(run)).rowcount == 1]

    def get(self, project_id: str | None, run_id: str) -> Run | None:
        if project_id is None:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?",
                                     (run_id,)).fetchone()
        else:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ? AND "
                                     "project_id = ?", (run_id, project_id)).fetchone()
        return _run(row) if row else None

    # -- claims ---------------------------------------------------------------------------

    def claimable(self, run_ids: list[str], now: int) -> list[Run]:
        found = []
        for start in range(0, len(run_ids), _CHUNK):
            chunk = run_ids[start:start + _CHUNK]
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE id IN {_in(chunk)} "
                "AND status IN ('pending', 'waiting') AND due_at <= ?", (*chunk, now)).fetchall()
            chunk_runs = [_run(row) for row in rows]
            with_trace = [run.id for run in chunk_runs if run.trace_len]
            states = self._step_states(with_trace) if with_trace else {}
            for run in chunk_runs:
                run.outputs, run.visits = states.get(run.id, ({}, {}))
                found.append(run)
        return found

    def claim(self, claims: list[base.Claim]) -> list[Run]:
        unchanged = self._unchanged(claims)
        taken = [claim for claim in claims if claim.run.id in unchanged]
        self._conn.executemany(
            f"UPDATE runs SET status = ?, {_MUTABLE} WHERE id = ?",
            ((c.run.status.value, *_mutable_values(c.run), c.run.id) for c in taken))
        self._end_waits([(c.run.id, c.ended_wait) for c in taken if c.ended_wait is not None])
        self.remove_event_waits([c.run.id for c in taken if c.ended_event_wait])
        for claim in taken:
            claim.run.stored_status = claim.run.status
        return [claim.run for claim in taken]

    def _unchanged(self, claims: list[base.Claim]) -> set[str]:
        """Ids of the claimed runs whose row is as claimable() read it (this runs under the
        write lock, so it stays so until the claim commits)."""
        read = {c.run.id: (c.read_status.value, c.read_updated_at) for c in claims}
        ids = list(read)
        unchanged: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            for run_id, status, updated_at in self._conn.execute(
                    f"SELECT id, status, updated_at FROM runs WHERE id IN {_in(chunk)}", chunk):
                if read[run_id] == (status, updated_at):
                    unchanged.add(run_id)
        return unchanged

    # -- a run's state --------------------------------------------------------------------

    def save(self, run: Run, *, expect: RunStatus) -> None:
        values = _mutable_values(run)
        if run.status is expect:
            # Most saves are a step moving on inside a running run. Naming `status` in the SET
            # list, even unchanged, makes SQLite rewrite both indexes on it (runs_status and
            # runs_workflow_status): a good part of a step's cost.
            cursor = self._conn.execute(f"UPDATE runs SET {_MUTABLE} WHERE id = ? AND status = ?",
                                        (*values, run.id, expect.value))
        else:
            cursor = self._conn.execute(
                f"UPDATE runs SET status = ?, {_MUTABLE} WHERE id = ? AND status = ?",
                (run.status.value, *values, run.id, expect.value))
        if cursor.rowcount != 1:
            raise RunPreempted(run.id)

    def end(self, run: Run, *, expect: Iterable[RunStatus], waiting: bool = True) -> bool:
        statuses = [status.value for status in expect]
        ended = self._conn.execute(
            f"UPDATE runs SET status = ?, {_MUTABLE} WHERE id = ? AND status IN "
            f"{_in(statuses)}", (run.status.value, *_mutable_values(run), run.id,
                                 *statuses)).rowcount == 1
        if ended and waiting:
            self._conn.execute("DELETE FROM event_waits WHERE run_id = ?", (run.id,))
            # A wait the run was in will never end: close its trace entry.
            self._conn.execute("UPDATE run_steps SET status = 'skipped', finished_at = ? "
                               "WHERE run_id = ? AND status = 'waiting'",
                               (run.completed_at, run.id))
        return ended

    def recover_running(self, now: int) -> int:
        return self._conn.execute("UPDATE runs SET status = 'pending', due_at = ?, updated_at = ? "
                                  "WHERE project_id IN (SELECT id FROM projects) AND "
                                  "status = 'running'", (now, now)).rowcount

    def release_paused(self, workflow_id: str, now: int) -> list[str]:
        rows = self._conn.execute("UPDATE runs SET status = 'pending', due_at = ?, updated_at = ? "
                                  "WHERE workflow_id = ? AND status = 'paused' "
                                  "RETURNING seq, id", (now, now, workflow_id)).fetchall()
        return [run_id for _, run_id in sorted(rows)]

    def resume(self, run_id: str, now: int) -> bool:
        return self._conn.execute("UPDATE runs SET status = 'pending', due_at = ?, updated_at = ? "
                                  "WHERE id = ? AND status = 'paused'",
                                  (now, now, run_id)).rowcount == 1

    def wake(self, run_id: str, wake: Wake, now: int) -> bool:
        woke = self._conn.execute(
            "UPDATE runs SET status = 'pending', due_at = ?, wake = ?, updated_at = ? "
            "WHERE id = ? AND status IN ('waiting', 'paused') AND wake IS NULL",
            (now, _dumps(wake.to_record()), now, run_id)).rowcount == 1
        if woke:
            self._conn.execute("DELETE FROM event_waits WHERE run_id = ?", (run_id,))
        return woke

    def wake_for(self, run_id: str, kind: WaitKind, ref: str, wake: Wake, now: int) -> bool:
        return self._conn.execute(
            "UPDATE runs SET status = 'pending', due_at = ?, wake = ?, updated_at = ? "
            "WHERE id = ? AND status IN ('waiting', 'paused') AND wake IS NULL "
            "AND json_extract(wait, '$.kind') = ? AND json_extract(wait, '$.ref') = ?",
            (now, _dumps(wake.to_record()), now, run_id, kind.value, ref)).rowcount == 1

    def children(self, run_id: str, *, active_only: bool = False,
                 limit: int = 1000) -> list[Run]:
        active = " AND status NOT IN ('completed', 'failed', 'cancelled')" if active_only else ""
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE parent_run_id = ?{active} "
                                  "ORDER BY seq LIMIT ?", (run_id, limit)).fetchall()
        return [_run(row) for row in rows]

    # -- the trace ------------------------------------------------------------------------

    def write_trace(self, run_id: str, entry: TraceEntry, *, replace: bool = False) -> None:
        if replace:
            self._end_waits([(run_id, entry)])
        else:
            self._conn.execute(f"INSERT {_INSERT_TRACE}", _trace_row(run_id, entry))

    def _end_waits(self, entries: list[tuple[str, TraceEntry]]) -> None:
        """Waiting trace entries end: each (run id, entry) overwrites the entry of its seq."""
        if not entries:
            return
        # An UPDATE of the columns that change costs less than INSERT OR REPLACE, which deletes
        # the row and inserts it again (checking the run it refers to).
        cursor = self._conn.executemany(
            "UPDATE run_steps SET status = ?, outcome = ?, branch = ?, finished_at = ?, "
            "output = ?, error = ? WHERE run_id = ? AND seq = ?",
            ((entry.status, entry.outcome, entry.branch, entry.finished_at,
              _nullable(entry.output), _nullable(entry.error), run_id, entry.seq)
             for run_id, entry in entries))
        if cursor.rowcount != len(entries):  # an entry was missing: write them whole
            self._conn.executemany(f"INSERT OR REPLACE {_INSERT_TRACE}",
                                   (_trace_row(run_id, entry) for run_id, entry in entries))

    def step_state(self, run_id: str) -> tuple[dict[str, Any], dict[str, int]]:
        return self._step_states([run_id]).get(run_id, ({}, {}))

    def _step_states(self, run_ids: list[str]
                     ) -> dict[str, tuple[dict[str, Any], dict[str, int]]]:
        """step_state() of many runs in one query."""
        states: dict[str, tuple[dict[str, Any], dict[str, int]]] = {}
        rows = self._conn.execute(
            f"SELECT run_id, step_id, visit, status, output FROM run_steps "
            f"WHERE run_id IN {_in(run_ids)} ORDER BY run_id, seq", run_ids)
        for run_id, step_id, visit, status, output in rows:
            outputs, visits = states.setdefault(run_id, ({}, {}))
            visits[step_id] = max(visits.get(step_id, 0), visit)
            if status != "waiting":
                outputs[step_id] = _loads(output)
        return states

    def trace(self, run_id: str, limit: int = 20_000) -> list[TraceEntry]:
        rows = self._conn.execute(
            "SELECT seq, step_id, type, status, attempt, visit, started_at, finished_at, outcome, "
            "branch, input, output, error FROM run_steps WHERE run_id = ? ORDER BY seq LIMIT ?",
            (run_id, limit)).fetchall()
        return [TraceEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                           _loads(r[10]), _loads(r[11]), _loads(r[12])) for r in rows]

    # -- finding runs ---------------------------------------------------------------------

    def page(self, project_id: str, *, workflow_id: str | None, status: str | None,
             contact_id: str | None, before: int | None, limit: int) -> Page:
        where, args = ["project_id = ?"], [project_id]
        for column, value in (("workflow_id", workflow_id), ("status", status),
                              ("contact_id", contact_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        return fetch_page(self._conn, table="runs", columns=_COLUMNS, where=where, args=args,
                          before=before, limit=limit, convert=_run)

    def due(self, until: int, limit: int) -> list[tuple[int, str]]:
        return self._conn.execute("SELECT due_at, id FROM runs WHERE due_at <= ? ORDER BY due_at "
                                  "LIMIT ?", (until, limit)).fetchall()

    def blocking_entry(self, project_id: str, workflow_id: str, contact_id: str, *,
                       ever: bool) -> str | None:
        if ever:
            sql = ("SELECT id FROM runs WHERE project_id = ? AND contact_id = ? AND "
                   "workflow_id = ? ORDER BY seq DESC LIMIT 1")
        else:
            sql = (f"SELECT id FROM runs WHERE project_id = ? AND contact_id = ? AND "
                   f"workflow_id = ? AND status IN {_ACTIVE_SQL} LIMIT 1")
        row = self._conn.execute(sql, (project_id, contact_id, workflow_id)).fetchone()
        return row[0] if row else None

    def active_ids(self, project_id: str, *, contact_id: str | None = None,
                   workflow_ids: Iterable[str] | None = None, limit: int | None = None
                   ) -> list[str]:
        where, args = [f"project_id = ? AND status IN {_ACTIVE_SQL}"], [project_id]
        if contact_id is not None:
            where.append("contact_id = ?")
            args.append(contact_id)
        if workflow_ids is not None:
            ids = list(workflow_ids)
            where.append(f"workflow_id IN {_in(ids)}")
            args += ids
        sql = f"SELECT id FROM runs WHERE {' AND '.join(where)}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [row[0] for row in self._conn.execute(sql, args)]

    def status_counts(self, project_id: str) -> dict[str, int]:
        return count_by_status(self._conn, "runs", project_id, (s.value for s in RunStatus))

    def workflow_counts(self, workflow_ids: list[str]) -> dict[str, dict[str, int]]:
        counts = {workflow_id: {"active": 0, "failed": 0} for workflow_id in workflow_ids}
        if not counts:
            return counts
        # One pass over the (workflow_id, status) index: only the counted statuses are read.
        marks = ", ".join("?" * len(counts))
        rows = self._conn.execute(
            f"SELECT workflow_id, status = 'failed', COUNT(*) FROM runs "
            f"WHERE workflow_id IN ({marks}) AND status IN {_COUNTED_SQL} "
            f"GROUP BY workflow_id, status", list(counts)).fetchall()
        for workflow_id, failed, count in rows:
            counts[workflow_id]["failed" if failed else "active"] += count
        return counts

    # -- event waits ----------------------------------------------------------------------

    def add_event_wait(self, run: Run, spec: EventWaitSpec) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO event_waits (run_id, project_id, contact_id, event_name, "
            "wildcard, filter, since) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run.id, run.project_id, run.contact_id, spec.pattern, int("*" in spec.pattern),
             _nullable(spec.filter), spec.since))

    def remove_event_waits(self, run_ids: list[str]) -> None:
        self._conn.executemany("DELETE FROM event_waits WHERE run_id = ?",
                               ((run_id,) for run_id in run_ids))

    def waited_event_names(self) -> list[tuple[str, str]]:
        return self._conn.execute("SELECT DISTINCT project_id, event_name FROM event_waits"
                                  ).fetchall()

    def event_waits_for(self, project_id: str, name: str,
                        contact_id: str | None) -> list[EventWait]:
        # Four index searches rather than one OR, which would read every wait for the name.
        select = ("SELECT run_id, event_name, filter, since FROM event_waits "
                  "WHERE project_id = ? AND ")
        rows = self._conn.execute(
            f"{select} event_name = ? AND contact_id = ? UNION ALL "
            f"{select} event_name = ? AND contact_id IS NULL UNION ALL "
            f"{select} wildcard = 1 AND contact_id = ? UNION ALL "
            f"{select} wildcard = 1 AND contact_id IS NULL",
            (project_id, name, contact_id, project_id, name, project_id, contact_id,
             project_id)).fetchall()
        return [EventWait(r[0], EventWaitSpec(r[1], _loads(r[2]), r[3])) for r in rows]

    # -- the export -----------------------------------------------------------------------

    def export_bounds(self, project_id: str, workflow_id: str, *,
                      statuses: list[str] | None, run_id: str | None) -> tuple[int, int | None]:
        where, args = _export_filter(project_id, workflow_id, statuses, run_id)
        # One statement: the count and the bound come from the same snapshot.
        count, newest = self._conn.execute(
            f"SELECT COUNT(*), MAX(seq) FROM runs WHERE {where}", args).fetchone()
        return count, None if newest is None else newest + 1

    def export_page(self, project_id: str, workflow_id: str, *, statuses: list[str] | None,
                    run_id: str | None, before: int, limit: int, max_steps: int,
                    trace_limit: int = 20_000) -> Page:
        where, args = _export_filter(project_id, workflow_id, statuses, run_id)
        rows = self._conn.execute(
            f"SELECT {_COLUMNS}, seq FROM runs WHERE {where} AND seq < ? "
            "ORDER BY seq DESC LIMIT ?", (*args, before, limit + 1)).fetchall()
        runs: list[Run] = []
        steps = 0
        for row in rows[:limit]:
            runs.append(_run(row))
            steps += min(runs[-1].trace_len, trace_limit)
            if steps >= max_steps:
                break
        more = len(rows) > len(runs)
        traces = self._traces([run.id for run in runs if run.trace_len], trace_limit)
        return Page([(run, traces.get(run.id, [])) for run in runs],
                    rows[len(runs) - 1][-1] if more else None)

    def _traces(self, run_ids: list[str], limit: int) -> dict[str, list[TraceEntry]]:
        """trace() of many runs (at most _CHUNK) in one query."""
        traces: dict[str, list[TraceEntry]] = {}
        if not run_ids:
            return traces
        rows = self._conn.execute(
            f"SELECT run_id, {_TRACE_COLUMNS} FROM run_steps WHERE run_id IN {_in(run_ids)} "
            "ORDER BY run_id, seq", run_ids)
        for row in rows:
            trace = traces.setdefault(row[0], [])
            if len(trace) < limit:   # trace()'s LIMIT, per run
                trace.append(_entry(row[1:]))
        return traces

    # -- a version's funnel, and moving runs between versions -----------------------------

    def step_counts(self, workflow_id: str, version: int) -> StepCounts:
        # A version's runs come from runs_workflow_version; each run's trace from the
        # run_steps primary key (run_id, seq). The columns read (step_id, status, branch)
        # come before the JSON ones in a row, so large inputs and outputs are not read.
        counts = StepCounts(waiting=self.waiting_at(workflow_id, version))
        version_runs = ("SELECT id FROM runs WHERE workflow_id = ? AND workflow_version = ?")
        for step_id, n in self._conn.execute(
                f"SELECT step_id, COUNT(DISTINCT run_id) FROM run_steps "
                f"WHERE run_id IN ({version_runs}) GROUP BY step_id", (workflow_id, version)):
            counts.entered[step_id] = n
        for step_id, label, n in self._conn.execute(
                f"SELECT step_id, COALESCE(branch, 'default'), COUNT(*) FROM run_steps "
                f"WHERE run_id IN ({version_runs}) AND (status = 'ok' OR branch IS NOT NULL) "
                "GROUP BY step_id, 2", (workflow_id, version)):
            counts.branches.setdefault(step_id, {})[label] = n
        counts.workflow_runs = dict.fromkeys((s.value for s in RunStatus), 0)
        counts.version_runs = dict(counts.workflow_runs)
        for run_version, status, n in self._conn.execute(
                "SELECT workflow_version, status, COUNT(*) FROM runs WHERE workflow_id = ? "
                "GROUP BY workflow_version, status", (workflow_id,)):
            counts.workflow_runs[status] += n
            if run_version == version:
                counts.version_runs[status] += n
        return counts

    def waiting_at(self, workflow_id: str, version: int) -> dict[str, int]:
        return dict(self._conn.execute(
            "SELECT current_step_id, COUNT(*) FROM runs WHERE workflow_id = ? AND "
            "workflow_version = ? AND status = 'waiting' GROUP BY current_step_id",
            (workflow_id, version)).fetchall())

    def move_waiting(self, workflow_id: str, from_version: int, to_version: int,
                     step_map: dict[str, str], limit: int, now: int) -> int:
        if not step_map:
            return 0
        steps = list(step_map)
        rows = self._conn.execute(
            f"SELECT id, current_step_id FROM runs WHERE workflow_id = ? AND "
            f"workflow_version = ? AND status = 'waiting' AND current_step_id IN {_in(steps)} "
            "ORDER BY seq LIMIT ?", (workflow_id, from_version, *steps, limit)).fetchall()
        # Under the write lock: the rows read are as they are until this unit commits.
        self._conn.executemany(
            "UPDATE runs SET workflow_version = ?, current_step_id = ?, updated_at = ? "
            "WHERE id = ?", ((to_version, step_map[step], now, run_id) for run_id, step in rows))
        self._conn.executemany(
            "UPDATE run_steps SET step_id = ? WHERE run_id = ? AND status = 'waiting'",
            ((step_map[step], run_id) for run_id, step in rows))
        return len(rows)


# trace()'s columns and record, for the export's traces of many runs at once.
_TRACE_COLUMNS = ("seq, step_id, type, status, attempt, visit, started_at, finished_at, outcome, "
                  "branch, input, output, error")


def _entry(r: tuple) -> TraceEntry:
    return TraceEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                      _loads(r[10]), _loads(r[11]), _loads(r[12]))


def _export_filter(project_id: str, workflow_id: str, statuses: list[str] | None,
                   run_id: str | None) -> tuple[str, list[Any]]:
    where, args = ["project_id = ? AND workflow_id = ?"], [project_id, workflow_id]
    if statuses:
        where.append(f"status IN {_in(statuses)}")
        args += statuses
    if run_id is not None:
        where.append("id = ?")
        args.append(run_id)
    return " AND ".join(where), args
