-- Passkeys (WebAuthn credentials) as second factors: webauthn-rs's record of each (its public
-- key and signature counter, as JSON: nothing secret), found by credential id.
CREATE TABLE passkeys (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    credential_id TEXT NOT NULL UNIQUE,
    passkey       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    UNIQUE (user_id, name)
);

-- A passkey being registered: the ceremony's state, until the browser answers.
CREATE TABLE passkey_registrations (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- A sign-in completed with a passkey keeps the authentication ceremony's state here.
ALTER TABLE login_challenges ADD COLUMN passkey_state TEXT;
