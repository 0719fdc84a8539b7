-- What a replica learned about the HubSpot portal that the others need not ask HubSpot again
-- (src/cluster.rs, `Cluster::fact`): its time zone, the default owner's id, that the company
-- properties the bridge writes exist. Times are microseconds on the database's clock.
CREATE TABLE portal_facts (
    name          TEXT   PRIMARY KEY,
    value         TEXT   NOT NULL,
    learned_at_us BIGINT NOT NULL
);
