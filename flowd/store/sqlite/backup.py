"""An online backup: a consistent copy of the database file while a server goes on writing.

SQLite's backup API copies every page in one step, inside one read transaction: in WAL mode
that is a snapshot, which the server's writer never waits for (nor the copy for it). The copy
is written beside its destination under a temporary name, checked with `PRAGMA
integrity_check`, synced, and only then given its name — so PATH is either a whole, verified
database or is not there at all.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from flowd.store.records import StoreError
from flowd.store.sqlite.db import DbSettings


class BackupError(StoreError):
    """The backup could not be made; nothing was left at its destination."""


class DestinationExists(BackupError):
    """The destination exists and overwriting was not asked for."""


@dataclass(frozen=True)
class BackupResult:
    path: str
    bytes: int
    pages: int


def backup(settings: DbSettings, destination: str, *, force: bool = False) -> BackupResult:
    source = Path(settings.path)
    dest = Path(destination)
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if dest.exists() and not force:
        raise DestinationExists(f"{dest} exists; pass --force to overwrite it")
    if dest.exists() and dest.resolve() == source.resolve():
        raise BackupError(f"{dest} is the database itself")
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        pages = _copy(settings, source, partial)
        _verify(partial)
        _sync(partial)
        if force:
            os.replace(partial, dest)
        else:
            try:
                os.link(partial, dest)   # refuses, unlike a rename, if PATH appeared meanwhile
            except FileExistsError:
                raise DestinationExists(f"{dest} exists; pass --force to overwrite it") from None
        _sync(dest.parent)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
    return BackupResult(str(dest), dest.stat().st_size, pages)


def _copy(settings: DbSettings, source: Path, partial: Path) -> int:
    src = sqlite3.connect(source, isolation_level=None)
    try:
        src.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
        partial.unlink(missing_ok=True)
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            src.backup(dst)   # pages=-1: all of it in one step, one snapshot
            return dst.execute("PRAGMA page_count").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()


def _verify(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        # The copy keeps WAL mode; its WAL is folded back in so the file stands alone.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    if problems != ["ok"]:
        raise BackupError("the copy failed its integrity check: " + "; ".join(problems[:5]))


def _sync(path: Path) -> None:
    """fsync a file, or a directory (so that a name linked into it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
