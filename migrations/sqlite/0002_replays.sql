-- Every replay of a notification, for its status history.
CREATE TABLE replays (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL,
    replayed_at     INTEGER NOT NULL,
    previous_status TEXT    NOT NULL
);
CREATE INDEX replays_notification ON replays (notification_id);
