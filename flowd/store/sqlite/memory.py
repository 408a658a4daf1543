"""A throwaway store in memory, for test runs: the same schema and the same SQL (every family
of the real store), on one private `:memory:` connection, with units run inline.

What it is not: durable or concurrent. It lives for one test run, in the event loop's thread;
a unit runs at once (BEGIN … COMMIT) and its future is already resolved when `write` returns,
with its after-commit work done — as the real writer does before a caller resumes. A database
of a few rows answers in microseconds, so running inline is cheaper than a thread hop.

Making the schema for each test run would cost milliseconds of DDL: it is made once per
process in a template connection and copied with SQLite's backup API.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any, Callable, TypeVar

from flowd.store.base import Store, Transaction
from flowd.store.sqlite import _Transactions
from flowd.store.sqlite.schema import migrate

T = TypeVar("T")

_template: sqlite3.Connection | None = None
_template_lock = threading.Lock()


def _schema() -> sqlite3.Connection:
    global _template
    with _template_lock:
        if _template is None:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
            _template = conn
        return _template


class MemoryStore(Store):
    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._transactions = _Transactions()

    async def open(self) -> None:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        template = _schema()
        with _template_lock:
            template.backup(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, unit: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        conn = self._connection()
        tx = self._transactions(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = unit(tx, *args)
        except BaseException as exc:
            conn.execute("ROLLBACK")
            future.set_exception(exc)
            return future
        conn.execute("COMMIT")
        for callback in tx.after_commit:
            callback()
        future.set_result(result)
        return future

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        return query(self._transactions(self._connection()), *args)

    def count_rows(self) -> dict[str, int]:
        """Rows per table (what a test run left in its store)."""
        conn = self._connection()
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}

    def _connection(self) -> sqlite3.Connection:
        assert self._conn is not None, "MemoryStore.open() first"
        return self._conn


__all__ = ["MemoryStore", "Transaction"]
