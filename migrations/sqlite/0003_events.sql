-- The durable queue of push events (I5, I6): the receiver inserts each decrypted message here,
-- deduplicated on the platform's eventId, before it acknowledges; the worker claims events with
-- a lease and a fencing token, and marks one done in the transaction that writes its effect.
-- Keep identical to migrations/postgres/0003_events.sql.
CREATE TABLE events (
    -- AUTOINCREMENT: an id is never reused after a purge, so a stale worker's (id, fence) can
    -- never match a newer event.
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id           TEXT    NOT NULL UNIQUE,
    msg_id             TEXT,
    app_key            TEXT    NOT NULL,
    shop_id            TEXT    REFERENCES shops (shop_id), -- NULL: the shop could not be resolved
    open_id            TEXT,
    user_id            INTEGER,
    event              TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('order', 'refund', 'item', 'other')),
    biz_id             INTEGER, -- the record to fetch
    info               TEXT    NOT NULL, -- the envelope's parsed info JSON
    raw                TEXT    NOT NULL, -- the decrypted envelope, verbatim
    event_update_time  INTEGER,
    received_at_ms     INTEGER NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'running', 'done', 'dead', 'unknown_shop')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    lease_until_ms     INTEGER,
    fence              INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    done_at_ms         INTEGER,
    -- Only an event whose shop is unknown may lack one: everything the worker claims has a shop.
    CHECK (status = 'unknown_shop' OR shop_id IS NOT NULL)
);
-- Claiming walks the ready events in due order and stops after the batch.
CREATE INDEX events_ready ON events (status, next_attempt_at_ms, id);
-- Finding the other events about one record.
CREATE INDEX events_by_record ON events (shop_id, kind, biz_id, status);
-- Purging done events.
CREATE INDEX events_done ON events (status, done_at_ms);
