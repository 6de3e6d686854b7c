-- Reverse DNS of held addresses: the host name the owner's PTR record points to, once the DNS
-- provider has it; and the reverse zone and plugin Porthole has asked for a PTR at the address
-- through during this holding. Those are written before each call to the provider and cleared
-- only once the record is removed, so a termination removes it from where it was written even
-- when an answer was lost or the pool's configuration has changed since.
ALTER TABLE ip_addresses ADD COLUMN reverse_dns TEXT;
ALTER TABLE ip_addresses ADD COLUMN reverse_dns_zone TEXT;
ALTER TABLE ip_addresses ADD COLUMN reverse_dns_plugin TEXT;
