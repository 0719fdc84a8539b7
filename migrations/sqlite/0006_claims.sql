-- Claims as fencing tokens. Every claim takes the next number from `claim_counter`, which
-- only grows, so a number is never given twice in the journal's life; the claimed rows carry
-- it in `claim_id` while the claim holds them. Outcomes, action records and renewals name
-- their claim and touch only rows still carrying it, so a worker whose lease was taken over
-- cannot overwrite the new owner's state. (`claimed_by`, the worker's name, stays for
-- operators: one worker makes many claims, so it fences nothing.)
ALTER TABLE notifications ADD COLUMN claim_id INTEGER;
CREATE TABLE claim_counter (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO claim_counter (id, last) VALUES (1, 0);
