-- Delivery files (`import`, the inbox): one row per file name and content hash, with how many
-- of its lines are committed, so a re-import skips a finished file and resumes an interrupted
-- one after its last committed chunk.
CREATE TABLE imported_files (
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    lines_committed INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (name, sha256)
) WITHOUT ROWID;

-- DUNS that D&B refused to monitor, from EXCEPTIONS files (one row per line).
CREATE TABLE dnb_exceptions (
    id INTEGER PRIMARY KEY,
    file_name TEXT NOT NULL,
    line INTEGER NOT NULL,
    duns TEXT NOT NULL,
    code TEXT NOT NULL,
    information TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    UNIQUE (file_name, line)
);
CREATE INDEX dnb_exceptions_duns ON dnb_exceptions (duns);

-- The content-dedupe key gains the DUNS between the delivery time and the hash: the same
-- uniqueness (the canonical JSON, so its hash, includes the DUNS), but notifications that
-- share one `deliveryTimeStamp` (a whole D&B delivery often does) and come grouped by DUNS
-- in ascending order, as in D&B's files, now insert at the right edge of the index instead
-- of at random places across it.
DROP INDEX notifications_content;
CREATE UNIQUE INDEX notifications_content ON notifications (delivered_at, duns, content_hash);
