"""Alert webhooks in SQLite: subscriptions, the outbox of deliveries, and when each workflow
was last said to be failing."""

from __future__ import annotations

import json
import sqlite3

from flowd.store import base
from flowd.store.records import (
    AlertDelivery,
    AlertSubscription,
    DeliveryStatus,
    DueDelivery,
    Page,
)
from flowd.store.sqlite.paging import fetch_page

_SUBSCRIPTION = "id, project_id, url, events, secret, created_at"
_DELIVERY = ("id, subscription_id, project_id, event_type, body, status, created_at, "
             "next_attempt_at, attempts, last_status_code, last_error, delivered_at")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _subscription(r: tuple) -> AlertSubscription:
    return AlertSubscription(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5])


def _delivery(r: tuple) -> AlertDelivery:
    return AlertDelivery(r[0], r[1], r[2], r[3], r[4], DeliveryStatus(r[5]), r[6], r[7], r[8],
                         r[9], r[10], r[11])


class SqliteAlerts(base.Alerts):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def create(self, s: AlertSubscription) -> None:
        self._conn.execute(f"INSERT INTO alert_subscriptions ({_SUBSCRIPTION}) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (s.id, s.project_id, s.url, _dumps(s.events), s.secret, s.created_at))

    def count(self, project_id: str) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM alert_subscriptions WHERE "
                                  "project_id = ?", (project_id,)).fetchone()[0]

    def get(self, project_id: str, subscription_id: str) -> AlertSubscription | None:
        row = self._conn.execute(f"SELECT {_SUBSCRIPTION} FROM alert_subscriptions WHERE "
                                 "id = ? AND project_id = ?",
                                 (subscription_id, project_id)).fetchone()
        return _subscription(row) if row else None

    def page(self, project_id: str, *, before: int | None, limit: int) -> Page:
        return fetch_page(self._conn, table="alert_subscriptions", columns=_SUBSCRIPTION,
                          where=["project_id = ?"], args=[project_id], before=before,
                          limit=limit, convert=_subscription)

    def delete(self, project_id: str, subscription_id: str) -> bool:
        # Its deliveries go with it (ON DELETE CASCADE): a pending one is never sent.
        return self._conn.execute("DELETE FROM alert_subscriptions WHERE id = ? AND "
                                  "project_id = ?", (subscription_id, project_id)).rowcount > 0

    def interested(self, project_id: str, event_type: str) -> list[AlertSubscription]:
        # A project has at most a few dozen subscriptions: filtering their JSON lists here
        # costs less than a table of (subscription, event) pairs to keep in step.
        rows = self._conn.execute(f"SELECT {_SUBSCRIPTION} FROM alert_subscriptions WHERE "
                                  "project_id = ? ORDER BY seq", (project_id,)).fetchall()
        found = [_subscription(row) for row in rows]
        return [s for s in found if event_type in s.events]

    def enqueue(self, deliveries: list[AlertDelivery]) -> None:
        self._conn.executemany(
            f"INSERT INTO alert_deliveries ({_DELIVERY}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(d.id, d.subscription_id, d.project_id, d.event_type, d.body, d.status.value,
              d.created_at, d.next_attempt_at, d.attempts, d.last_status_code, d.last_error,
              d.delivered_at) for d in deliveries])

    def due(self, now: int, limit: int) -> list[DueDelivery]:
        columns = ", ".join(f"d.{c.strip()}" for c in _DELIVERY.split(","))
        rows = self._conn.execute(
            f"SELECT {columns}, s.url, s.secret FROM alert_deliveries d "
            "JOIN alert_subscriptions s ON s.id = d.subscription_id "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? "
            "ORDER BY d.next_attempt_at LIMIT ?", (now, limit)).fetchall()
        return [DueDelivery(_delivery(row[:-2]), row[-2], row[-1]) for row in rows]

    def next_due(self) -> int | None:
        return self._conn.execute("SELECT MIN(next_attempt_at) FROM alert_deliveries "
                                  "WHERE status = 'pending'").fetchone()[0]

    def record_attempt(self, d: AlertDelivery) -> bool:
        return self._conn.execute(
            "UPDATE alert_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
            "last_status_code = ?, last_error = ?, delivered_at = ? "
            "WHERE id = ? AND status = 'pending'",
            (d.status.value, d.attempts, d.next_attempt_at, d.last_status_code, d.last_error,
             d.delivered_at, d.id)).rowcount > 0

    def deliveries(self, subscription_id: str, *, before: int | None, limit: int) -> Page:
        return fetch_page(self._conn, table="alert_deliveries", columns=_DELIVERY,
                          where=["subscription_id = ?"], args=[subscription_id],
                          before=before, limit=limit, convert=_delivery)

    def recent_ends(self, workflow_id: str, since: int, limit: int) -> tuple[int, int]:
        # runs_workflow_ended covers this: at most `limit` index entries, no table rows.
        row = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'failed'), 0) FROM ("
            "SELECT status FROM runs WHERE workflow_id = ? AND completed_at IS NOT NULL "
            "AND completed_at >= ? ORDER BY completed_at DESC LIMIT ?)",
            (workflow_id, since, limit)).fetchone()
        return row[0], row[1]

    def mark_failing(self, workflow_id: str, now: int, quiet_since: int) -> bool:
        return self._conn.execute(
            "INSERT INTO workflow_alerts (workflow_id, failing_at) VALUES (?, ?) "
            "ON CONFLICT (workflow_id) DO UPDATE SET failing_at = excluded.failing_at "
            "WHERE failing_at < ?", (workflow_id, now, quiet_since)).rowcount > 0
