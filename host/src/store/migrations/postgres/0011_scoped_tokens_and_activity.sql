-- API tokens get scopes (names separated by spaces) and an optional expiry; tokens made before
-- scopes existed keep the full set they always had.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read orders lifecycle admin';
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

-- The account an audit entry belongs to: the acting user, so a customer can be shown their own
-- activity without parsing actors. Earlier entries are filled in from their actor
-- (`user:<id>` or `user:<id>/token:<id>`), but only for an account that exists and existed
-- then, as on SQLite.
ALTER TABLE audit_log ADD COLUMN user_id BIGINT;
UPDATE audit_log SET user_id = split_part(substr(actor, 6), '/', 1)::BIGINT
    WHERE actor ~ '^user:[0-9]+(/|$)'
      AND at >= (SELECT created_at FROM users
                 WHERE id = split_part(substr(audit_log.actor, 6), '/', 1)::BIGINT);
CREATE INDEX audit_log_user ON audit_log (user_id, id);
