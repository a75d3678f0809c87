-- Soft delete, undelete and per-secret version limits (issue #19).
--
-- A deleted secret keeps its row (and its kept versions) with deleted_at
-- set: renders and listings skip it, an operator can undelete it until the
-- retention window passes, and then the server's purge removes the row and
-- every version's ciphertext. Writing a new value to a deleted secret makes
-- it live again as its next version.
ALTER TABLE secret ADD COLUMN deleted_at INTEGER;
ALTER TABLE secret ADD COLUMN deleted_by TEXT;
-- Versions kept for this secret (the current one included; 0 keeps all);
-- NULL follows the server's KEYWARD_MAX_VERSIONS.
ALTER TABLE secret ADD COLUMN max_versions INTEGER;
-- The purge looks for deletions older than the retention window.
CREATE INDEX secret_deleted ON secret (deleted_at) WHERE deleted_at IS NOT NULL;

-- Which version of its secret a migrated item wrote, so an import can be
-- rolled back to the value before it.
ALTER TABLE migration_ledger ADD COLUMN version INTEGER;
