"""The server's counters and their Prometheus text exposition (format 0.0.4).

Counters are plain ints and dicts incremented where the work happens, on the event loop (one
thread: no locks); the writer's commit-latency histogram is incremented in the writer's thread
alone and only read here, so a scrape may see a commit counted in `_count` and not yet in a
bucket — harmless for a monitoring sample. Label values are workflow ids (bounded: workflows
per project) and message channels and statuses (fixed sets).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: commits take 0.1-50 ms; a scheduler dispatches a due run within milliseconds unless
# it is overloaded or was stopped.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0)


class Histogram:
    """Cumulative buckets are computed when rendered; `observe` is a bisect and two adds."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)   # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        total, rows = 0, []
        for bound, n in zip((*map(_number, self.bounds), "+Inf"), list(self.counts)):
            total += n
            rows.append((bound, total))
        return rows


@dataclass
class Metrics:
    events_ingested: int = 0
    runs_started: dict[str, int] = field(default_factory=dict)     # by workflow id
    runs_completed: dict[str, int] = field(default_factory=dict)
    runs_failed: dict[str, int] = field(default_factory=dict)
    steps_executed: int = 0
    scheduler_lag: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS))

    def run_started(self, workflow_id: str) -> None:
        self.runs_started[workflow_id] = self.runs_started.get(workflow_id, 0) + 1

    def run_ended(self, workflow_id: str, failed: bool) -> None:
        counts = self.runs_failed if failed else self.runs_completed
        counts[workflow_id] = counts.get(workflow_id, 0) + 1


@dataclass
class StorageMetrics:
    """What the store reports: read when scraped."""

    writer_queue_depth: int
    commit_seconds: Histogram
    wal_bytes: int
    db_bytes: int
    messages: dict[tuple[str, str], int]   # (channel, status) -> count


def render(metrics: Metrics, storage: StorageMetrics | None) -> str:
    out: list[str] = []
    _family(out, "flowd_events_ingested_total", "counter", "Events stored (duplicates of a "
            "message_id not counted).", [("", metrics.events_ingested)])
    for name, counts, help in (
            ("flowd_runs_started_total", metrics.runs_started, "Runs that began executing."),
            ("flowd_runs_completed_total", metrics.runs_completed, "Runs that completed."),
            ("flowd_runs_failed_total", metrics.runs_failed, "Runs that failed.")):
        _family(out, name, "counter", help,
                [(_labels(workflow_id=k), v) for k, v in sorted(counts.items())])
    _family(out, "flowd_steps_executed_total", "counter", "Step attempts executed.",
            [("", metrics.steps_executed)])
    _histogram(out, "flowd_scheduler_lag_seconds", "How late due runs were claimed for "
               "execution (the earliest of each claimed batch).", metrics.scheduler_lag)
    if storage is not None:
        _family(out, "flowd_messages", "gauge", "Stored messages by channel and status.",
                [(_labels(channel=c, status=s), n) for (c, s), n in sorted(storage.messages.items())])
        _family(out, "flowd_writer_queue_depth", "gauge", "Units of work waiting for the "
                "writer.", [("", storage.writer_queue_depth)])
        _histogram(out, "flowd_commit_seconds", "Duration of each group-commit transaction, "
                   "BEGIN to COMMIT.", storage.commit_seconds)
        _family(out, "flowd_wal_bytes", "gauge", "Size of the write-ahead log file.",
                [("", storage.wal_bytes)])
        _family(out, "flowd_database_bytes", "gauge", "Size of the database file.",
                [("", storage.db_bytes)])
    return "".join(out)


def _family(out: list[str], name: str, kind: str, help: str,
            samples: Iterable[tuple[str, float]], suffix: str = "") -> None:
    out.append(f"# HELP {name} {help}\n# TYPE {name} {kind}\n")
    for labels, value in samples:
        out.append(f"{name}{suffix}{labels} {_number(value)}\n")


def _histogram(out: list[str], name: str, help: str, h: Histogram) -> None:
    out.append(f"# HELP {name} {help}\n# TYPE {name} histogram\n")
    for bound, total in h.cumulative():
        out.append(f'{name}_bucket{{le="{bound}"}} {total}\n')
    out.append(f"{name}_sum {_number(h.sum)}\n{name}_count {h.count}\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))
