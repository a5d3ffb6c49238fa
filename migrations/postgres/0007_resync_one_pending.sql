-- At most one waiting (pending) resync request per shop and stream: a new request merges into
-- the waiting one. Two processes asking at once (ten `resync` commands in a burst on Postgres)
-- could each find none waiting and insert; this index makes the second insert fail, and the
-- store then merges it instead. Requests already doubled up are merged first.
-- Keep identical to migrations/sqlite/0007_resync_one_pending.sql.
UPDATE resync_requests
SET since_ms = (SELECT MIN(o.since_ms) FROM resync_requests o
                WHERE o.shop_id = resync_requests.shop_id AND o.stream = resync_requests.stream
                  AND o.status = 'pending'),
    until_ms = (SELECT MAX(o.until_ms) FROM resync_requests o
                WHERE o.shop_id = resync_requests.shop_id AND o.stream = resync_requests.stream
                  AND o.status = 'pending'),
    kind = CASE WHEN EXISTS (SELECT 1 FROM resync_requests o
                             WHERE o.shop_id = resync_requests.shop_id
                               AND o.stream = resync_requests.stream
                               AND o.status = 'pending' AND o.kind = 'resync')
                THEN 'resync' ELSE kind END
WHERE status = 'pending';

DELETE FROM resync_requests
WHERE status = 'pending'
  AND EXISTS (SELECT 1 FROM resync_requests o
              WHERE o.shop_id = resync_requests.shop_id AND o.stream = resync_requests.stream
                AND o.status = 'pending' AND o.id < resync_requests.id);

CREATE UNIQUE INDEX resync_requests_one_pending ON resync_requests (shop_id, stream)
WHERE status = 'pending';
