"""SQLite connections and the single group-commit writer.

Every write in flowd is a *unit*: a plain function `unit(conn) -> result` that runs inside the
writer connection's thread. Concurrent callers enqueue units; the writer takes everything queued
(up to `group_commit_max`), runs it in ONE `BEGIN IMMEDIATE … COMMIT` with a savepoint around
each unit (so one failing unit does not sink the others), and resolves each caller's future only
after the commit. That turns SQLite's per-commit fsync cost into a per-batch cost: throughput
grows with concurrency while every acknowledged write is on disk.

The writer does not copy WAL pages back into the database file itself: SQLite's automatic
checkpoint would do that inside a COMMIT, on the writer's thread. A separate connection runs a
PASSIVE checkpoint in its own thread whenever the WAL passes a few megabytes; it runs beside the
writer (SQLite's C code does not hold the GIL) and never blocks it. Under steady writes that
checkpoint always ends a little behind, and SQLite only starts the WAL over once every frame is
back in the database, so the writer then copies the few frames written meanwhile, between two
transactions. A WAL that still grows past `wal_max_bytes` is truncated by the writer.

A whole unit (or a whole read) runs in the connection's thread in one hop. aiosqlite exposes
that as `Connection._execute(fn)`, which is what its own public methods are built on; we use it
rather than paying one thread round-trip per statement.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import aiosqlite

from flowd.errors import Unavailable
from flowd.store.schema import migrate

log = logging.getLogger("flowd.store")

T = TypeVar("T")
Unit = Callable[[sqlite3.Connection], T]


@dataclass
class WriterStats:
    transactions: int = 0   # committed group transactions
    units: int = 0          # units of work committed (or rolled back to their savepoint)
    checkpoints: int = 0    # WAL truncations
    background_checkpoints: int = 0
    largest_batch: int = 0


# A background checkpoint starts once the WAL is larger than this (SQLite's own automatic
# checkpoint starts at 1,000 pages, about the same).
BACKGROUND_CHECKPOINT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class DbSettings:
    path: str
    synchronous: str = "normal"
    busy_timeout_ms: int = 5000
    wal_max_bytes: int = 64 * 1024 * 1024
    group_commit_max: int = 2000
    read_connections: int = 2


def configure(conn: sqlite3.Connection, settings: DbSettings, *, readonly: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if settings.synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -32768")  # 32 MiB per connection
    if readonly:
        conn.execute("PRAGMA query_only = ON")


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc))


class Writer:
    """The only connection that writes. See the module docstring."""

    def __init__(self, conn: aiosqlite.Connection, settings: DbSettings,
                 checkpointer: aiosqlite.Connection) -> None:
        self._conn = conn
        self._checkpointer = checkpointer
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._catch_up = False   # a background checkpoint ended: the writer finishes its work
        self._settings = settings
        self._wal_path = settings.path + "-wal"
        self._pending: list[tuple[Unit[Any], asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.stats = WriterStats()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flowd-writer")

    def submit(self, unit: Unit[T]) -> asyncio.Future[T]:
        """Queue `unit` for the next group transaction; the future resolves once it is
        committed. (A plain function returning the future, not a coroutine: a step's commit
        then resumes one frame fewer.)"""
        if self._closing:
            raise Unavailable("the server is shutting down")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((unit, future))
        self._wakeup.set()
        return future

    async def close(self) -> None:
        """Commit everything already queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task:
            await self._task
        if self._checkpoint_task:
            await self._checkpoint_task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                limit = self._settings.group_commit_max
                batch, self._pending = self._pending[:limit], self._pending[limit:]
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[tuple[Unit[Any], asyncio.Future[Any]]]) -> None:
        units = [unit for unit, _ in batch]
        try:
            outcomes = await self._conn._execute(self._run_batch, self._conn._conn, units)
        except Exception as exc:  # the transaction as a whole failed: nothing was committed
            if is_busy(exc):
                error: Exception = Unavailable("the database is locked by another process; retry")
            else:
                log.exception("group commit of %d units failed", len(batch))
                error = exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        self.stats.transactions += 1
        self.stats.units += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self._checkpoint_in_background()
        for (_, future), (ok, value) in zip(batch, outcomes):
            if future.done():  # the caller went away; its work is committed regardless
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _run_batch(self, conn: sqlite3.Connection, units: list[Unit[Any]]) -> list[tuple[bool, Any]]:
        """Runs in the writer thread: one transaction, one savepoint per unit."""
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for unit in units:
                conn.execute("SAVEPOINT unit")
                try:
                    outcomes.append((True, unit(conn)))
                    conn.execute("RELEASE unit")
                except Exception as exc:
                    conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                    outcomes.append((False, exc))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if self._catch_up:
            self._catch_up = False
            _passive_checkpoint(conn)
        self._checkpoint_if_large(conn)
        return outcomes

    def _checkpoint_in_background(self) -> None:
        if self._checkpoint_task is not None and not self._checkpoint_task.done():
            return
        try:
            size = os.path.getsize(self._wal_path)
        except OSError:
            return
        if size > BACKGROUND_CHECKPOINT_BYTES:
            self._checkpoint_task = asyncio.create_task(self._checkpoint(),
                                                        name="flowd-checkpoint")

    async def _checkpoint(self) -> None:
        try:
            await self._checkpointer._execute(_passive_checkpoint, self._checkpointer._conn)
            self.stats.background_checkpoints += 1
            self._catch_up = True
        except Exception:  # harmless: the next one, or the writer's truncation, catches up
            log.warning("background WAL checkpoint failed", exc_info=True)

    def _checkpoint_if_large(self, conn: sqlite3.Connection) -> None:
        try:
            size = os.path.getsize(self._wal_path)
        except OSError:
            return
        if size > self._settings.wal_max_bytes:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                self.stats.checkpoints += 1


