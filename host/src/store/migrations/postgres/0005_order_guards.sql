-- What was asked under an idempotency key: the same key with a different request is refused
-- instead of silently answered with the first one's receipt. Rows from before have none.
ALTER TABLE jobs ADD COLUMN request_digest TEXT COLLATE "C";

-- A service's hostname becomes a public DNS name under the provider's domain, so a live
-- service's hostname is its own; the order path checks it inside the ordering transaction.
CREATE INDEX services_hostname ON services (hostname);

-- A service's jobs are read by service: its history, its SSH login user, its open operation.
CREATE INDEX jobs_service ON jobs (service_id);
