-- Re-reads of a time range (a resync asked for by an operator, or the daily deep reconcile),
-- with their own progress so they resume across restarts and never hold back the live
-- checkpoint. Keep identical to migrations/sqlite/0002_resync.sql.
CREATE TABLE resync_requests (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id         TEXT    NOT NULL REFERENCES shops (shop_id),
    stream          TEXT    NOT NULL CHECK (stream IN ('orders', 'refunds', 'items')),
    kind            TEXT    NOT NULL CHECK (kind IN ('resync', 'reconcile')),
    since_ms        BIGINT  NOT NULL,
    until_ms        BIGINT  NOT NULL,
    window_begin_ms BIGINT,
    window_end_ms   BIGINT,
    cursor          TEXT,
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    requested_at_ms BIGINT  NOT NULL,
    started_at_ms   BIGINT,
    finished_at_ms  BIGINT,
    rows            BIGINT  NOT NULL DEFAULT 0,
    error           TEXT
);
CREATE INDEX resync_requests_open ON resync_requests (status, shop_id, stream, id);
