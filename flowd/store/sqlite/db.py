"""SQLite connections, the threads they live in, and the single group-commit writer.

This module owns every connection the server opens and the thread each one runs in:

* **The writer**: one connection in one thread of its own. Every write in flowd is a *unit*, a
  plain function `unit(context, *args, **kwargs)` run there. The event loop puts units on a queue;
  the thread takes everything queued (up to `group_commit_max`), runs it in ONE
  `BEGIN IMMEDIATE … COMMIT` with a savepoint around each unit (so one failing unit does not sink
  the others), and hands the outcomes back with one `call_soon_threadsafe` per transaction. Only
  then, on the loop, is each caller's future resolved, after the unit's after-commit callbacks
  ran. That turns SQLite's per-commit fsync into a per-batch cost: throughput grows with
  concurrency while every acknowledged write is on disk.
* **Readers**: `read_connections` threads sharing one queue of reads, each with a connection of
  its own, opened in that thread. A read is one hop there and one `call_soon_threadsafe` back.
  SQLite's progress handler stops a read that takes longer than `read_timeout_ms` (a snapshot
  held that long would also hold the WAL back); the writer is never stopped.
* **The checkpointer**: a connection and a thread of its own that copies WAL pages back into the
  database file (a PASSIVE checkpoint) when the writer asks, once the WAL passes a few megabytes.
  SQLite's automatic checkpoint would do that inside a COMMIT, on the writer's thread; beside it,
  it costs the writer nothing (SQLite's C code does not hold the GIL). Under steady writes such a
  checkpoint ends a little behind, and SQLite only starts the WAL over once every frame is back
  in the database, so the writer then copies the few frames written meanwhile, between two
  transactions (the catch-up). If the writer outruns the checkpointer by far, it waits for it:
  that bounds the WAL by the writer's own pace, not by how the two threads happen to be
  scheduled. A WAL that still grows past `wal_max_bytes` (a reader holding an old snapshot) is
  truncated by the writer.

The context a unit or a read gets is `make_context(conn)`, a fresh one each time, the connection
itself by default. If a unit's context has an `after_commit` list, those callables run on the
event loop once the unit is committed, before its caller's future resolves; a unit that raised
and a transaction that failed drop theirs (a read commits nothing, so its list is ignored).

Why not aiosqlite: flowd needs a whole unit of work in one thread hop, which aiosqlite offers only
through private API (`Connection._execute`); owning the threads is a few dozen lines of the
standard library, and lets the writer deliver a whole batch in one hop back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator, TypeVar

from flowd.errors import Unavailable
from flowd.metrics import COMMIT_BUCKETS, Histogram
from flowd.store.sqlite.schema import migrate

log = logging.getLogger("flowd.store")

T = TypeVar("T")
MakeContext = Callable[[sqlite3.Connection], Any]
# A unit or a read queued for its thread: fn, its positional and keyword arguments, the
# caller's future.
Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]
# What became of one unit: (succeeded, its result or exception, its after-commit callbacks).
Outcome = tuple[bool, Any, "tuple[Callable[[], Any], ...] | None"]


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
# While a background checkpoint runs, the writer goes on until the WAL is this large, then waits
# for the checkpoint to end. A checkpoint normally ends long before (it copies about 4 MB); only
# a slow disk or a starved thread gets here, and then the WAL stays bounded all the same.
CHECKPOINT_HIGH_WATER_BYTES = 3 * BACKGROUND_CHECKPOINT_BYTES
# How long the writer waits for it at most: a PASSIVE checkpoint never waits for a lock, so
# only a stalled disk takes this long, and the writer's own commits would stall on it too.
CHECKPOINT_WAIT_SECONDS = 10.0
# SQLite calls a reader's progress handler every this many virtual-machine instructions: every
# 7 ms at the 140 million a second it runs on the bench machine, precise enough for a limit of
# 100 ms or more on a machine several times slower. A read shorter than that never calls back
# into Python (which would have to take the GIL back from the event loop).
READ_CHECK_INSTRUCTIONS = 1_000_000


@dataclass(frozen=True)
class DbSettings:
    path: str
    synchronous: str = "normal"
    busy_timeout_ms: int = 5000
    wal_max_bytes: int = 64 * 1024 * 1024
    group_commit_max: int = 2000
    read_connections: int = 2
    read_timeout_ms: int = 10000


def configure(conn: sqlite3.Connection, settings: DbSettings, *, readonly: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
    if not readonly:
        # Takes effect only on a file with no table yet, and must come before journal_mode
        # (switching to WAL writes the header): a new database hands the pages retention
        # frees back to the disk. Older ones get it from migration 10; elsewhere a no-op.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
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


def _open(settings: DbSettings, *, readonly: bool) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (BEGIN IMMEDIATE for every write).
    conn = sqlite3.connect(settings.path, isolation_level=None)
    try:
        configure(conn, settings, readonly=readonly)
    except BaseException:
        conn.close()
        raise
    return conn


def _open_writer(settings: DbSettings) -> sqlite3.Connection:
    conn = _open(settings, readonly=False)
    try:
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer's job, not a COMMIT's
        # When the WAL starts over, a larger file is cut back to this size, so the file grows
        # past it only when that much waits for a checkpoint. Smaller files are reused, not cut:
        # with synchronous=full, syncing a write that grows a file costs more than one that does
        # not.
        conn.execute(f"PRAGMA journal_size_limit = {BACKGROUND_CHECKPOINT_BYTES}")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _passive_checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


def _settle(future: asyncio.Future[Any], exc: BaseException | None = None) -> None:
    if not future.done():
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)


def _call_on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is waiting for this any more
        pass


class _ConnectionThread:
    """A thread that opens its own connection, serves with it until told to stop, and closes it;
    the event loop awaits both ends. A daemon thread: a Database that is never closed must not
    hold up the interpreter's exit (SQLite rolls back what was not committed)."""

    def __init__(self, name: str, open_connection: Callable[[], sqlite3.Connection],
                 serve: Callable[[sqlite3.Connection], None]) -> None:
        self._name = name
        self._open_connection = open_connection
        self._serve = serve
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Returns once the connection is open; raises what opening it raised."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        self._thread = threading.Thread(target=self._main, args=(loop, opened, self._stopped),
                                        name=self._name, daemon=True)
        self._thread.start()
        await opened

    async def stopped(self) -> None:
        """Returns once the thread has closed its connection and ended."""
        if self._thread is not None:
            await self._stopped
            self._thread.join()  # it said so on its last line: this takes no time

    def _main(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None],
              stopped: asyncio.Future[None]) -> None:
        try:
            conn = self._open_connection()
        except BaseException as exc:
            _call_on_loop(loop, _settle, opened, exc)
            _call_on_loop(loop, _settle, stopped)
            return
        _call_on_loop(loop, _settle, opened)
        try:
            self._serve(conn)
        finally:
            conn.close()
            _call_on_loop(loop, _settle, stopped)


