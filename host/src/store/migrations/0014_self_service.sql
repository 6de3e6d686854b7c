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

-- A plan's self-service limits: how many snapshots a VM may keep at once and how many backups
-- are kept (0 offers none), and how often backups are taken by themselves.
ALTER TABLE plans ADD COLUMN max_snapshots INTEGER NOT NULL DEFAULT 0 CHECK (max_snapshots >= 0);
ALTER TABLE plans ADD COLUMN max_backups INTEGER NOT NULL DEFAULT 0 CHECK (max_backups >= 0);
ALTER TABLE plans ADD COLUMN backup_schedule TEXT NOT NULL DEFAULT 'none'
    CHECK (backup_schedule IN ('none', 'daily', 'weekly'));

-- Addresses drawn from the configured pools: one row per address ever handed out. A released
-- address is handed out again only once its hold has passed; the key makes one order win it.
CREATE TABLE ip_addresses (
    pool        TEXT NOT NULL,
    address     TEXT NOT NULL,
    service_id  INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    assigned_at INTEGER NOT NULL,
    released_at INTEGER,
    PRIMARY KEY (pool, address)
);
CREATE INDEX ip_addresses_service ON ip_addresses (service_id);
