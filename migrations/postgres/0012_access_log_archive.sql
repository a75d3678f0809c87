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
    seq      BIGINT NOT NULL,
    mac      BYTEA NOT NULL,
    time_ms  BIGINT NOT NULL,
    sig      BYTEA NOT NULL
);
CREATE FUNCTION keyward_archive_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the archive mark cannot be removed';
    END IF;
    IF NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'the archive mark only moves forward';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_archive_forward BEFORE UPDATE OR DELETE ON audit_archive
    FOR EACH ROW EXECUTE FUNCTION keyward_archive_forward();
CREATE TRIGGER audit_archive_no_truncate BEFORE TRUNCATE ON audit_archive
    FOR EACH STATEMENT EXECUTE FUNCTION keyward_archive_forward();

DROP TRIGGER secret_access_log_no_update ON secret_access_log;
CREATE TRIGGER secret_access_log_no_update BEFORE UPDATE ON secret_access_log
    FOR EACH ROW EXECUTE FUNCTION keyward_append_only();
CREATE FUNCTION keyward_delete_archived_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq > COALESCE((SELECT seq FROM audit_archive WHERE id = 1), 0) THEN
        RAISE EXCEPTION 'secret_access_log is append-only: only rows archived by keyward audit archive may be deleted';
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER secret_access_log_no_delete BEFORE DELETE ON secret_access_log
    FOR EACH ROW EXECUTE FUNCTION keyward_delete_archived_only();
