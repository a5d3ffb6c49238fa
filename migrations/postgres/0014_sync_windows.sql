-- The windows of a stream read side by side (a backfill, a long outage): each keeps its own
-- cursor, committed with its page; done = 1 once its last page is in. The stream's checkpoint
-- (sync_state) moves to the end of the longest run of done windows from the first, and those
-- rows go. A restart resumes every window left here from its own cursor.
-- Keep identical to migrations/sqlite/0014_sync_windows.sql.
CREATE TABLE sync_windows (
    shop_id   TEXT    NOT NULL REFERENCES shops (shop_id),
    stream    TEXT    NOT NULL,
    begin_ms  BIGINT NOT NULL,
    end_ms    BIGINT NOT NULL,
    cursor    TEXT,
    done      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (shop_id, stream, begin_ms)
);