def _passive_checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


class Database:
    """One writer connection with group commit, and a few read connections."""

    def __init__(self, settings: DbSettings) -> None:
        self.settings = settings
        self._writer_conn: aiosqlite.Connection | None = None
        self._checkpointer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._reader_cycle: Any = None
        self.writer: Writer | None = None

    async def open(self) -> None:
        try:
            await self._open()
        except BaseException:
            # Connections run in non-daemon threads: leaving one open would hang the exit.
            await self.close()
            raise

    async def _open(self) -> None:
        settings = self.settings
        self._writer_conn = await aiosqlite.connect(
            settings.path, isolation_level=None, check_same_thread=False)
        await self._writer_conn._execute(configure, self._writer_conn._conn, settings, readonly=False)
        await self._writer_conn._execute(_no_automatic_checkpoint, self._writer_conn._conn)
        self._checkpointer = await aiosqlite.connect(
            settings.path, isolation_level=None, check_same_thread=False)
        await self._checkpointer._execute(configure, self._checkpointer._conn, settings,
                                          readonly=False)
        for _ in range(settings.read_connections):
            reader = await aiosqlite.connect(
                settings.path, isolation_level=None, check_same_thread=False)
            await reader._execute(configure, reader._conn, settings, readonly=True)
            self._readers.append(reader)
        self._reader_cycle = itertools.cycle(self._readers)
        await self._writer_conn._execute(migrate, self._writer_conn._conn)
        self.writer = Writer(self._writer_conn, settings, self._checkpointer)
        self.writer.start()

    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Run `fn(conn, *args, **kwargs)` as one unit of the next group commit: await the
        result, which is there once it is committed."""
        assert self.writer is not None, "database is not open"
        return self.writer.submit(lambda conn: fn(conn, *args, **kwargs))

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(conn, *args, **kwargs)` on a read connection, in its thread, in one hop."""
        reader = next(self._reader_cycle)
        return await reader._execute(fn, reader._conn, *args, **kwargs)

    async def close(self) -> None:
        if self.writer:
            await self.writer.close()
        for conn in [*self._readers, self._checkpointer, self._writer_conn]:
            if conn is not None:
                await conn.close()
        self._readers = []
        self._writer_conn = self._checkpointer = None


def _no_automatic_checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    # When the WAL starts over, a larger file is cut back to this size, so the file grows past
    # it only when that much waits for a checkpoint. Smaller files are reused, not cut: with
    # synchronous=full, syncing a write that grows a file costs more than one that does not.
    conn.execute(f"PRAGMA journal_size_limit = {BACKGROUND_CHECKPOINT_BYTES}")


def connect_sync(settings: DbSettings) -> sqlite3.Connection:
    """A plain connection for the command line (migrate, keys): same pragmas, no event loop."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (BEGIN IMMEDIATE for every write).
    conn = sqlite3.connect(settings.path, isolation_level=None)
    configure(conn, settings, readonly=False)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT for the command line's writes (the server uses the Writer)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
