"""The database schema as ordered, versioned migrations.

`schema_migrations` records which versions are applied. Each migration runs in its own
`BEGIN IMMEDIATE` transaction together with its bookkeeping row, so a crash mid-migration leaves
the previous version intact, and re-running `migrate` is a no-op. Never edit a released
migration: append a new one.

A migration marked `outside_transaction` runs statements SQLite refuses inside a transaction
(VACUUM): they run on their own, then the bookkeeping row is written in a transaction of its
own. Such statements must be idempotent: a crash between the two runs them again.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from flowd.clock import Clock
from flowd.store.records import StoreError


class Migration(NamedTuple):
    version: int
    name: str
    sql: str
    outside_transaction: bool = False


MIGRATIONS: list[Migration] = [
    Migration(1, "projects, keys, contacts, events", """
        CREATE TABLE projects (
            id          TEXT PRIMARY KEY,
            created_at  INTEGER NOT NULL
        );
        INSERT INTO projects (id, created_at) VALUES ('default', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));

        CREATE TABLE api_keys (
            seq         INTEGER PRIMARY KEY,
            id          TEXT NOT NULL UNIQUE,
            project_id  TEXT NOT NULL REFERENCES projects(id),
            role        TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer', 'ingest')),
            name        TEXT NOT NULL DEFAULT '',
            key_hash    TEXT NOT NULL UNIQUE,   -- hex SHA-256 of the key; the key itself is never stored
            lookup      TEXT NOT NULL,          -- first 16 hex digits of key_hash, the index to find it by
            prefix      TEXT NOT NULL,          -- first characters, to recognise a key in listings
            created_at  INTEGER NOT NULL,
            revoked_at  INTEGER
        );
        CREATE INDEX api_keys_project ON api_keys (project_id, seq);
        CREATE INDEX api_keys_lookup ON api_keys (lookup);

        CREATE TABLE contacts (
            seq         INTEGER PRIMARY KEY,
            project_id  TEXT NOT NULL REFERENCES projects(id),
            id          TEXT NOT NULL,
            email       TEXT,
            phone       TEXT,
            timezone    TEXT,
            traits      TEXT NOT NULL DEFAULT '{}',
            tags        TEXT NOT NULL DEFAULT '[]',
            subscribed  TEXT NOT NULL DEFAULT '{"email":true,"sms":true,"push":true}',
            push_tokens TEXT NOT NULL DEFAULT '[]',
            created_at  INTEGER NOT NULL,
            updated_at  INTEGER NOT NULL,
            UNIQUE (project_id, id)
        );
        CREATE INDEX contacts_email ON contacts (project_id, email) WHERE email IS NOT NULL;
        CREATE INDEX contacts_project ON contacts (project_id, seq);

        CREATE TABLE events (
            seq         INTEGER PRIMARY KEY,
            id          TEXT NOT NULL UNIQUE,
            project_id  TEXT NOT NULL REFERENCES projects(id),
            name        TEXT NOT NULL,
            contact_id  TEXT,
            properties  TEXT NOT NULL,
            timestamp   INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            message_id  TEXT,
            result      TEXT NOT NULL           -- {"runs_started": [...], "runs_resumed": [...]}
        );
        CREATE UNIQUE INDEX events_message_id ON events (project_id, message_id)
            WHERE message_id IS NOT NULL;
        CREATE INDEX events_project ON events (project_id, seq);
        CREATE INDEX events_name ON events (project_id, name, seq);
        CREATE INDEX events_contact ON events (project_id, contact_id, seq);
    """),
    Migration(2, "workflows, versions, runs, run steps, event waits, webhook secrets", """
        CREATE TABLE workflows (
            seq         INTEGER PRIMARY KEY,
            id          TEXT NOT NULL UNIQUE,
            project_id  TEXT NOT NULL REFERENCES projects(id),
            name        TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            status      TEXT NOT NULL CHECK (status IN ('draft', 'active', 'paused', 'archived')),
            version     INTEGER NOT NULL,       -- the newest version; new runs start on it
            created_at  INTEGER NOT NULL,
            updated_at  INTEGER NOT NULL
        );
        CREATE INDEX workflows_project ON workflows (project_id, seq);

        CREATE TABLE workflow_versions (
            workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
            version     INTEGER NOT NULL,
            definition  TEXT NOT NULL,          -- {"trigger", "settings", "steps"}, normalized
            issues      TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            PRIMARY KEY (workflow_id, version)
        ) WITHOUT ROWID;

        CREATE TABLE runs (
            seq              INTEGER PRIMARY KEY,
            id               TEXT NOT NULL UNIQUE,
            project_id       TEXT NOT NULL,
            workflow_id      TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
            workflow_version INTEGER NOT NULL,
            contact_id       TEXT,
            status           TEXT NOT NULL CHECK (status IN ('pending', 'running', 'waiting',
                                 'paused', 'completed', 'failed', 'cancelled')),
            current_step_id  TEXT,
            due_at           INTEGER,           -- when the scheduler should take it; NULL: not by time
            wait             TEXT,              -- JSON: how it waits
            wake             TEXT,              -- JSON: why a waiting step ended (event, timer)
            trigger          TEXT NOT NULL,
            vars             TEXT NOT NULL DEFAULT '{}',
            attempt          INTEGER NOT NULL DEFAULT 1,   -- of the current step
            steps_executed   INTEGER NOT NULL DEFAULT 0,
            trace_len        INTEGER NOT NULL DEFAULT 0,
            error            TEXT,
            exit_reason      TEXT,
            parent_run_id    TEXT,
            created_at       INTEGER NOT NULL,
            updated_at       INTEGER NOT NULL,
            completed_at     INTEGER
        );
        CREATE INDEX runs_due ON runs (due_at) WHERE due_at IS NOT NULL;
        CREATE INDEX runs_running ON runs (status) WHERE status = 'running';  -- recovery at start
        CREATE INDEX runs_project ON runs (project_id, seq);
        CREATE INDEX runs_workflow ON runs (workflow_id, seq);
        CREATE INDEX runs_workflow_status ON runs (workflow_id, status, seq);
        CREATE INDEX runs_contact ON runs (project_id, contact_id, seq);  -- a contact's runs: reentry, exit_on, lists
        CREATE INDEX runs_status ON runs (project_id, status, seq);

        CREATE TABLE run_steps (
            run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            seq         INTEGER NOT NULL,
            step_id     TEXT NOT NULL,
            type        TEXT NOT NULL,
            status      TEXT NOT NULL,         -- ok | failed | skipped | waiting
            outcome     TEXT,
            branch      TEXT,
            attempt     INTEGER NOT NULL,
            visit       INTEGER NOT NULL,
            started_at  INTEGER NOT NULL,
            finished_at INTEGER,
            input       TEXT,
            output      TEXT,
            error       TEXT,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;

        CREATE TABLE event_waits (
            run_id      TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
            project_id  TEXT NOT NULL,
            contact_id  TEXT,
            event_name  TEXT NOT NULL,          -- a name pattern
            wildcard    INTEGER NOT NULL,       -- 1 when event_name has a *
            filter      TEXT,
            since       INTEGER NOT NULL
        );
        CREATE INDEX event_waits_exact ON event_waits (project_id, event_name, contact_id);
        CREATE INDEX event_waits_wildcard ON event_waits (project_id, contact_id) WHERE wildcard = 1;

        CREATE TABLE webhook_secrets (
            project_id  TEXT NOT NULL REFERENCES projects(id),
            secret      TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            expires_at  INTEGER,               -- set on the old secret when rotated
            PRIMARY KEY (project_id, secret)
        ) WITHOUT ROWID;
    """),
    # Every run entered and left runs_running once more than it needed: recovery at start
    # finds `running` runs through runs_status (project_id, status, seq) just as fast.
    Migration(3, "recovery uses runs_status", """
        DROP INDEX runs_running;
    """),
    Migration(4, "templates, messages, bounces, unsubscribe tokens, server keys", """
        CREATE TABLE templates (
            seq         INTEGER PRIMARY KEY,
            id          TEXT NOT NULL UNIQUE,
            project_id  TEXT NOT NULL REFERENCES projects(id),
            name        TEXT NOT NULL,
            channel     TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
            content     TEXT NOT NULL,          -- JSON: the channel's fields (subject, html, …)
            created_at  INTEGER NOT NULL,
            updated_at  INTEGER NOT NULL,
            UNIQUE (project_id, name)
        );
        CREATE INDEX templates_project ON templates (project_id, seq);

        CREATE TABLE messages (
            seq          INTEGER PRIMARY KEY,
            id           TEXT NOT NULL UNIQUE,   -- from (run, step, visit): a re-run finds it
            project_id   TEXT NOT NULL REFERENCES projects(id),
            channel      TEXT NOT NULL,
            status       TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed', 'bounced',
                                                         'suppressed')),
            contact_id   TEXT,
            recipients   TEXT NOT NULL,          -- JSON array of addresses
            subject      TEXT,
            body         TEXT,                   -- the text part (or the html, without one)
            content      TEXT NOT NULL,          -- JSON: everything needed to send it again
            provider_message_id TEXT,
            run_id       TEXT,
            step_id      TEXT,
            workflow_id  TEXT,
            error        TEXT,                   -- JSON {"code", "message"}
            created_at   INTEGER NOT NULL,
            sent_at      INTEGER
        );
        CREATE INDEX messages_project ON messages (project_id, seq);
        CREATE INDEX messages_contact ON messages (project_id, contact_id, seq);
        CREATE INDEX messages_run ON messages (project_id, run_id, seq);
        -- Transactional messages still to send (after a crash, at start).
        CREATE INDEX messages_sending ON messages (seq) WHERE status = 'sending';

        CREATE TABLE bounces (
            project_id  TEXT NOT NULL REFERENCES projects(id),
            address     TEXT NOT NULL,           -- lower-cased
            reason      TEXT NOT NULL,
            message_id  TEXT,
            created_at  INTEGER NOT NULL,
            PRIMARY KEY (project_id, address)
        ) WITHOUT ROWID;

        CREATE TABLE unsubscribe_tokens (
            token_hash  TEXT PRIMARY KEY,        -- SHA-256 of the token; the token is a MAC
            project_id  TEXT NOT NULL REFERENCES projects(id),
            contact_id  TEXT NOT NULL,
            channel     TEXT NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE server_keys (
            name        TEXT PRIMARY KEY,        -- what the key signs, e.g. 'links'
            key         BLOB NOT NULL,
            created_at  INTEGER NOT NULL
        ) WITHOUT ROWID;
    """),
    Migration(5, "approvals, child runs", """
        CREATE TABLE approvals (
            id           TEXT PRIMARY KEY,       -- from (run, step, visit)
            project_id   TEXT NOT NULL REFERENCES projects(id),
            run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            workflow_id  TEXT NOT NULL,
            step_id      TEXT NOT NULL,
            contact_id   TEXT,
            message      TEXT NOT NULL,
            approvers    TEXT NOT NULL,          -- JSON array of addresses
            created_at   INTEGER NOT NULL,
            expires_at   INTEGER NOT NULL,
            decided_at   INTEGER,
            decision     TEXT CHECK (decision IN ('approved', 'rejected')),
            comment      TEXT,
            decided_by   TEXT
        ) WITHOUT ROWID;
        CREATE INDEX approvals_run ON approvals (run_id);

        -- One per link handed out: the approval_url's, and one per approver (whose decision
        -- then names them). Only the token's SHA-256 is kept.
        CREATE TABLE approval_tokens (
            token_hash   TEXT PRIMARY KEY,
            approval_id  TEXT NOT NULL REFERENCES approvals(id) ON DELETE CASCADE,
            approver     TEXT
        ) WITHOUT ROWID;
        CREATE INDEX approval_tokens_approval ON approval_tokens (approval_id);

        CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
    """),
    # A hook URL's token is a MAC over (workflow id, generation), never stored: rotating bumps
    # the generation, and every older token stops matching.
    Migration(6, "webhook trigger tokens", """
        ALTER TABLE workflows ADD COLUMN hook_generation INTEGER NOT NULL DEFAULT 1;
    """),
    Migration(7, "schedule state", """
        CREATE TABLE schedule_state (
            workflow_id TEXT PRIMARY KEY REFERENCES workflows(id) ON DELETE CASCADE,
            -- Fires are counted after this instant: the last fire's scheduled time, or when
            -- the schedule began (first activation, a changed cron or time zone).
            since       INTEGER NOT NULL
        ) WITHOUT ROWID;
    """),
    Migration(8, "bulk jobs", """
        CREATE TABLE bulk_jobs (
            seq              INTEGER PRIMARY KEY,
            id               TEXT NOT NULL UNIQUE,
            project_id       TEXT NOT NULL REFERENCES projects(id),
            workflow_id      TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
            status           TEXT NOT NULL CHECK (status IN ('approval', 'running', 'finished',
                                 'cancelled', 'failed')),
            source           TEXT NOT NULL,     -- where its contacts come from: 'contact_ids'
            source_ref       TEXT,              -- the source's object (an audience id), if any
            payload          TEXT NOT NULL,     -- the trigger event's properties of every run
            require_approval INTEGER NOT NULL,
            total            INTEGER NOT NULL,
            started          INTEGER NOT NULL DEFAULT 0,
            skipped          INTEGER NOT NULL DEFAULT 0,
            cursor           INTEGER NOT NULL DEFAULT 0,   -- the source's last position done
            error            TEXT,              -- JSON {"code", "message"} of a failed job
            created_at       INTEGER NOT NULL,
            updated_at       INTEGER NOT NULL,
            finished_at      INTEGER
        );
        CREATE INDEX bulk_jobs_workflow ON bulk_jobs (workflow_id, seq);
        -- The processor's work list, at start and whenever it looks for more.
        CREATE INDEX bulk_jobs_running ON bulk_jobs (seq) WHERE status = 'running';

        -- A job's own contact list, in the order given (duplicates dropped), read by position.
        CREATE TABLE bulk_job_contacts (
            job_id      TEXT NOT NULL REFERENCES bulk_jobs(id) ON DELETE CASCADE,
            position    INTEGER NOT NULL,       -- 1, 2, …
            contact_id  TEXT NOT NULL,
            PRIMARY KEY (job_id, position)
        ) WITHOUT ROWID;
    """),
    Migration(9, "alert webhooks", """
        CREATE TABLE alert_subscriptions (
            seq         INTEGER PRIMARY KEY,
            id          TEXT NOT NULL UNIQUE,
            project_id  TEXT NOT NULL REFERENCES projects(id),
            url         TEXT NOT NULL,
            events      TEXT NOT NULL,          -- JSON array of event types
            secret      TEXT NOT NULL,          -- whsec_…: signs its deliveries
            created_at  INTEGER NOT NULL
        );
        CREATE INDEX alert_subscriptions_project ON alert_subscriptions (project_id, seq);

        -- The outbox: recorded in the unit of work whose outcome it reports.
        CREATE TABLE alert_deliveries (
            seq              INTEGER PRIMARY KEY,
            id               TEXT NOT NULL UNIQUE,   -- also its webhook-id
            subscription_id  TEXT NOT NULL REFERENCES alert_subscriptions(id) ON DELETE CASCADE,
            project_id       TEXT NOT NULL,
            event_type       TEXT NOT NULL,
            body             TEXT NOT NULL,          -- the exact JSON every attempt sends
            status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
            created_at       INTEGER NOT NULL,
            next_attempt_at  INTEGER,                -- NULL once it is no longer pending
            attempts         INTEGER NOT NULL DEFAULT 0,
            last_status_code INTEGER,
            last_error       TEXT,
            delivered_at     INTEGER
        );
        CREATE INDEX alert_deliveries_subscription ON alert_deliveries (subscription_id, seq);
        CREATE INDEX alert_deliveries_pending ON alert_deliveries (next_attempt_at)
            WHERE status = 'pending';

        -- When each workflow was last said to be failing: at most once an hour, across restarts.
        CREATE TABLE workflow_alerts (
            workflow_id TEXT PRIMARY KEY REFERENCES workflows(id) ON DELETE CASCADE,
            failing_at  INTEGER NOT NULL
        ) WITHOUT ROWID;

        -- A failed run's check of its workflow's failure rate over the last hour reads only this.
        CREATE INDEX runs_workflow_ended ON runs (workflow_id, completed_at, status)
            WHERE completed_at IS NOT NULL;
    """),
    # Retention deletes old rows; with incremental auto-vacuum the pages they freed can be
    # handed back to the file system a few at a time (PRAGMA incremental_vacuum) instead of
    # staying in the file for ever. A database made before this has auto_vacuum NONE, which
    # only a VACUUM (a full rewrite, outside any transaction) can change: one-off, at upgrade.
    # New databases get the mode before their first table (db.configure) and skip the rewrite
    # cost here, as VACUUM of a fresh file is instant.
    Migration(10, "incremental auto-vacuum", """
        PRAGMA auto_vacuum = INCREMENTAL;
        VACUUM;
    """, outside_transaction=True),
    # Retention finds the oldest ended runs without scanning the waiting ones, and /metrics
    # counts messages by channel and status from an index instead of the table.
    Migration(11, "retention and metrics indexes", """
        CREATE INDEX runs_ended ON runs (completed_at)
            WHERE status IN ('completed', 'failed', 'cancelled');
        CREATE INDEX messages_channel_status ON messages (channel, status);
    """),
    # A version's runs, for its funnel (GET /v1/workflows/{id}/stats) and for moving its
    # waiting runs to another version: runs_workflow would read every run of the workflow.
    # workflow_version changes only when runs are moved, so steps pay nothing for it. The
    # trace side needs no index: run_steps' primary key (run_id, seq) finds a run's entries.
    Migration(12, "runs by workflow version", """
        CREATE INDEX runs_workflow_version ON runs (workflow_id, workflow_version);
    """),
    # The builder page's sign-in: a cookie's token finds its row by hash (the primary key);
    # expired rows are found by expires_at to be deleted a few at a time.
    Migration(13, "browser sessions", """
        CREATE TABLE sessions (
            token_hash  TEXT PRIMARY KEY,   -- hex SHA-256 of the cookie's token; the token is never stored
            key_id      TEXT NOT NULL REFERENCES api_keys(id),
            project_id  TEXT NOT NULL REFERENCES projects(id),
            role        TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer', 'ingest')),
            created_at  INTEGER NOT NULL,
            expires_at  INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX sessions_expires ON sessions (expires_at);
    """),
    # GET /v1/health/delivery: a project's messages of the last 7 days and its runs that ended
    # in the last day, each read as a range of one covering index (never a table scan).
    Migration(14, "delivery health indexes", """
        CREATE INDEX messages_recent ON messages (project_id, created_at, channel, status);
        CREATE INDEX runs_project_ended ON runs (project_id, completed_at, workflow_id, status)
            WHERE completed_at IS NOT NULL;
    """),
    # The send policy's frequency caps: one contact's messages on one channel since a time, as
    # a range of a covering index that holds only the messages that count (sent or being sent
    # by a run), so a capped step reads at most `max` index entries before it sends. status
    # and run_id are there only so that SQLite reads none of the table.
    Migration(15, "send policy index", """
        CREATE INDEX messages_sends
            ON messages (project_id, contact_id, channel, created_at, id, status, run_id)
            WHERE status IN ('sending', 'sent') AND run_id IS NOT NULL;
    """),
    # Audiences are filters evaluated when asked, so only the definitions are stored. No index
    # on contacts pays for them: a filter reads any trait, and one pass over a project's
    # contacts (contacts_project) decides every row (see flowd.store.sqlite.audiences).
    Migration(16, "audiences", """
        CREATE TABLE audiences (
            seq         INTEGER PRIMARY KEY,
            id          TEXT NOT NULL UNIQUE,
            project_id  TEXT NOT NULL REFERENCES projects(id),
            name        TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            filter      TEXT NOT NULL,          -- JSON: a condition over the contact
            created_at  INTEGER NOT NULL,
            updated_at  INTEGER NOT NULL,
            UNIQUE (project_id, name)
        );
        CREATE INDEX audiences_project ON audiences (project_id, seq);
    """),
    # A project's own language model (PUT /v1/settings/ai): one row per project. The key is
    # kept as given (like the webhook secrets beside it), and no API answer ever shows it.
    Migration(17, "project ai settings", """
        CREATE TABLE ai_settings (
            project_id  TEXT PRIMARY KEY REFERENCES projects(id),
            provider    TEXT NOT NULL,   -- '' (the server's), 'ollama' or 'openai'
            base_url    TEXT NOT NULL,
            model       TEXT NOT NULL,
            api_key     TEXT NOT NULL,
            updated_at  INTEGER NOT NULL
        ) WITHOUT ROWID;
    """),
]

LATEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(StoreError):
    """The database was made by a newer flowd."""


def applied_version(conn: sqlite3.Connection) -> int:
    conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)""")
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return row[0] or 0


def migrate(conn: sqlite3.Connection) -> list[Migration]:
    """Bring the database to LATEST_VERSION; returns the migrations applied now."""
    current = applied_version(conn)
    if current > LATEST_VERSION:
        raise SchemaTooNew(f"database schema version {current} is newer than this flowd "
                           f"understands ({LATEST_VERSION}); upgrade flowd")
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        if migration.outside_transaction:
            if _apply_outside_transaction(conn, migration):
                applied.append(migration)
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check inside the lock: another process may have migrated meanwhile.
            if applied_version(conn) >= migration.version:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                         (migration.version, migration.name, Clock().now_ms()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(migration)
    return applied


def _apply_outside_transaction(conn: sqlite3.Connection, migration: Migration) -> bool:
    """Run the migration's statements on their own (VACUUM takes its own locks), then record
    it; False when another process got there first."""
    if applied_version(conn) >= migration.version:
        return False
    for statement in _statements(migration.sql):
        conn.execute(statement)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if applied_version(conn) >= migration.version:
            conn.execute("ROLLBACK")
            return False
        conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                     (migration.version, migration.name, Clock().now_ms()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True


def _statements(sql: str) -> list[str]:
    # executescript() would COMMIT our transaction first; split on complete statements instead.
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
