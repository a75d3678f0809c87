-- The access log's history index (issue #24): one small row per log row,
-- keyed by secret and by accessor, so a secret's or an accessor's history
-- is an index lookup instead of a walk back through the whole log.
--
-- It is written by a follower task after the rows are committed, in large
-- batches (`audit::log_index`), never in the access-log writer's commit:
-- an index keyed by secret inside the commit halved logged reveals/s (see
-- the note on secret_access_log). `access_log_indexed.seq` is the last log
-- row indexed; rows after it are read from the log itself, newest first.
--
-- The index is derived data: `audit verify` never reads it, and a damaged
-- one can only hide rows from a history page, never add or change one (the
-- rows shown are always read from secret_access_log).
CREATE TABLE access_log_key (
    seq       INTEGER PRIMARY KEY,
    scope     TEXT NOT NULL,
    name      TEXT NOT NULL,
    accessor  TEXT NOT NULL
);
CREATE INDEX access_log_key_by_secret ON access_log_key (scope, name, seq);
CREATE INDEX access_log_key_by_secret_accessor ON access_log_key (scope, name, accessor, seq);
CREATE INDEX access_log_key_by_accessor ON access_log_key (accessor, seq);

CREATE TABLE access_log_indexed (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL
);
INSERT INTO access_log_indexed (id, seq) VALUES (1, 0);
