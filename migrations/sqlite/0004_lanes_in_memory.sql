-- The writer keeps each DUNS's pending notifications in processing order in memory
-- (src/journal/sqlite/lanes.rs), rebuilt from the rows at start: an index keyed by DUNS
-- dirtied a scattered page per pending notification in every commit.
DROP INDEX notifications_lane;
