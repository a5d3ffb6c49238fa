-- Several daemons on one database: each registers an instance row it keeps fresh with a
-- heartbeat (the live count divides the app's QPS budget), and polls a (shop, stream) only while
-- it holds that stream's lease. A lease row is never deleted, so its fence only grows.
-- Keep identical to migrations/postgres/0004_instances.sql.
CREATE TABLE instances (
    instance_id     TEXT    NOT NULL PRIMARY KEY,
    host            TEXT    NOT NULL,
    pid             INTEGER NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    heartbeat_at_ms INTEGER NOT NULL
);

CREATE TABLE stream_leases (
    shop_id       TEXT    NOT NULL REFERENCES shops (shop_id),
    stream        TEXT    NOT NULL CHECK (stream IN ('orders', 'refunds', 'items')),
    -- An instance_id, not a foreign key: a lease outlives its holder until it expires.
    holder        TEXT    NOT NULL,
    fence         INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (shop_id, stream)
);
-- Releasing every lease of a stopping instance.
CREATE INDEX stream_leases_holder ON stream_leases (holder);
