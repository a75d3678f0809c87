-- Superseded values of each secret, kept for history and rollback (issue
-- #19). The current value stays in `secret`, so a render is still one
-- indexed read of one row. A kept version is sealed on its own with the
-- associated data (scope, name, version), like the current one, so a
-- ciphertext moved to another version or secret does not open. A version
-- past the secret's limit is destroyed: its ciphertext is removed and the
-- metadata row stays, with destroyed_at set.
CREATE TABLE secret_version (
    secret_id     INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    key_id        TEXT NOT NULL,
    nonce         BLOB,
    ciphertext    BLOB,
    tag           BLOB,
    -- When the value was written (the secret's rotated_at then) and by whom.
    written_at    INTEGER NOT NULL,
    written_by    TEXT NOT NULL,
    -- When a newer value replaced it.
    superseded_at INTEGER NOT NULL,
    destroyed_at  INTEGER,
    PRIMARY KEY (secret_id, version)
);
CREATE INDEX secret_version_by_key ON secret_version (key_id);

-- Who wrote the current value ('' for values written before this migration).
ALTER TABLE secret ADD COLUMN written_by TEXT NOT NULL DEFAULT '';
