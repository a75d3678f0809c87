-- API tokens (`kw_<id>_<secret>`): only a SHA-256 of the whole token is
-- stored; `id` is the public half, used to find the row, so checking a token
-- is one primary-key read and a constant-time compare. Revoked tokens keep
-- their row (who had access, and until when).
CREATE TABLE api_token (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('operator', 'resolver')),
    hash          BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
