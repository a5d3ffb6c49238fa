-- How many runs in a row ended with the same error (last_error): `status` shows the platform's
-- code and message once a window keeps failing the same way. 0 after a success.
-- Keep identical to migrations/postgres/0011_failures_in_row.sql.
ALTER TABLE sync_state ADD COLUMN failures_in_row INTEGER NOT NULL DEFAULT 0;
