-- Second factors. A TOTP secret is sealed with the data key (it must be read back to check a
-- code); `last_step` is the newest time step a code was accepted for, so each code works once.
-- Until `confirmed_at` is set, the secret is being enrolled and does not guard sign-in.
CREATE TABLE totp_secrets (
    user_id      INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    confirmed_at INTEGER,
    last_step    INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);

-- Single-use recovery codes, stored as the SHA-256 of each 80-bit code.
CREATE TABLE recovery_codes (
    id        INTEGER PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL UNIQUE,
    used_at   INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- A sign-in whose password was right and whose second factor is awaited, by the SHA-256 of the
-- token the browser holds meanwhile. Shared by every daemon, like sessions.
CREATE TABLE login_challenges (
    id_hash    BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX login_challenges_expiry ON login_challenges (expires_at);
