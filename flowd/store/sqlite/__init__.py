"""The SQLite store: one file in WAL mode, a single group-commit writer, read connections, and
one module of SQL per table family. `SqliteStore` is what the server runs on; `SyncStore` is
the same verbs for the command line and the benchmark's seeding, without an event loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from flowd.metrics import StorageMetrics
from flowd.store.base import Store, Transaction
from flowd.store.records import StoreError
from flowd.store.sqlite.alerts import SqliteAlerts
from flowd.store.sqlite.approvals import SqliteApprovals
from flowd.store.sqlite.audiences import SqliteAudiences
from flowd.store.sqlite.bulk_jobs import SqliteBulkJobs
from flowd.store.sqlite.contacts import SqliteContacts
from flowd.store.sqlite.db import Database, DbSettings, connect_sync
from flowd.store.sqlite.events import SqliteEvents
from flowd.store.sqlite.keys import SqliteKeys
from flowd.store.sqlite.messages import SqliteMessages
from flowd.store.sqlite.retention import SqliteRetention
from flowd.store.sqlite.runs import SqliteRuns
from flowd.store.sqlite.schedules import SqliteSchedules
from flowd.store.sqlite.schema import Migration, migrate
from flowd.store.sqlite.secrets import SqliteSecrets
from flowd.store.sqlite.sessions import SqliteSessions
from flowd.store.sqlite.templates import SqliteTemplates
from flowd.store.sqlite.workflows import SqliteWorkflows

T = TypeVar("T")
SQLITE_VERSION = sqlite3.sqlite_version


class SqliteTransaction(Transaction):
    __slots__ = ()

    @classmethod
    def on(cls, conn: sqlite3.Connection) -> "SqliteTransaction":
        return cls(keys=SqliteKeys(conn), contacts=SqliteContacts(conn),
                   events=SqliteEvents(conn), runs=SqliteRuns(conn),
                   workflows=SqliteWorkflows(conn), secrets=SqliteSecrets(conn),
                   templates=SqliteTemplates(conn), messages=SqliteMessages(conn),
                   approvals=SqliteApprovals(conn), bulk_jobs=SqliteBulkJobs(conn),
                   schedules=SqliteSchedules(conn), alerts=SqliteAlerts(conn),
                   retention=SqliteRetention(conn), sessions=SqliteSessions(conn),
                   audiences=SqliteAudiences(conn))


class _Transactions:
    """A connection's families are made once (they only hold the connection); each unit gets
    a fresh Transaction over them, with its own after-commit list."""

    def __init__(self) -> None:
        self._families: dict[int, dict[str, Any]] = {}   # connection -> the families by name

    def __call__(self, conn: sqlite3.Connection) -> Transaction:
        families = self._families.get(id(conn))
        if families is None:
            made = SqliteTransaction.on(conn)
            families = self._families[id(conn)] = {
                name: getattr(made, name) for name in Transaction.FAMILIES}
        return Transaction(**families)


class SqliteStore(Store):
    def __init__(self, settings: DbSettings) -> None:
        self.settings = settings
        # Every unit and read gets a Transaction; the writer runs a unit's after_commit work
        # on the loop once it is durable, before resolving its future.
        self.db = Database(settings, make_context=_Transactions())

    async def open(self) -> None:
        try:
            await self.db.open()
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.settings.path}: {exc}") from None

    async def close(self) -> None:
        await self.db.close()

    def write(self, unit: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return self.db.write(unit, *args)

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        return await self.db.read(query, *args)

    async def storage_metrics(self) -> StorageMetrics | None:
        writer = self.db.writer
        if writer is None:
            return None
        messages = await self.read(lambda tx: tx.messages.counts())
        try:
            db_bytes = os.path.getsize(self.settings.path)
        except OSError:
            db_bytes = 0
        return StorageMetrics(writer_queue_depth=writer.queue_depth,
                              commit_seconds=writer.commit_seconds, wal_bytes=writer.wal_bytes(),
                              db_bytes=db_bytes, messages=messages)


class SyncStore:
    """The store's verbs on one plain connection (no event loop, no group commit): for the
    command line, and for seeding a stopped server's database in the benchmark."""

    def __init__(self, settings: DbSettings) -> None:
        self.settings = settings
        try:
            self._conn = connect_sync(settings)
        except sqlite3.Error as exc:
            raise StoreError(f"database {settings.path}: {exc}") from None
        self._tx = SqliteTransaction.on(self._conn)

    def migrate(self) -> list[Migration]:
        """Bring the schema up to date; the migrations applied now."""
        with self._errors():
            return migrate(self._conn)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """BEGIN IMMEDIATE … COMMIT around the verbs used inside."""
        with self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def read(self) -> Transaction:
        return self._tx

    def truncate_wal(self) -> None:
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.settings.path}: {exc}") from None
