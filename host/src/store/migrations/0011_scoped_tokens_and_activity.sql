-- API tokens get scopes (names separated by spaces) and an optional expiry; tokens made before
-- scopes existed keep the full set they always had.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read orders lifecycle admin';
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;

-- The account an audit entry belongs to: the acting user, so a customer can be shown their own
-- activity without parsing actors. Earlier entries are filled in from their actor
-- (`user:<id>` or `user:<id>/token:<id>`).
ALTER TABLE audit_log ADD COLUMN user_id INTEGER;
UPDATE audit_log SET user_id = CAST(substr(actor, 6) AS INTEGER) WHERE actor LIKE 'user:%';
CREATE INDEX audit_log_user ON audit_log (user_id, id);
