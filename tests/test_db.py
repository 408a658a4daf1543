"""The database's threads on a real SQLite file: the writer's batches and after-commit
callbacks, the readers' time limit, and closing (or not closing) it all."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
import threading
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import pytest

from flowd.errors import Conflict, Unavailable
from flowd.store.sqlite.db import Database, DbSettings

COUNT_TO = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
            "SELECT COUNT(*) FROM c")


def count_to(conn: sqlite3.Connection, n: int) -> int:
    return conn.execute(COUNT_TO, (n,)).fetchone()[0]


class Context:
    """What a unit gets when the Database is given make_context: the connection, and the
    callables to run once the unit is committed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.after_commit: list[Callable[[], Any]] = []


@pytest.fixture
async def db(tmp_path):
    database = Database(DbSettings(path=str(tmp_path / "store.db")), make_context=Context)
    await database.open()
    yield database
    await database.close()


@asynccontextmanager
async def writer_held(db: Database) -> AsyncIterator[None]:
    """Keeps the writer busy in a unit of its own, so that everything queued inside the block
    is taken as one batch: one transaction."""
    started, release = threading.Event(), threading.Event()

    def hold(ctx: Context) -> None:
        started.set()
        release.wait(30)

    held = db.write(hold)
    await asyncio.to_thread(started.wait, 30)
    try:
        yield
    finally:
        release.set()
        await held


def insert_project(ctx: Context, name: str, on_commit: Callable[[], Any] | None = None) -> str:
    ctx.conn.execute("INSERT INTO projects (id, created_at) VALUES (?, 0)", (name,))
    if on_commit:
        ctx.after_commit.append(on_commit)
    return name


async def test_callbacks_run_on_the_loop_after_the_commit_and_before_the_future(db, tmp_path):
    loop_thread = threading.get_ident()
    futures: dict[str, asyncio.Future[str]] = {}
    seen: list[tuple[str, bool, int, bool]] = []

    def observe(name: str) -> None:
        other = sqlite3.connect(tmp_path / "store.db")  # not the writer: sees only what is committed
        committed = other.execute("SELECT COUNT(*) FROM projects WHERE id = ?", (name,)).fetchone()[0]
        other.close()
        seen.append((name, threading.get_ident() == loop_thread, committed, futures[name].done()))

    async with writer_held(db):
        for name in ("a", "b"):
            futures[name] = db.write(insert_project, name, lambda name=name: observe(name))
    assert await asyncio.gather(*futures.values()) == ["a", "b"]
    assert seen == [("a", True, 1, False), ("b", True, 1, False)]


