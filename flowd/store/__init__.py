"""The store: the only package that speaks SQL. `Store` (flowd.store.base) is the interface the
rest of flowd uses — units of work over a `Transaction` of named verbs, and the API's reads —
and `SqliteStore` its implementation (flowd.store.sqlite)."""

from flowd.store.base import Claim, Store, Transaction
from flowd.store.records import LastAdminKey, RunPreempted, StoreError
from flowd.store.sqlite import SQLITE_VERSION, SqliteStore, SyncStore
from flowd.store.sqlite.db import DbSettings
from flowd.store.sqlite.probe import Probe
from flowd.store.sqlite.schema import LATEST_VERSION as LATEST_SCHEMA_VERSION
from flowd.store.sqlite.schema import SchemaTooNew

__all__ = ["Claim", "DbSettings", "LATEST_SCHEMA_VERSION", "LastAdminKey", "Probe",
           "RunPreempted", "SQLITE_VERSION", "SchemaTooNew", "SqliteStore", "Store", "StoreError",
           "SyncStore", "Transaction"]
