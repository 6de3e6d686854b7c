-- Sign-in attempts within the rate limits' window, shared by every daemon: one row per attempt
-- let through, counted as failed until its password proves right. A right one is deleted; the
-- account's earlier failures are then `account_cleared` (they no longer count against the
-- account, but still against the address they came from).
CREATE TABLE login_attempts (
    id              INTEGER PRIMARY KEY,
    account         TEXT NOT NULL,
    address         TEXT NOT NULL,
    at              INTEGER NOT NULL,
    account_cleared INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX login_attempts_account ON login_attempts (account, at);
CREATE INDEX login_attempts_address ON login_attempts (address, at);
CREATE INDEX login_attempts_at ON login_attempts (at);
