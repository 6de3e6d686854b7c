-- Each customer's SSH keychain: keys chosen at order and at reinstall. The line is the parsed
-- key re-encoded; the fingerprint (SHA256:…) keeps one key from being added twice.
CREATE TABLE ssh_keys (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, name),
    UNIQUE (user_id, fingerprint)
);

-- How many snapshots a VM on the plan may keep at once; 0 offers none.
ALTER TABLE plans ADD COLUMN max_snapshots INTEGER NOT NULL DEFAULT 0 CHECK (max_snapshots >= 0);
