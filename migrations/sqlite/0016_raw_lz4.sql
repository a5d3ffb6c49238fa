-- Postgres compresses the raw JSON columns with lz4 from here on (see
-- migrations/postgres/0016_raw_lz4.sql); SQLite stores text as it is, so nothing changes here.
-- Keep the name identical to migrations/postgres/0016_raw_lz4.sql.
SELECT 1;
