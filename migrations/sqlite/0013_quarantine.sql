-- Records a poller could not read or store: each fails alone, kept here with its JSON and the
-- error, while its page and the checkpoint move on. record_key is the record's id when it could
-- be read (has_id = 1; `quarantine retry` fetches it again by id), otherwise a digest of its JSON.
-- A row leaves when the record is stored (a later page, a retry).
-- Keep identical to migrations/postgres/0013_quarantine.sql.
CREATE TABLE quarantine (
    shop_id        TEXT    NOT NULL REFERENCES shops (shop_id),
    stream         TEXT    NOT NULL,
    record_key     TEXT    NOT NULL,
    has_id         INTEGER NOT NULL,
    raw            TEXT    NOT NULL,
    error          TEXT    NOT NULL,
    first_seen_ms  INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL,
    times_seen     INTEGER NOT NULL,
    PRIMARY KEY (shop_id, stream, record_key)
);
