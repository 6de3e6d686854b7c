-- When each node was last reported online, so an operator sees how long one has been down
-- even while its cluster does not answer at all.
ALTER TABLE nodes ADD COLUMN online_at BIGINT;
