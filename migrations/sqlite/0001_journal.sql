-- The journal. Times are unix milliseconds (UTC).

CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'processing', 'done', 'skipped', 'dead', 'rejected')),
    reason          TEXT,               -- why skipped, rejected or dead (short word)
    type            TEXT,               -- D&B type; NULL for rejected items of unknown type
    duns            TEXT,               -- NULL for rejected items without a valid DUNS
    delivered_at    INTEGER,            -- D&B deliveryTimeStamp
    received_at     INTEGER NOT NULL,
    webhook_id      TEXT    NOT NULL,   -- the delivery it arrived in
    item_index      INTEGER NOT NULL,   -- its position in that delivery's body
    content_hash    BLOB,               -- SHA-256 of the canonical JSON; NULL for rejected items
    raw             TEXT    NOT NULL,   -- canonical JSON (the line as received for unparsable NDJSON)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,            -- NULL: due now; set while waiting for a retry
    first_failed_at INTEGER,            -- start of the current run of failures
    last_error      TEXT,
    claimed_by      TEXT,
    lease_until     INTEGER,
    dry_run         INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL
);

-- Content deduplication. The hash covers deliveryTimeStamp, so leading with the delivery time
-- changes nothing about what is unique, but D&B delivers in time order: new keys land on the
-- index's right edge instead of dirtying a random leaf page per insert.
CREATE UNIQUE INDEX notifications_content ON notifications (delivered_at, content_hash);
-- Claim candidates and backlog age, in receipt order.
CREATE INDEX notifications_pending ON notifications (received_at) WHERE status = 'pending';
-- A DUNS's lane, in delivery order.
CREATE INDEX notifications_lane ON notifications (duns, delivered_at, received_at) WHERE status = 'pending';
-- DUNS held by a lease, and leases to take back.
CREATE INDEX notifications_processing ON notifications (duns, lease_until) WHERE status = 'processing';
-- DUNS held back by a notification waiting for its retry.
CREATE INDEX notifications_waiting ON notifications (next_attempt_at, duns) WHERE status = 'pending' AND next_attempt_at IS NOT NULL;

-- Counts per status, kept by triggers so gauges and backpressure never scan.
CREATE TABLE status_counts (
    status TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO status_counts (status, n) VALUES
    ('pending', 0), ('processing', 0), ('done', 0), ('skipped', 0), ('dead', 0), ('rejected', 0);

CREATE TRIGGER notifications_count_insert AFTER INSERT ON notifications BEGIN
    UPDATE status_counts SET n = n + 1 WHERE status = NEW.status;
END;
CREATE TRIGGER notifications_count_update AFTER UPDATE OF status ON notifications
WHEN OLD.status <> NEW.status BEGIN
    UPDATE status_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE status_counts SET n = n + 1 WHERE status = NEW.status;
END;
CREATE TRIGGER notifications_count_delete AFTER DELETE ON notifications BEGIN
    UPDATE status_counts SET n = n - 1 WHERE status = OLD.status;
END;

-- One row per accepted request, keyed by webhook-id: a redelivery answers from here.
CREATE TABLE deliveries (
    webhook_id  TEXT PRIMARY KEY,
    received_at INTEGER NOT NULL,
    result      TEXT NOT NULL           -- JSON: {"ids": [...], "rejected": [...]}
) WITHOUT ROWID;
CREATE INDEX deliveries_received ON deliveries (received_at);

-- Every processing attempt and how it ended.
CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL,
    worker          TEXT    NOT NULL,
    outcome         TEXT    NOT NULL CHECK (outcome IN ('done', 'skipped', 'retry', 'dead', 'deferred')),
    error           TEXT
);
CREATE INDEX attempts_notification ON attempts (notification_id);

-- HubSpot actions per notification: planned (dry-run), unknown (answer lost) or done (a checkpoint).
CREATE TABLE actions (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL,
    action_key      TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('planned', 'unknown', 'done')),
    object_type     TEXT,
    object_id       TEXT,
    detail          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (notification_id, action_key)
);

-- Small facts about the journal itself (the readiness probe writes here).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
