-- Plugin key-value data, one namespace per plugin name, and the plugin runtime's circuit-breaker
-- state so that a plugin tripped for misbehaving stays off across a restart until reset.

CREATE TABLE plugin_kv (
    plugin TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  BLOB NOT NULL,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;

CREATE TABLE plugin_state (
    plugin        TEXT PRIMARY KEY,
    -- Unix seconds when the breaker opened; NULL when closed.
    tripped_at    INTEGER,
    -- The failure that opened it, for the status page.
    tripped_reason TEXT
) WITHOUT ROWID;
