"""Alerts, recorded: inside the unit of work that ends a run failed, bounces a message or opens
an approval, one delivery row per subscription interested in the event goes into the outbox —
so an alert exists exactly when what it reports was committed, and a crash loses neither.
Sending is `alert_delivery`'s job.

`workflow.failing` is decided here too, when a run fails (and its project subscribes to it):
among the workflow's runs that ended in the last hour (the latest FAILING_SCAN of them, so the
check stays a short index scan however busy the workflow), at least `failing_min_runs` ended and at least `failing_rate` of
them failed. A durable mark per workflow keeps it to once an hour, restarts included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from flowd.config import AlertsConfig
from flowd.ids import new_id
from flowd.store import Transaction
from flowd.store.records import (
    AlertDelivery,
    AlertEvent,
    AlertSubscription,
    Approval,
    DeliveryStatus,
    Message,
    Run,
)
from flowd.timeutil import format_ms

HOUR_MS = 3_600_000
FAILING_SCAN = 1000
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class FailingRule:
    rate: float
    min_runs: int

    @classmethod
    def of(cls, config: AlertsConfig) -> FailingRule:
        return cls(rate=config.failing_rate, min_runs=config.failing_min_runs)


class AlertRecorder:
    """Called inside units of work (the writer's thread); `on_recorded` runs on the event loop
    once a unit that recorded deliveries is durable (it wakes the deliverer)."""

    def __init__(self, rule: FailingRule, on_recorded: Callable[[], None] = lambda: None) -> None:
        self.rule = rule
        self._on_recorded = on_recorded

    def run_failed(self, tx: Transaction, run: Run, now: int) -> None:
        self.record(tx, run.project_id, AlertEvent.RUN_FAILED, {
            "run_id": run.id, "workflow_id": run.workflow_id,
            "workflow_version": run.workflow_version, "contact_id": run.contact_id,
            "error": run.error, "completed_at": format_ms(run.completed_at or now)}, now)
        self._check_failing(tx, run, now)

    def message_bounced(self, tx: Transaction, message: Message, address: str, reason: str,
                        now: int) -> None:
        self.record(tx, message.project_id, AlertEvent.MESSAGE_BOUNCED, {
            "message_id": message.id, "channel": message.channel, "address": address,
            "reason": reason, "contact_id": message.contact_id, "run_id": message.run_id,
            "workflow_id": message.workflow_id, "step_id": message.step_id}, now)

    def approval_requested(self, tx: Transaction, approval: Approval, now: int) -> None:
        # Never the approval's links: they are capabilities, for its approvers alone.
        self.record(tx, approval.project_id, AlertEvent.APPROVAL_REQUESTED, {
            "approval_id": approval.id, "run_id": approval.run_id,
            "workflow_id": approval.workflow_id, "step_id": approval.step_id,
            "contact_id": approval.contact_id, "message": approval.message,
            "approvers": list(approval.approvers),
            "expires_at": format_ms(approval.expires_at)}, now)

    def _check_failing(self, tx: Transaction, run: Run, now: int) -> None:
        subscriptions = tx.alerts.interested(run.project_id, AlertEvent.WORKFLOW_FAILING.value)
        if not subscriptions:
            return   # nobody to tell: not even the count is worth its reads
        since = now - HOUR_MS
        ended, failed = tx.alerts.recent_ends(run.workflow_id, since, FAILING_SCAN)
        if ended < self.rule.min_runs or failed < self.rule.rate * ended:
            return
        if not tx.alerts.mark_failing(run.workflow_id, now, quiet_since=since):
            return   # said within the hour already
        self.record(tx, run.project_id, AlertEvent.WORKFLOW_FAILING, {
            "workflow_id": run.workflow_id, "window": "PT1H", "runs_ended": ended,
            "runs_failed": failed, "failure_rate": round(failed / ended, 4),
            "threshold": self.rule.rate}, now, subscriptions)

    def record(self, tx: Transaction, project_id: str, event: AlertEvent,
               data: dict[str, Any], now: int,
               subscriptions: list[AlertSubscription] | None = None) -> None:
        """One pending delivery per subscription to `event` (found here unless given), due
        at once."""
        if subscriptions is None:
            subscriptions = tx.alerts.interested(project_id, event.value)
        if not subscriptions:
            return
        body = _dumps({"type": event.value, "timestamp": format_ms(now), "data": data})
        tx.alerts.enqueue([AlertDelivery(
            id=new_id("dlv", now), subscription_id=s.id, project_id=project_id,
            event_type=event.value, body=body, status=DeliveryStatus.PENDING, created_at=now,
            next_attempt_at=now) for s in subscriptions])
        tx.after_commit.append(self._on_recorded)
