-- A token may expire: from `expires_at` (Unix milliseconds) on it is refused
-- like a revoked one. NULL: it does not expire (every token made before).
ALTER TABLE api_token ADD COLUMN expires_at BIGINT;
