-- The catalogue: what customers buy and what it is cloned from. Rows from the configuration file
-- have source 'config' and are refreshed at every start; operators add more through the API.
CREATE TABLE templates (
    name       TEXT PRIMARY KEY,
    cluster    TEXT NOT NULL REFERENCES clusters (name),
    node       TEXT NOT NULL,
    vmid       INTEGER NOT NULL,
    os         TEXT NOT NULL,
    cloud_init TEXT NOT NULL,
    source     TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api'))
);
CREATE TABLE plans (
    name       TEXT PRIMARY KEY,
    cores      INTEGER NOT NULL CHECK (cores > 0),
    memory_mib INTEGER NOT NULL CHECK (memory_mib > 0),
    disk_gib   INTEGER NOT NULL CHECK (disk_gib > 0),
    templates  TEXT NOT NULL DEFAULT '[]',
    nodes      TEXT NOT NULL DEFAULT '[]',
    source     TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api'))
);

-- Per-customer limits; no row means the defaults in the configuration.
CREATE TABLE quotas (
    user_id        INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    max_vms        INTEGER NOT NULL,
    max_cores      INTEGER NOT NULL,
    max_memory_mib INTEGER NOT NULL,
    max_disk_gib   INTEGER NOT NULL
);

-- The billing system's name for a customer, so repeated orders find the same account.
ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX users_external_id ON users (external_id) WHERE external_id IS NOT NULL;

-- What an order asked for, and the billing system's reference to it.
ALTER TABLE services ADD COLUMN template TEXT;
ALTER TABLE services ADD COLUMN hostname TEXT;
ALTER TABLE services ADD COLUMN external_ref TEXT;
CREATE UNIQUE INDEX services_external_ref ON services (external_ref) WHERE external_ref IS NOT NULL;

-- Job scheduling: when a job may next run, and who holds it.
ALTER TABLE jobs ADD COLUMN next_run_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN actor TEXT NOT NULL DEFAULT 'system';
CREATE INDEX jobs_runnable ON jobs (state, next_run_at);

-- Step-by-step history of every job, for the API, the panel and the event stream.
CREATE TABLE job_events (
    id      INTEGER PRIMARY KEY,
    job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    step    TEXT NOT NULL,
    status  TEXT NOT NULL,
    message TEXT
);
CREATE INDEX job_events_job ON job_events (job_id);

-- Webhook deliveries already applied, so a retried delivery does nothing twice.
CREATE TABLE billing_events (
    plugin      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (plugin, event_id)
);

-- Everything a service owns outside Proxmox's VM itself, recorded the moment it exists, so a
-- teardown (terminate, or a failed provision's rollback) finds and removes all of it.
CREATE TABLE service_resources (
    service_id  INTEGER NOT NULL REFERENCES services (id),
    kind        TEXT NOT NULL CHECK (kind IN ('tunnel', 'dns_record', 'snippet', 'seed')),
    provider    TEXT NOT NULL,
    external_id TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (service_id, kind, external_id)
);
