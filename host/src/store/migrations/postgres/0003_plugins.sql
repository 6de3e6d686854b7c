-- Plugin key-value data, one namespace per plugin name, and the plugin runtime's circuit-breaker
-- state so that a plugin tripped for misbehaving stays off across a restart until reset.
-- (SQLite's WITHOUT ROWID has no PostgreSQL counterpart, nor needs one.)

CREATE TABLE plugin_kv (
    plugin TEXT COLLATE "C" NOT NULL,
    key    TEXT COLLATE "C" NOT NULL,
    value  BYTEA NOT NULL,
    PRIMARY KEY (plugin, key)
);

CREATE TABLE plugin_state (
    plugin        TEXT COLLATE "C" PRIMARY KEY,
    -- Unix seconds when the breaker opened; NULL when closed.
    tripped_at    BIGINT,
    -- The failure that opened it, for the status page.
    tripped_reason TEXT COLLATE "C"
);
