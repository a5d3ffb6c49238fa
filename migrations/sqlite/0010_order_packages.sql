-- Every package of an order: `orderLogisticsInfo` is an array (an order can ship in several
-- packages, up to 50), kept here as the JSON array the platform sent; the typed express_no,
-- express_code and logistics_id columns hold the first one. Query it with json_each (SQLite) or
-- jsonb_array_elements(packages::jsonb) (Postgres).
-- Keep identical to migrations/postgres/0010_order_packages.sql.
ALTER TABLE orders ADD COLUMN packages TEXT NOT NULL DEFAULT '[]';
