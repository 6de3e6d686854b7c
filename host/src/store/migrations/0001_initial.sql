-- Accounts.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'customer')),
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Browser sessions; only the SHA-256 of the cookie value is stored.
CREATE TABLE sessions (
    id_hash    BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    client     TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- API tokens for provider automation; only the SHA-256 of the token is stored.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    UNIQUE (user_id, name)
);

-- Clusters as configured, and the nodes last seen on them.
CREATE TABLE clusters (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE nodes (
    cluster    TEXT NOT NULL REFERENCES clusters (name) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (cluster, name)
);

-- A customer's VM as we know it. `vmid` and `node` are NULL until provisioning reserves them.
CREATE TABLE services (
    id         INTEGER PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    cluster    TEXT NOT NULL REFERENCES clusters (name),
    node       TEXT,
    vmid       INTEGER,
    plan       TEXT,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'provisioning', 'active', 'suspended', 'terminating', 'terminated', 'failed')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (cluster, vmid)
);
CREATE INDEX services_owner ON services (owner_id);

-- Durable lifecycle jobs; steps and leases are filled in by the lifecycle engine.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    service_id      INTEGER REFERENCES services (id),
    kind            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL,
    step            TEXT,
    data            TEXT NOT NULL DEFAULT '{}',
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX jobs_state ON jobs (state);

-- Who did what, when. Append-only.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    detail     TEXT NOT NULL DEFAULT '{}',
    client     TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
