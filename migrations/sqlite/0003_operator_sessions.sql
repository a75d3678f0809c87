-- Operator sessions of the dashboard. The cookie holds 32 random bytes;
-- only their SHA-256 (hex) is stored, so a copy of the database cannot be
-- replayed as a cookie. Rows live in the database, not in one process, so
-- every host sharing it honours a sign-in and a sign-out alike.
CREATE TABLE operator_session (
    id_hash     TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX operator_session_expires ON operator_session (expires_at);

-- One-time sign-in links (`keyward serve --dev`): SHA-256 (hex) of the
-- link's secret; used_at is set by the one UPDATE that consumes it, so a
-- link signs in once even with several hosts racing.
CREATE TABLE login_link (
    hash        TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
