-- A console session counts against the caps while its daemon says it is alive: the daemon
-- renews `alive_until` (unix seconds) and the byte counts while it relays the session, so the
-- sessions of a daemon that died stop counting once it lapses. Sessions recorded before this
-- have none and count no longer.
ALTER TABLE console_sessions ADD COLUMN alive_until INTEGER;
-- An operator on another daemon asked for the session to be closed; its daemon closes it on the
-- notice, or at its next renewal if the notice never came.
ALTER TABLE console_sessions ADD COLUMN close_requested INTEGER NOT NULL DEFAULT 0;
CREATE INDEX console_sessions_live ON console_sessions (user_id) WHERE ended_at IS NULL;