_STOP = object()


class _Checkpointer:
    """PASSIVE checkpoints on a connection and in a thread of their own, when the writer asks."""

    def __init__(self, settings: DbSettings, stats: WriterStats) -> None:
        self._stats = stats
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = _ConnectionThread(
            "flowd-checkpoint", partial(_open, settings, readonly=False), self._serve)

    async def start(self) -> None:
        await self._thread.start()

    async def close(self) -> None:
        self._requests.put(_STOP)
        await self._thread.stopped()

    # The three below are called from the writer's thread.

    def request(self) -> None:
        self._idle.clear()
        self._requests.put(True)

    def idle(self) -> bool:
        return self._idle.is_set()

    def wait(self, timeout: float) -> bool:
        return self._idle.wait(timeout)

    def _serve(self, conn: sqlite3.Connection) -> None:
        while self._requests.get() is not _STOP:
            try:
                _passive_checkpoint(conn)
                self._stats.background_checkpoints += 1
            except Exception:  # harmless: the next one, or the writer's truncation, catches up
                log.warning("background WAL checkpoint failed", exc_info=True)
            finally:
                self._idle.set()


class Writer:
    """The only connection that writes, in a thread of its own. See the module docstring."""

    def __init__(self, settings: DbSettings, make_context: MakeContext | None = None) -> None:
        self._settings = settings
        self._make_context = make_context
        self._wal_path = settings.path + "-wal"
        # A checkpoint ends only when the writer caught up with it: it waits that long at most.
        self._wait_for_checkpoint_above = min(CHECKPOINT_HIGH_WATER_BYTES, settings.wal_max_bytes)
        self._checkpoint_requested = False  # only the writer's thread reads and writes it
        self._queue: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self.stats = WriterStats()
        # Incremented in the writer's thread only; /metrics reads it.
        self.commit_seconds = Histogram(COMMIT_BUCKETS)
        self._checkpointer = _Checkpointer(settings, self.stats)
        self._thread = _ConnectionThread(
            "flowd-writer", partial(_open_writer, settings), self._serve)

    async def start(self) -> None:
        """Open the connection (and migrate the schema), then the checkpointer's."""
        self._loop = asyncio.get_running_loop()
        await self._thread.start()
        await self._checkpointer.start()

    def submit(self, fn: Callable[..., T], args: tuple[Any, ...] = (),
               kwargs: dict[str, Any] | None = None) -> asyncio.Future[T]:
        """Queue `fn(context, *args, **kwargs)` for the next group transaction; the future
        resolves once it is committed. (A plain function returning the future, not a coroutine:
        a step's commit then resumes one frame fewer.)"""
        if self._closing:
            raise Unavailable("the server is shutting down")
        assert self._loop is not None, "database is not open"
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((fn, args, kwargs or {}, future))
        return future

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def wal_bytes(self) -> int:
        return self._wal_size()

    async def close(self) -> None:
        """Commit everything already queued, then stop the threads."""
        if not self._closing:
            self._closing = True
            self._queue.put(_STOP)
        await self._thread.stopped()
        await self._checkpointer.close()

    # Everything below runs in the writer's thread.

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            batch, stop = self._take_batch()
            if batch:
                self._commit(conn, batch)
            if stop:
                self._final_checkpoint(conn)
                return

    def _final_checkpoint(self, conn: sqlite3.Connection) -> None:
        """A clean stop leaves every committed page in the database file itself, the WAL
        empty. SQLite does that when the last connection closes, but only if that close can
        tell it is the last: two reader threads closing at once may each see the other and
        both leave the WAL as it is."""
        self._checkpointer.wait(CHECKPOINT_WAIT_SECONDS)
        try:
            self._truncate(conn)
        except sqlite3.Error:
            log.warning("the final WAL checkpoint failed; the next start replays the WAL",
                        exc_info=True)

    def _take_batch(self) -> tuple[list[Job], bool]:
        """Waits for a unit, then takes whatever else is queued; True once told to stop."""
        job = self._queue.get()
        if job is _STOP:
            return [], True
        batch: list[Job] = [job]  # type: ignore[list-item]
        while len(batch) < self._settings.group_commit_max:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True
            batch.append(job)  # type: ignore[arg-type]
        return batch, False

    def _commit(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        started = time.perf_counter()
        try:
            outcomes = self._run_transaction(conn, batch)
        except BaseException as exc:  # the transaction as a whole failed: nothing was committed
            outcomes = [(False, self._transaction_error(exc, len(batch)), None)] * len(batch)
        else:
            self._count(len(batch))
            self.commit_seconds.observe(time.perf_counter() - started)
        assert self._loop is not None
        _call_on_loop(self._loop, _deliver, batch, outcomes)
        try:  # after the callers have their answer: it is committed whatever happens here
            self._keep_wal_bounded(conn)
        except Exception:
            log.warning("WAL checkpoint failed", exc_info=True)

    def _run_transaction(self, conn: sqlite3.Connection, batch: list[Job]) -> list[Outcome]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            outcomes = [self._run_unit(conn, fn, args, kwargs) for fn, args, kwargs, _ in batch]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _run_unit(self, conn: sqlite3.Connection, fn: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Outcome:
        make_context = self._make_context
        conn.execute("SAVEPOINT unit")
        try:
            context = conn if make_context is None else make_context(conn)
            value = fn(context, *args, **kwargs)
        except Exception as exc:
            conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")
            return False, exc, None  # its after-commit callbacks go with its changes
        conn.execute("RELEASE unit")
        return True, value, None if make_context is None else _after_commit_of(context)

    def _transaction_error(self, exc: BaseException, units: int) -> BaseException:
        if is_busy(exc):
            return Unavailable("the database is locked by another process; retry")
        log.error("group commit of %d units failed", units, exc_info=exc)
        return exc

    def _count(self, units: int) -> None:
        stats = self.stats
        stats.transactions += 1
        stats.units += units
        stats.largest_batch = max(stats.largest_batch, units)

    def _keep_wal_bounded(self, conn: sqlite3.Connection) -> None:
        size = self._wal_size()
        if self._checkpoint_requested:
            if size > self._wait_for_checkpoint_above and not self._checkpointer.idle():
                if not self._checkpointer.wait(CHECKPOINT_WAIT_SECONDS):
                    log.warning("the background WAL checkpoint is still running after %.0f s",
                                CHECKPOINT_WAIT_SECONDS)
            if not self._checkpointer.idle():
                return  # still copying beside the writer
            self._checkpoint_requested = False
            _passive_checkpoint(conn)  # the catch-up: the frames written while it ran
            if size <= self._settings.wal_max_bytes:
                return  # the WAL starts over at the next transaction
        if size > self._settings.wal_max_bytes:
            self._truncate(conn)
        elif size > BACKGROUND_CHECKPOINT_BYTES:
            self._checkpoint_requested = True
            self._checkpointer.request()

    def _truncate(self, conn: sqlite3.Connection) -> None:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            self.stats.checkpoints += 1

    def _wal_size(self) -> int:
        try:
            return os.path.getsize(self._wal_path)
        except OSError:
            return 0


def _after_commit_of(context: Any) -> tuple[Callable[[], Any], ...] | None:
    callbacks = getattr(context, "after_commit", None)
    if isinstance(callbacks, list) and callbacks:
        return tuple(callbacks)
    return None


def _deliver(batch: list[Job], outcomes: list[Outcome]) -> None:
    """On the event loop, once per transaction: each unit's after-commit callbacks, then its
    caller's future."""
    for (_, _, _, future), (ok, value, after_commit) in zip(batch, outcomes):
        if after_commit:
            _run_after_commit(after_commit)
        if future.done():  # the caller went away; its work is committed regardless
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _run_after_commit(callbacks: tuple[Callable[[], Any], ...]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the unit is committed; one failing callback must not stop the rest
            log.exception("after-commit callback %r failed", callback)


class _ReadTimeLimit:
    """A reader connection's progress handler: stops the running statement once the current
    read has gone on past its deadline (SQLite then raises OperationalError 'interrupted')."""

    __slots__ = ("deadline",)

    def __init__(self) -> None:
        self.deadline = math.inf

    def __call__(self) -> bool:
        return time.monotonic() > self.deadline


class _Readers:
    """The read executor: `read_connections` threads taking reads from one queue, each with a
    connection of its own, opened in that thread, under a read time limit.

    Not concurrent.futures.ThreadPoolExecutor: its Future (with its locks) chained to an asyncio
    future doubled the server CPU a read costs in a benchmark; here a read is one queue put and
    one call_soon_threadsafe, as a writer's batch is."""

    def __init__(self, settings: DbSettings, make_context: MakeContext | None = None) -> None:
        self._settings = settings
        self._make_context = make_context
        self._limit_s = settings.read_timeout_ms / 1000
        self._queue: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._threads = [
            _ConnectionThread(f"flowd-read-{i}", partial(_open, settings, readonly=True),
                              self._serve)
            for i in range(settings.read_connections)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for thread in self._threads:
            await thread.start()

    def run(self, fn: Callable[..., T], args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> asyncio.Future[T]:
        if self._closed:
            raise Unavailable("the server is shutting down")
        assert self._loop is not None, "database is not open"
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((fn, args, kwargs, future))
        return future

    async def close(self) -> None:
        """Each thread finishes the reads queued before, then closes its connection."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._queue.put(_STOP)
        for thread in self._threads:
            await thread.stopped()

    # Everything below runs in a reader thread.

    def _serve(self, conn: sqlite3.Connection) -> None:
        limit = _ReadTimeLimit()
        conn.set_progress_handler(limit, READ_CHECK_INSTRUCTIONS)
        loop = self._loop
        assert loop is not None
        while (job := self._queue.get()) is not _STOP:
            fn, args, kwargs, future = job  # type: ignore[misc]
            try:
                outcome = True, self._read(conn, limit, fn, args, kwargs)
            except BaseException as exc:
                outcome = False, exc
            _call_on_loop(loop, _deliver_read, future, outcome)
            # An idle thread must not keep its last result alive (a page of an export).
            del job, fn, args, kwargs, future, outcome

    def _read(self, conn: sqlite3.Connection, limit: _ReadTimeLimit, fn: Callable[..., T],
              args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        limit.deadline = time.monotonic() + self._limit_s
        try:
            context = conn if self._make_context is None else self._make_context(conn)
            return fn(context, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc) and time.monotonic() > limit.deadline:
                raise Unavailable(self._too_long()) from exc
            raise
        finally:
            limit.deadline = math.inf
            if conn.in_transaction:  # a read never keeps its snapshot: it would hold the WAL back
                conn.rollback()

    def _too_long(self) -> str:
        return (f"the query took longer than the read time limit of "
                f"{self._settings.read_timeout_ms} ms ([storage] read_timeout_ms) and was "
                f"stopped: narrow it (a smaller page, a narrower filter or time range) or raise "
                f"the limit")


def _deliver_read(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():  # the caller went away
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class Database:
    """One writer connection with group commit, a few read connections, and a checkpointer,
    each in its own thread. `make_context(conn)` is what every unit and read is given (the
    connection itself by default); see the module docstring for its `after_commit`."""

    def __init__(self, settings: DbSettings, make_context: MakeContext | None = None) -> None:
        self.settings = settings
        self._make_context = make_context
        self._readers: _Readers | None = None
        self.writer: Writer | None = None

    async def open(self) -> None:
        try:
            self.writer = Writer(self.settings, self._make_context)
            await self.writer.start()
            self._readers = _Readers(self.settings, self._make_context)
            await self._readers.start()
        except BaseException:
            await self.close()
            raise

    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Run `fn(context, *args, **kwargs)` as one unit of the next group commit: await the
        result, which is there once it is committed."""
        assert self.writer is not None, "database is not open"
        return self.writer.submit(fn, args, kwargs)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(context, *args, **kwargs)` on a read connection, in its thread, in one hop,
        under the read time limit (past it: Unavailable)."""
        assert self._readers is not None, "database is not open"
        return await self._readers.run(fn, args, kwargs)

    async def close(self) -> None:
        if self.writer:
            await self.writer.close()
        if self._readers:
            await self._readers.close()


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
