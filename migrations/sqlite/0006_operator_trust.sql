-- Operator trust (issue #17): refreshes that never lose a token, sign-ins
-- bound to the browser, allow-list entries pinned to the forge's
-- immutable account id. Timestamps are ms since the epoch.

-- The forge's answer to a refresh, sealed under the master key (AAD: forge
-- type, generation, attempt) and stored at egress BEFORE the plugin sees
-- it. The refresh token it answered is spent at the forge, so this row is
-- the only copy of the new one until the token row moves past
-- `generation`; any host finishes the refresh from it (docs/credentials.md).
CREATE TABLE oauth_refresh_answer (
    forge_type  TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    attempt     TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    tag         BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (forge_type, generation, attempt)
);

-- The SHA-256 (hex) of the pre-auth cookie's nonce: a callback's state is
-- accepted only from the browser holding that cookie.
ALTER TABLE oauth_pending ADD COLUMN browser_hash TEXT;

-- A login-name allow-list entry is pinned to the account id seen at its
-- first successful sign-in (login lower-cased, as forges compare them).
CREATE TABLE operator_login_pin (
    forge_type  TEXT NOT NULL,
    login       TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    pinned_at   INTEGER NOT NULL,
    PRIMARY KEY (forge_type, login)
);
