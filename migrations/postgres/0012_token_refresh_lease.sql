-- Who is refreshing the shop's token, and until when (epoch ms): one refresh at a time across
-- every process on the database, since a refresh discards the refresh token the others hold.
-- NULL holder: nobody. A holder that died loses the right when refresh_until_ms passes.
-- Keep identical to migrations/sqlite/0012_token_refresh_lease.sql.
ALTER TABLE oauth_tokens ADD COLUMN refresh_holder TEXT;
ALTER TABLE oauth_tokens ADD COLUMN refresh_until_ms BIGINT NOT NULL DEFAULT 0;
