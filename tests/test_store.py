"""The store on a real SQLite file: pragmas, migrations, and the group-commit writer."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from flowd.errors import Conflict
from flowd.store.sqlite.db import (
    BACKGROUND_CHECKPOINT_BYTES,
    Database,
    DbSettings,
    connect_sync,
)
from flowd.store.sqlite.schema import LATEST_VERSION, MIGRATIONS, SchemaTooNew, migrate
from tests.conftest import Api


@pytest.fixture
async def db(tmp_path):
    database = Database(DbSettings(path=str(tmp_path / "store.db")))
    await database.open()
    yield database
    await database.close()


def test_migrate_an_empty_file_then_rerun_is_a_no_op(tmp_path):
    path = str(tmp_path / "fresh.db")
    conn = connect_sync(DbSettings(path=path))
    applied = migrate(conn)
    assert [m.version for m in applied] == [m.version for m in MIGRATIONS]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"schema_migrations", "projects", "api_keys", "contacts", "events"} <= tables
    schema_before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert migrate(conn) == []
    assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema_before
    assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == LATEST_VERSION
    assert conn.execute("SELECT id FROM projects").fetchall() == [("default",)]


def test_a_newer_schema_is_refused(tmp_path):
    conn = connect_sync(DbSettings(path=str(tmp_path / "new.db")))
    migrate(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)", (LATEST_VERSION + 1,))
    with pytest.raises(SchemaTooNew):
        migrate(conn)


@pytest.mark.parametrize("synchronous,level", [("normal", 1), ("full", 2)])
async def test_connection_pragmas(tmp_path, synchronous, level):
    database = Database(DbSettings(path=str(tmp_path / "p.db"), synchronous=synchronous,
                                   busy_timeout_ms=1234))

    def pragmas(conn: sqlite3.Connection) -> tuple:
        return tuple(conn.execute(f"PRAGMA {name}").fetchone()[0]
                     for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"))

    await database.open()
    try:
        assert await database.write(pragmas) == ("wal", level, 1, 1234)
        assert await database.read(pragmas) == ("wal", level, 1, 1234)
    finally:
        await database.close()


async def test_group_commit_batches_concurrent_writes(db: Database):
    def insert(conn: sqlite3.Connection, i: int) -> int:
        conn.execute("INSERT INTO projects (id, created_at) VALUES (?, 0)", (f"p{i}",))
        return i

    results = await asyncio.gather(*[db.write(insert, i) for i in range(500)])
    assert results == list(range(500))
    stats = db.writer.stats
    assert stats.units >= 500
    assert stats.transactions < stats.units
    count = await db.read(lambda conn: conn.execute("SELECT COUNT(*) FROM projects").fetchone()[0])
    assert count == 501  # and 'default'


async def test_a_failing_unit_does_not_sink_the_others_in_its_batch(db: Database):
    def insert(conn: sqlite3.Connection, name: str) -> None:
        conn.execute("INSERT INTO projects (id, created_at) VALUES (?, 0)", (name,))
        if name == "bad":
            raise Conflict("this unit changes its mind")

    outcomes = await asyncio.gather(*[db.write(insert, n) for n in ["a", "bad", "b"]],
                                    return_exceptions=True)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], Conflict)
    names = await db.read(lambda conn: {r[0] for r in conn.execute("SELECT id FROM projects")})
    assert names == {"default", "a", "b"}  # 'bad' was rolled back to its savepoint


async def test_queued_writes_are_committed_on_close(tmp_path):
    database = Database(DbSettings(path=str(tmp_path / "close.db")))
    await database.open()

    def insert(conn: sqlite3.Connection, i: int) -> None:
        conn.execute("INSERT INTO projects (id, created_at) VALUES (?, 0)", (f"q{i}",))

    pending = [asyncio.ensure_future(database.write(insert, i)) for i in range(50)]
    await asyncio.sleep(0)
    await database.close()
    await asyncio.gather(*pending)
    conn = sqlite3.connect(tmp_path / "close.db")
    assert conn.execute("SELECT COUNT(*) FROM projects").fetchone()[0] == 51


def _insert_100kb(conn: sqlite3.Connection, i: int) -> None:
    conn.execute("INSERT INTO projects (id, created_at) VALUES (?, 0)", (f"{i}{'x' * 100_000}",))


async def test_wal_is_truncated_when_it_grows_past_the_bound(tmp_path):
    path = str(tmp_path / "wal.db")
    database = Database(DbSettings(path=path, wal_max_bytes=1024 * 1024))
    await database.open()
    try:
        for i in range(40):  # ~4 MB written in total, in separate transactions
            await database.write(_insert_100kb, i)
        assert database.writer.stats.checkpoints >= 1
        assert os.path.getsize(path + "-wal") < 2 * 1024 * 1024
    finally:
        await database.close()


async def test_wal_is_checkpointed_beside_the_writer(tmp_path):
    """The writer does not checkpoint inside its commits; a separate connection does, once
    the WAL passes BACKGROUND_CHECKPOINT_BYTES, and the WAL then starts over from its head.

    The writer here writes as fast as it can, faster than a checkpoint copies on a loaded
    machine; the WAL stays bounded all the same because the writer waits for a checkpoint that
    falls too far behind. So the bound holds after every write, however the threads run."""
    path = str(tmp_path / "background.db")
    database = Database(DbSettings(path=path))
    await database.open()
    try:
        for i in range(200):  # ~40 MB of WAL in separate transactions, under wal_max_bytes
            await database.write(_insert_100kb, i)
            assert os.path.getsize(path + "-wal") < 4 * BACKGROUND_CHECKPOINT_BYTES
            if database.writer.stats.background_checkpoints >= 2:
                break
        assert database.writer.stats.background_checkpoints >= 2
        assert database.writer.stats.checkpoints == 0   # no truncation was needed
        assert os.path.getsize(path + "-wal") < 4 * BACKGROUND_CHECKPOINT_BYTES
    finally:
        await database.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM projects").fetchone()[0] == 1 + i + 1


async def test_200_concurrent_event_posts_share_transactions(api: Api):
    from flowd.api.middleware import SERVICES
    writer = api.app[SERVICES].store.db.writer
    before_tx, before_units = writer.stats.transactions, writer.stats.units
    results = await asyncio.gather(*[
        api.post("/v1/events", json={"name": "load", "contact_id": f"u{i}"}) for i in range(200)])
    assert [status for status, _ in results] == [202] * 200
    ids = {body["id"] for _, body in results}
    assert len(ids) == 200
    units = writer.stats.units - before_units
    transactions = writer.stats.transactions - before_tx
    assert units >= 200
    assert transactions < 200, f"{transactions} transactions for 200 requests"
    stored = set()
    _, page = await api.get("/v1/events?limit=100")
    stored |= {e["id"] for e in page["data"]}
    while page["next_cursor"]:
        _, page = await api.get(f"/v1/events?limit=100&cursor={page['next_cursor']}")
        stored |= {e["id"] for e in page["data"]}
    assert stored == ids
