-- What the `serve` replicas sharing one database coordinate through besides the journal
-- (src/cluster.rs). Times are microseconds since the unix epoch on the database's clock
-- (clock_timestamp()), so the replicas' own clocks never need to agree.

-- Shared rate budgets (GCRA): one row per budget (`hubspot`, `hubspot-search`).
-- `tat_us` is the theoretical arrival time: the schedule of granted calls runs up to it.
-- `hold_until_us`: no call of this budget goes before it (a 429, or a nearly spent window
-- seen by any replica, holds them all).
CREATE TABLE rate_budgets (
    name          TEXT   PRIMARY KEY,
    tat_us        BIGINT NOT NULL,
    hold_until_us BIGINT NOT NULL DEFAULT 0
);

-- Leadership leases: one row per job only one replica may run (`pull:<registration>`).
-- The holder renews `lease_until_us` well before it passes; another replica takes the row
-- once it has passed. `fence` grows each time the holder changes.
CREATE TABLE leases (
    name           TEXT   PRIMARY KEY,
    holder         TEXT   NOT NULL,
    fence          BIGINT NOT NULL,
    lease_until_us BIGINT NOT NULL
);
