-- Keyward foundation schema (SQLite). Timestamps are Unix milliseconds (UTC).

-- Sealed values the host itself needs: the keyring canary (proves the master
-- key opens this store) and the access-log secret (the audit chain key is
-- derived from it). Both are re-sealed by `keyward key rotate`.
CREATE TABLE keyring (
    purpose     TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    tag         BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE secret (
    id          INTEGER PRIMARY KEY,
    scope       TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    version     INTEGER NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    tag         BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    rotated_at  INTEGER NOT NULL,
    UNIQUE (scope, name)
);
CREATE INDEX secret_by_name ON secret (name);
CREATE INDEX secret_by_key ON secret (key_id);

-- Append-only, hash-chained: seq is assigned contiguously from audit_head.
CREATE TABLE secret_access_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    accessor  TEXT NOT NULL,
    reason    TEXT NOT NULL,
    action    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    scope     TEXT NOT NULL,
    name      TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT '',
    mac       BLOB NOT NULL
);
-- Deliberately no secondary index: every read of the log is by seq, and an
-- index keyed by secret scatters each group commit over dozens of pages
-- (measured: it halved logged reveals/s; see docs/benchmarks.md).

CREATE TRIGGER secret_access_log_no_update BEFORE UPDATE ON secret_access_log
BEGIN SELECT RAISE(ABORT, 'secret_access_log is append-only'); END;
CREATE TRIGGER secret_access_log_no_delete BEFORE DELETE ON secret_access_log
BEGIN SELECT RAISE(ABORT, 'secret_access_log is append-only'); END;

-- The chain head: the last seq and MAC. Every writer locks this row first, so
-- appends from several processes (or hosts) serialise.
-- secrets_generation is bumped by triggers on every change to `secret`, by any
-- path (Keyward, another host, a manual edit), so a host may cache sealed rows
-- and check under the head lock that they are still current.
CREATE TABLE audit_head (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    seq                 INTEGER NOT NULL,
    mac                 BLOB NOT NULL,
    touched_at          INTEGER NOT NULL,
    secrets_generation  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO audit_head (id, seq, mac, touched_at) VALUES (1, 0, zeroblob(32), 0);

CREATE TRIGGER secret_generation_insert AFTER INSERT ON secret
BEGIN UPDATE audit_head SET secrets_generation = secrets_generation + 1 WHERE id = 1; END;
CREATE TRIGGER secret_generation_update AFTER UPDATE ON secret
BEGIN UPDATE audit_head SET secrets_generation = secrets_generation + 1 WHERE id = 1; END;
CREATE TRIGGER secret_generation_delete AFTER DELETE ON secret
BEGIN UPDATE audit_head SET secrets_generation = secrets_generation + 1 WHERE id = 1; END;
