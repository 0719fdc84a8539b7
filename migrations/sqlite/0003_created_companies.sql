-- Companies the bridge created, by DUNS: found without HubSpot's search, which lags writes, so
-- a portal whose DUNS property is not unique never gets a second company for one DUNS.
CREATE INDEX actions_created_duns ON actions (json_extract(detail, '$.duns'))
    WHERE kind = 'update_company' AND state = 'done';
