//! `dns-powerdns`: keeps DNS records in a PowerDNS Authoritative server through its HTTP API
//! (`PATCH /api/v1/servers/{server}/zones/{zone}` with rrsets, `X-API-Key` auth).
//!
//! PowerDNS has no record ids: a record is an rrset, identified here as `<name>./<TYPE>`
//! (e.g. `vm1.lab.example.com./A`). An upsert REPLACEs the whole rrset, so it is idempotent.
//!
//! Settings: `api_url` (required, e.g. `http://127.0.0.1:8081`), `api_key` (required),
//! `server_id` (default `localhost`), `default_ttl` (used for TTL 1, "automatic"; default 300).

mod content;
mod rrsets;

pub use rrsets::PowerDns;

#[cfg(target_arch = "wasm32")]
mod bindings;
