-- The raw JSON of an order (about 2 KB) crosses Postgres's 2 KB compression threshold, and pglz,
-- the default, cost the server about 16 us a row during a backfill (206,067 orders inserted in
-- 5.7 s with pglz, 2.3 s with lz4, the same size; BENCHMARKS.md). A server built without lz4
-- (or older than 14) keeps pglz: the migration then changes nothing and says so.
-- Keep the name identical to migrations/sqlite/0016_raw_lz4.sql.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['orders', 'refunds', 'items', 'skus', 'events', 'quarantine'] LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN raw SET COMPRESSION lz4', t);
    END LOOP;
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available here: raw JSON stays compressed with pglz (%)', SQLERRM;
END $$;
