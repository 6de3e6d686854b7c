-- API tokens get scopes (names separated by spaces) and an optional expiry; tokens made before
-- scopes existed keep the full set they always had.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read orders lifecycle admin';
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;

-- The account an audit entry belongs to: the acting user, so a customer can be shown their own
-- activity without parsing actors. Earlier entries are filled in from their actor
-- (`user:<id>` or `user:<id>/token:<id>`), but only for an account that exists and existed
-- then: SQLite gives a deleted account's id to the next one, which must not inherit its entries.
ALTER TABLE audit_log ADD COLUMN user_id INTEGER;
UPDATE audit_log SET user_id = CAST(substr(actor, 6) AS INTEGER)
    WHERE actor LIKE 'user:%'
      AND at >= (SELECT created_at FROM users WHERE id = CAST(substr(actor, 6) AS INTEGER));
CREATE INDEX audit_log_user ON audit_log (user_id, id);
