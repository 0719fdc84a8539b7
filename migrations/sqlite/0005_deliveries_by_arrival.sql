-- Delivery records in arrival order. The writer finds them by webhook-id through an
-- in-memory map it reads from this table at start (src/journal/sqlite/deliveries.rs):
-- a table keyed by webhook-id dirtied a scattered page per request in every commit.
CREATE TABLE deliveries_by_arrival (
    id          INTEGER PRIMARY KEY,
    webhook_id  TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    result      TEXT    NOT NULL           -- JSON: {"ids": [...], "rejected": [...]}
);
INSERT INTO deliveries_by_arrival (webhook_id, received_at, result)
    SELECT webhook_id, received_at, result FROM deliveries ORDER BY received_at;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_arrival RENAME TO deliveries;
