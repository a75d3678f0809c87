-- Keyward foundation schema (PostgreSQL). Timestamps are Unix milliseconds (UTC).

-- Sealed values the host itself needs: the keyring canary (proves the master
-- key opens this store) and the access-log secret (the audit chain key is
-- derived from it). Both are re-sealed by `keyward key rotate`.
CREATE TABLE keyring (
    purpose     TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    nonce       BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    tag         BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE secret (
    id          BIGSERIAL PRIMARY KEY,
    scope       TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    version     BIGINT NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    tag         BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    rotated_at  BIGINT NOT NULL,
    UNIQUE (scope, name)
);
CREATE INDEX secret_by_name ON secret (name);
CREATE INDEX secret_by_key ON secret (key_id);

-- Append-only, hash-chained: seq is assigned contiguously from audit_head.
CREATE TABLE secret_access_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    accessor  TEXT NOT NULL,
    reason    TEXT NOT NULL,
    action    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    scope     TEXT NOT NULL,
    name      TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT '',
    mac       BYTEA NOT NULL
);
-- Deliberately no secondary index: every read of the log is by seq, and an
-- index keyed by secret scatters each group commit over dozens of pages
-- (measured: it halved logged reveals/s; see docs/benchmarks.md).

CREATE FUNCTION keyward_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'secret_access_log is append-only';
END;
$$;
CREATE TRIGGER secret_access_log_no_update BEFORE UPDATE OR DELETE ON secret_access_log
    FOR EACH ROW EXECUTE FUNCTION keyward_append_only();
CREATE TRIGGER secret_access_log_no_truncate BEFORE TRUNCATE ON secret_access_log
    FOR EACH STATEMENT EXECUTE FUNCTION keyward_append_only();

-- The chain head: the last seq and MAC. Every writer locks this row first, so
-- appends from several processes (or hosts) serialise.
-- secrets_generation is bumped by a trigger on every change to `secret`, by any
-- path (Keyward, another host, a manual edit), so a host may cache sealed rows
-- and check under the head lock that they are still current.
CREATE TABLE audit_head (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    seq                 BIGINT NOT NULL,
    mac                 BYTEA NOT NULL,
    touched_at          BIGINT NOT NULL,
    secrets_generation  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO audit_head (id, seq, mac, touched_at) VALUES (1, 0, decode(repeat('00', 32), 'hex'), 0);

CREATE FUNCTION keyward_secret_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_head SET secrets_generation = secrets_generation + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER secret_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON secret
    FOR EACH STATEMENT EXECUTE FUNCTION keyward_secret_generation();