async def test_a_failing_callback_is_logged_and_affects_neither_the_others_nor_the_result(db, caplog):
    ran: list[int] = []

    def unit(ctx: Context) -> str:
        ctx.after_commit.append(lambda: ran.append(1))
        ctx.after_commit.append(lambda: 1 / 0)
        ctx.after_commit.append(lambda: ran.append(3))
        return "committed"

    with caplog.at_level(logging.ERROR, logger="flowd.store"):
        assert await db.write(unit) == "committed"
    assert ran == [1, 3]
    [record] = [r for r in caplog.records if "after-commit callback" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


async def test_a_unit_that_raised_has_its_callbacks_dropped_and_the_others_keep_theirs(db):
    ran: list[str] = []

    def changes_its_mind(ctx: Context) -> None:
        insert_project(ctx, "bad", lambda: ran.append("bad"))
        raise Conflict("this unit changes its mind")

    transactions = db.writer.stats.transactions
    async with writer_held(db):
        good = db.write(insert_project, "good", lambda: ran.append("good"))
        bad = db.write(changes_its_mind)
    assert await good == "good"
    with pytest.raises(Conflict):
        await bad
    assert db.writer.stats.transactions == transactions + 2  # the held unit's, then both of these
    assert ran == ["good"]


async def test_no_callback_runs_when_the_whole_transaction_fails(db):
    ran: list[str] = []

    def orphan(ctx: Context) -> None:
        # A deferred foreign key passes the unit's savepoint and fails the COMMIT, which takes
        # the whole transaction with it.
        ctx.conn.execute("PRAGMA defer_foreign_keys = ON")
        ctx.conn.execute("INSERT INTO api_keys (id, project_id, role, key_hash, lookup, prefix, "
                         "created_at) VALUES ('k', 'no such project', 'admin', 'h', 'h', 'p', 0)")
        ctx.after_commit.append(lambda: ran.append("orphan"))

    async with writer_held(db):
        good = db.write(insert_project, "good", lambda: ran.append("good"))
        bad = db.write(orphan)
    outcomes = await asyncio.gather(good, bad, return_exceptions=True)
    assert [type(o) for o in outcomes] == [sqlite3.IntegrityError] * 2
    assert ran == []
    assert await db.read(lambda ctx: ctx.conn.execute(
        "SELECT COUNT(*) FROM projects WHERE id = 'good'").fetchone()[0]) == 0


async def test_every_unit_and_read_gets_a_fresh_context(db):
    contexts: list[Context] = []

    def remember(ctx: Context) -> None:
        contexts.append(ctx)

    async with writer_held(db):
        batch = [db.write(remember), db.write(remember)]
    await asyncio.gather(*batch)
    await db.read(remember)
    assert all(isinstance(c, Context) for c in contexts)
    assert len({id(c) for c in contexts}) == 3
    assert contexts[0].conn is contexts[1].conn  # one writer connection, one context per unit
    assert contexts[2].conn is not contexts[0].conn


async def test_a_read_past_the_time_limit_is_stopped_and_its_connection_answers_the_next(tmp_path):
    db = Database(DbSettings(path=str(tmp_path / "slow.db"), read_connections=1,
                             read_timeout_ms=50))
    await db.open()
    try:
        reader = await db.read(lambda conn: conn)
        with pytest.raises(Unavailable) as info:
            await db.read(count_to, 100_000_000)  # seconds of work
        assert (info.value.status, info.value.code) == (503, "unavailable")
        message = str(info.value)
        assert "took longer than the read time limit of 50 ms" in message
        assert "read_timeout_ms" in message and "narrow it" in message
        assert await db.read(lambda conn: (conn, count_to(conn, 1000))) == (reader, 1000)
    finally:
        await db.close()


async def test_the_writer_is_not_time_limited(tmp_path):
    db = Database(DbSettings(path=str(tmp_path / "limit.db"), read_timeout_ms=20))
    await db.open()
    try:
        with pytest.raises(Unavailable):
            await db.read(count_to, 2_000_000)  # longer than the limit…
        assert await db.write(count_to, 2_000_000) == 2_000_000  # …and the writer sees it through
    finally:
        await db.close()


async def test_a_read_never_keeps_a_transaction_open(db):
    await db.read(lambda ctx: ctx.conn.execute("BEGIN"))
    assert await db.read(lambda ctx: ctx.conn.in_transaction) is False


async def test_close_stops_every_thread_it_started_and_refuses_more_work(tmp_path):
    before = set(threading.enumerate())
    db = Database(DbSettings(path=str(tmp_path / "threads.db"), read_connections=2),
                  make_context=Context)
    await db.open()
    await asyncio.gather(db.write(insert_project, "x"), db.read(lambda ctx: count_to(ctx.conn, 10)))
    started = set(threading.enumerate()) - before
    names = {t.name for t in started}
    assert {"flowd-writer", "flowd-checkpoint"} <= names
    assert any(name.startswith("flowd-read") for name in names)
    await db.close()
    assert [t.name for t in started if t.is_alive()] == []
    with pytest.raises(Unavailable):
        db.write(insert_project, "y")
    with pytest.raises(Unavailable):
        await db.read(lambda ctx: count_to(ctx.conn, 10))


def test_a_database_that_is_never_closed_does_not_hold_up_the_exit(tmp_path):
    script = f"""
import asyncio, sqlite3
from flowd.store.sqlite.db import Database, DbSettings

def insert(conn, name):
    conn.execute("INSERT INTO projects (id, created_at) VALUES (?, 0)", (name,))

async def main():
    db = Database(DbSettings(path={str(tmp_path / "exit.db")!r}))
    await db.open()
    await db.write(insert, "committed")
    assert await db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM projects").fetchone()[0]) == 2
    for i in range(100):
        db.write(insert, f"in flight {{i}}")  # still queued or running when the loop goes away

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    conn = sqlite3.connect(tmp_path / "exit.db")
    assert conn.execute("SELECT COUNT(*) FROM projects WHERE id = 'committed'").fetchone()[0] == 1
