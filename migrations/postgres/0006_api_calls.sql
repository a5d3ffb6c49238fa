-- Answers of the platform per shop, hour, API method and outcome (`ok` or the failure class):
-- the status page's last 24 hours, the same across restarts and across several daemons on one
-- database. Each daemon adds its counts every few seconds (calls = calls + new).
-- Keep identical to migrations/sqlite/0006_api_calls.sql.
CREATE TABLE api_calls (
    -- Not a foreign key: counting a call must never fail over the shops table.
    shop_id TEXT    NOT NULL,
    -- The hour's first instant, epoch ms (hours are the same in UTC and China time).
    hour_ms BIGINT  NOT NULL,
    method  TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    calls   BIGINT  NOT NULL CHECK (calls >= 0),
    PRIMARY KEY (shop_id, hour_ms, method, outcome)
);
-- The last day over every shop, and pruning old hours.
CREATE INDEX api_calls_by_hour ON api_calls (hour_ms);
