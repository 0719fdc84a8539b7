-- Where each D&B Direct+ monitoring registration's pull stands. A page of pulled
-- notifications is committed in the same transaction as its registration's row, so the
-- row never claims more than the journal holds. Times are unix milliseconds (UTC).
CREATE TABLE registrations (
    reference           TEXT    PRIMARY KEY,
    last_delivered_at   INTEGER,            -- greatest deliveryTimeStamp journaled from a pull or replay
    last_success_at     INTEGER,            -- last page committed, or last "nothing pending" answer
    last_transaction_id TEXT,               -- transactionDetail.transactionID of the last page
    in_flight           INTEGER NOT NULL DEFAULT 0, -- 1 from before a call until its page is committed
    updated_at          INTEGER NOT NULL
);
