-- Forge sign-in and agent types (issue #5). Timestamps are ms since the
-- epoch, as everywhere.

-- One row per forge an operator signed in with. Both tokens are sealed
-- like secrets (AAD: forge type + field), never stored in clear.
-- generation moves on every token change; refresh_holder/refresh_until
-- are the lease that lets exactly one host refresh a (single-use)
-- refresh token, taken by a conditional UPDATE on generation.
CREATE TABLE operator_oauth_tokens (
    forge_type          TEXT PRIMARY KEY,
    access_key_id       TEXT NOT NULL,
    access_nonce        BLOB NOT NULL,
    access_ciphertext   BLOB NOT NULL,
    access_tag          BLOB NOT NULL,
    refresh_key_id      TEXT,
    refresh_nonce       BLOB,
    refresh_ciphertext  BLOB,
    refresh_tag         BLOB,
    expires_at          INTEGER,
    scopes              TEXT NOT NULL DEFAULT '',
    account_login       TEXT NOT NULL,
    account_id          TEXT NOT NULL,
    base_url            TEXT NOT NULL,
    generation          INTEGER NOT NULL,
    refresh_holder      TEXT,
    refresh_until       INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- Key/value settings shared by every host; active_forge_type lives here.
CREATE TABLE service_settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Sign-ins in progress: the SHA-256 (hex) of the OAuth state and the PKCE
-- verifier, sealed. used_at is set by the one UPDATE that consumes it.
CREATE TABLE oauth_pending (
    state_hash  TEXT PRIMARY KEY,
    forge_type  TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    tag         BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX oauth_pending_expires ON oauth_pending (expires_at);

-- Agent types (TOK-1): a forge plugin, a base URL and the secret holding
-- the type's token (at scope agent_type:<name>).
CREATE TABLE agent_type (
    name             TEXT PRIMARY KEY,
    forge            TEXT NOT NULL,
    base_url         TEXT NOT NULL,
    token_secret_id  INTEGER REFERENCES secret (id) ON DELETE SET NULL,
    description      TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- Per-instance token overrides.
CREATE TABLE agent_instance (
    id               TEXT PRIMARY KEY,
    agent_type       TEXT NOT NULL REFERENCES agent_type (name) ON DELETE CASCADE,
    token_secret_id  INTEGER REFERENCES secret (id) ON DELETE SET NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX agent_instance_by_type ON agent_instance (agent_type);
