//! `dns-cloudflare`: keeps DNS records at Cloudflare (API v4 `dns_records`).
//!
//! Settings: `api_token` (required; an API token with Zone.DNS edit, sent as
//! `Authorization: Bearer`), `zone_id` (optional; without it the zone is looked up by name,
//! which needs Zone.Zone read), `api_base` (optional; default
//! `https://api.cloudflare.com/client/v4`, e.g. the simulator's URL in tests).
//!
//! Upserts are idempotent: the record with the same type and name is found and updated (or left
//! alone when it already matches), and only created when there is none.

mod records;
mod zones;

pub use records::CloudflareDns;

#[cfg(target_arch = "wasm32")]
mod bindings;
