-- A spent per-API quota (`[1017] exceed quota limit,[apiId:…]`) pauses that one API of one shop
-- until the quota resets; the shop's other APIs go on. (The app's and the test user's daily
-- quota pause the whole shop: shops.quota_paused_until.)
-- Keep identical to migrations/postgres/0009_api_pauses.sql.
CREATE TABLE api_pauses (
    shop_id  TEXT    NOT NULL REFERENCES shops (shop_id),
    method   TEXT    NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (shop_id, method)
);
