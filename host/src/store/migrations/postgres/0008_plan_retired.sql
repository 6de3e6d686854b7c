-- A retired plan is offered to no new order and no change of plan; the services on it keep it.
ALTER TABLE plans ADD COLUMN retired BIGINT NOT NULL DEFAULT 0;
