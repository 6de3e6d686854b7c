-- Console tokens: single-use, short-lived bearer grants for one console WebSocket. Only the
-- SHA-256 of the token is stored; `used_at` and `revoked_at` make each one usable at most once.
CREATE TABLE console_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('vnc', 'term')),
    client     TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX console_tokens_service ON console_tokens (service_id);
CREATE INDEX console_tokens_expires ON console_tokens (expires_at);

-- One row per console session: who watched which VM, from where, for how long, how much. No
-- foreign keys: the record outlives the account and the service it names.
CREATE TABLE console_sessions (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL,
    service_id       INTEGER NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('vnc', 'term')),
    client           TEXT,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    bytes_to_vm      INTEGER NOT NULL DEFAULT 0,
    bytes_to_browser INTEGER NOT NULL DEFAULT 0,
    close_code       INTEGER,
    close_reason     TEXT
);
CREATE INDEX console_sessions_service ON console_sessions (service_id);
CREATE INDEX console_sessions_started ON console_sessions (started_at);
