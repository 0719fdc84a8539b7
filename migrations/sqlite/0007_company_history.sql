-- What the bridge did to each HubSpot company, found without HubSpot's search: the done
-- actions that name their company (properties it wrote, tasks it created and completed), and the
-- DUNS a TRANSFER moved away from a company (journaled before the move is sent), so
-- notifications for the old DUNS still reach the company.
CREATE INDEX actions_company ON actions (json_extract(detail, '$.company'))
    WHERE json_extract(detail, '$.company') IS NOT NULL;
CREATE INDEX actions_moved_from ON actions (json_extract(detail, '$.moved_from'))
    WHERE json_extract(detail, '$.moved_from') IS NOT NULL;
