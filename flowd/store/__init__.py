"""The store: the only package that speaks SQL. `Database` runs verbs from the modules here
(`contacts`, `events`, `keys`) on the right connection: reads on a reader, writes as units of
the group commit."""

from flowd.store.db import Database, DbSettings, connect_sync, transaction

__all__ = ["Database", "DbSettings", "connect_sync", "transaction"]
