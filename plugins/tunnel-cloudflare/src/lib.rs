//! `tunnel-cloudflare`: remotely managed Cloudflare Tunnels (`cfd_tunnel`, `config_src:
//! cloudflare`). A tunnel is created (or found again), its ingress rules are set explicitly —
//! each host name to the service, then `http_status:404` for everything else — and its
//! connector token fetched; the DNS records to create are CNAMEs from each host name to
//! `<tunnel-id>.cfargotunnel.com`, proxied.
//!
//! Idempotent by the idempotency key: the tunnel id is remembered in `kv` under the key, and a
//! live tunnel of the same name is adopted when `kv` lost it (a crash between create and save).
//!
//! Settings: `api_token` (required; Account.Cloudflare Tunnel edit), `account_id` (required),
//! `api_base` (default `https://api.cloudflare.com/client/v4`), `default_service` (the origin
//! when the spec names none; default `ssh://localhost:22`).

mod ingress;
mod tunnels;

pub use ingress::TunnelSpec;
pub use tunnels::{CloudflareTunnels, TunnelInfo};

#[cfg(target_arch = "wasm32")]
mod bindings;
