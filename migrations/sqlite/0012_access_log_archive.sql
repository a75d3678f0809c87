-- The archive mark (issue #24): the last access-log row moved to an archive
-- file by `keyward audit archive` (or serve's retention), with its MAC, signed
-- like a checkpoint by a key derived from the log secret. No row: nothing
-- archived yet.
--
-- Rows up to the mark may be deleted, and only those: the log stays
-- append-only above it. The mark only moves forward and is never removed.
-- Every verify of the live log starts from the mark after checking its
-- signature, so moving it by hand (to hide rows behind it) is found.
CREATE TABLE audit_archive (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    seq      INTEGER NOT NULL,
    mac      BLOB NOT NULL,
    time_ms  INTEGER NOT NULL,
    sig      BLOB NOT NULL
);
CREATE TRIGGER audit_archive_forward BEFORE UPDATE ON audit_archive
WHEN NEW.seq < OLD.seq
BEGIN SELECT RAISE(ABORT, 'the archive mark only moves forward'); END;
CREATE TRIGGER audit_archive_no_delete BEFORE DELETE ON audit_archive
BEGIN SELECT RAISE(ABORT, 'the archive mark cannot be removed'); END;

DROP TRIGGER secret_access_log_no_delete;
CREATE TRIGGER secret_access_log_no_delete BEFORE DELETE ON secret_access_log
WHEN OLD.seq > COALESCE((SELECT seq FROM audit_archive WHERE id = 1), 0)
BEGIN SELECT RAISE(ABORT, 'secret_access_log is append-only: only rows archived by keyward audit archive may be deleted'); END;
