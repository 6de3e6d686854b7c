-- Whether the owner (or an operator, through the power API) last chose to have an active
-- service's VM off: the reconciler expects it stopped then, running otherwise.
ALTER TABLE services ADD COLUMN stopped_by_owner BIGINT NOT NULL DEFAULT 0;
