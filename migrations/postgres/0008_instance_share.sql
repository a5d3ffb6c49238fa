-- How many live instances each daemon divides the app's QPS budget by, once that share is in
-- force in its rate limiters. A joining daemon makes no API call until every other live daemon
-- has put a share in force that counts it, so the shares in force never add up to more than the
-- app's limit (I7). Keep identical to migrations/sqlite/0008_instance_share.sql.
ALTER TABLE instances ADD COLUMN share_in_force BIGINT NOT NULL DEFAULT 0;
