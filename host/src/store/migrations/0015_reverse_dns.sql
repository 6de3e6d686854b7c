-- Reverse DNS of held addresses: the host name the owner's PTR record points to, once the DNS
-- provider has it; and whether Porthole has asked the provider for a PTR during this holding
-- (set before each call, so a termination removes a record whose answer was lost).
ALTER TABLE ip_addresses ADD COLUMN reverse_dns TEXT;
ALTER TABLE ip_addresses ADD COLUMN reverse_dns_touched INTEGER NOT NULL DEFAULT 0;
