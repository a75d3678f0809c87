-- Legacy-store migrations (issue #6). Timestamps are ms since the epoch.

-- One row per legacy item a migrator plugin found in one source (the
-- folder or URL a run was given; '' for none) and the host wrote:
-- state 'written' once the new secret (or API token) committed, in the
-- same transaction; 'retired' once the plugin retired the item's unit
-- (renamed the file, deleted the key). A target belongs to one item only,
-- so nothing is migrated twice under two names.
CREATE TABLE migration_ledger (
    plugin      TEXT NOT NULL,
    source      TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    unit        TEXT NOT NULL,
    target      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('written', 'retired')),
    secret_id   INTEGER REFERENCES secret (id) ON DELETE SET NULL,
    written_at  INTEGER NOT NULL,
    retired_at  INTEGER,
    PRIMARY KEY (plugin, source, item_id)
);
CREATE UNIQUE INDEX migration_ledger_target ON migration_ledger (target);
CREATE INDEX migration_ledger_unit ON migration_ledger (plugin, source, unit);

-- Finished runs: a run of the same plugin build with the same options is
-- a no-op unless asked again.
CREATE TABLE migration_run (
    id              INTEGER PRIMARY KEY,
    plugin          TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    options_digest  TEXT NOT NULL,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL,
    migrated        INTEGER NOT NULL,
    skipped         INTEGER NOT NULL,
    host            TEXT NOT NULL
);
CREATE INDEX migration_run_key ON migration_run (plugin, sha256, options_digest);

-- One running migration per plugin across every host sharing the store:
-- a lease, taken and renewed by conditional writes.
CREATE TABLE migration_lock (
    plugin  TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    until   INTEGER NOT NULL
);
