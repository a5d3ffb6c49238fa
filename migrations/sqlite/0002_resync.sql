-- Re-reads of a time range (a resync asked for by an operator, or the daily deep reconcile),
-- with their own progress so they resume across restarts and never hold back the live
-- checkpoint. Keep identical to migrations/postgres/0002_resync.sql.
CREATE TABLE resync_requests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    shop_id         TEXT    NOT NULL REFERENCES shops (shop_id),
    stream          TEXT    NOT NULL CHECK (stream IN ('orders', 'refunds', 'items')),
    kind            TEXT    NOT NULL CHECK (kind IN ('resync', 'reconcile')),
    since_ms        INTEGER NOT NULL,
    until_ms        INTEGER NOT NULL,
    window_begin_ms INTEGER,
    window_end_ms   INTEGER,
    cursor          TEXT,
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    requested_at_ms INTEGER NOT NULL,
    started_at_ms   INTEGER,
    finished_at_ms  INTEGER,
    rows            INTEGER NOT NULL DEFAULT 0,
    error           TEXT
);
CREATE INDEX resync_requests_open ON resync_requests (status, shop_id, stream, id);
