-- Reporting views (SQLite). Keep identical in meaning to migrations/postgres/0005_reports.sql.
-- Days are China-time (Asia/Shanghai, UTC+8, no DST) calendar dates 'YYYY-MM-DD'; money is
-- given in fen (exact integers) and in yuan. Gift sub-orders (parent_oid set) are not counted
-- as orders or sales of their own.

-- Orders by the day they were created: how many, how many paid, their goods total (GMV).
CREATE VIEW order_daily AS
SELECT shop_id,
       date((create_time + 28800000) / 1000, 'unixepoch') AS day,
       COUNT(*) AS orders,
       COUNT(pay_time) AS paid_orders,
       CAST(COALESCE(SUM(CASE WHEN pay_time IS NOT NULL THEN total_fee END), 0) AS BIGINT) AS gmv_fen
FROM orders
WHERE parent_oid IS NULL
GROUP BY shop_id, date((create_time + 28800000) / 1000, 'unixepoch');

-- Refunds by the day they were created, status and handling way.
CREATE VIEW refund_daily AS
SELECT shop_id,
       date((create_time + 28800000) / 1000, 'unixepoch') AS day,
       status,
       handling_way,
       COUNT(*) AS refunds,
       CAST(COALESCE(SUM(refund_fee), 0) AS BIGINT) AS amount_fen
FROM refunds
GROUP BY shop_id, date((create_time + 28800000) / 1000, 'unixepoch'), status, handling_way;

-- Units and revenue per item and SKU, by the day the paid orders were created.
CREATE VIEW item_daily AS
SELECT shop_id,
       date((create_time + 28800000) / 1000, 'unixepoch') AS day,
       item_id,
       sku_id,
       MAX(item_title) AS item_title,
       MAX(sku_desc) AS sku_desc,
       CAST(COALESCE(SUM(num), 0) AS BIGINT) AS units,
       CAST(COALESCE(SUM(total_fee), 0) AS BIGINT) AS revenue_fen
FROM orders
WHERE parent_oid IS NULL AND pay_time IS NOT NULL
GROUP BY shop_id, date((create_time + 28800000) / 1000, 'unixepoch'), item_id, sku_id;

-- Per shop and day: orders, paid orders, GMV, refunds.
CREATE VIEW daily_sales AS
WITH refunds_by_day AS (
    SELECT shop_id, day, CAST(SUM(refunds) AS BIGINT) AS refunds, CAST(SUM(amount_fen) AS BIGINT) AS refund_fen
    FROM refund_daily GROUP BY shop_id, day
), days AS (
    SELECT shop_id, day FROM order_daily
    UNION
    SELECT shop_id, day FROM refunds_by_day
)
SELECT d.shop_id,
       d.day,
       COALESCE(o.orders, 0) AS orders,
       COALESCE(o.paid_orders, 0) AS paid_orders,
       COALESCE(o.gmv_fen, 0) AS gmv_fen,
       CAST(COALESCE(o.gmv_fen, 0) AS DOUBLE PRECISION) / 100 AS gmv_yuan,
       COALESCE(r.refunds, 0) AS refunds,
       COALESCE(r.refund_fen, 0) AS refund_fen,
       CAST(COALESCE(r.refund_fen, 0) AS DOUBLE PRECISION) / 100 AS refund_yuan
FROM days d
LEFT JOIN order_daily o ON o.shop_id = d.shop_id AND o.day = d.day
LEFT JOIN refunds_by_day r ON r.shop_id = d.shop_id AND r.day = d.day;

-- Per shop, refund status and handling way: count, amount, and the rate per paid order.
CREATE VIEW refund_summary AS
WITH paid AS (
    SELECT shop_id, CAST(SUM(paid_orders) AS BIGINT) AS paid_orders FROM order_daily GROUP BY shop_id
)
SELECT r.shop_id,
       r.status,
       r.handling_way,
       CAST(SUM(r.refunds) AS BIGINT) AS refunds,
       CAST(SUM(r.amount_fen) AS BIGINT) AS amount_fen,
       CAST(SUM(r.amount_fen) AS DOUBLE PRECISION) / 100 AS amount_yuan,
       CAST(SUM(r.refunds) AS DOUBLE PRECISION) / NULLIF(MAX(p.paid_orders), 0) AS rate
FROM refund_daily r
LEFT JOIN paid p ON p.shop_id = r.shop_id
GROUP BY r.shop_id, r.status, r.handling_way;

-- Per shop, item and SKU: units sold and revenue (paid orders).
CREATE VIEW item_sales AS
SELECT shop_id,
       item_id,
       sku_id,
       MAX(item_title) AS item_title,
       MAX(sku_desc) AS sku_desc,
       CAST(SUM(units) AS BIGINT) AS units,
       CAST(SUM(revenue_fen) AS BIGINT) AS revenue_fen,
       CAST(SUM(revenue_fen) AS DOUBLE PRECISION) / 100 AS revenue_yuan
FROM item_daily
GROUP BY shop_id, item_id, sku_id;
