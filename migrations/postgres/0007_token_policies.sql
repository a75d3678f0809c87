-- A token may expire: from `expires_at` (Unix milliseconds) on it is refused
-- like a revoked one. NULL: it does not expire (every token made before).
ALTER TABLE api_token ADD COLUMN expires_at BIGINT;
-- A rotated token's previous hash stays valid until `previous_until` (Unix
-- milliseconds), the grace period the rotation chose; NULL: none.
ALTER TABLE api_token ADD COLUMN previous_hash BYTEA;
ALTER TABLE api_token ADD COLUMN previous_until BIGINT;
-- A resolver token's policy (JSON, see host/src/auth/policy.rs); NULL: its
-- role's preset, what resolver tokens could always do.
ALTER TABLE api_token ADD COLUMN policy TEXT;
