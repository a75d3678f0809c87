-- The access log's history index (issue #24): the keys of every log row by
-- secret, by secret and accessor, and by accessor, so a secret's or an
-- accessor's history is an index range instead of a walk back through the
-- whole log.
--
-- A follower task writes them after the rows are committed, in batches
-- (`audit::log_index`), never in the access-log writer's commit: an index
-- keyed by secret inside the commit halved logged reveals/s (see the note
-- on secret_access_log). `access_log_indexed.seq` is the last log row
-- indexed; rows after it are read from the log itself, newest first.
--
-- The index is derived data: `audit verify` never reads it, and a damaged
-- one can only hide rows from a history page, never add or change one (the
-- rows shown are always read from secret_access_log). On SQLite the same
-- tables live in a file of their own beside the database (attached as
-- `log_index`), so that indexing never takes the database's write lock.
CREATE TABLE access_log_by_secret (
    scope     TEXT NOT NULL,
    name      TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (scope, name, seq)
);
CREATE TABLE access_log_by_secret_accessor (
    scope     TEXT NOT NULL,
    name      TEXT NOT NULL,
    accessor  TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (scope, name, accessor, seq)
);
CREATE TABLE access_log_by_accessor (
    accessor  TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (accessor, seq)
);
CREATE TABLE access_log_indexed (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL
);
INSERT INTO access_log_indexed (id, seq) VALUES (1, 0);
