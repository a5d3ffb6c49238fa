-- Gift sub-orders are a few in a hundred orders, and the report views never look orders up by
-- parent (they filter `parent_oid IS NULL`, which most rows match). Indexing only the gifts
-- keeps "the gifts of this order" quick while a backfill no longer writes an index entry for
-- every main order (part of the write amplification measured in BENCHMARKS.md).
DROP INDEX orders_by_parent;
CREATE INDEX orders_by_parent ON orders (shop_id, parent_oid) WHERE parent_oid IS NOT NULL;
