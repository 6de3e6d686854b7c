//! `{{name}}`: a Porthole billing adapter (world `billing-adapter`) for Paddle Billing.
//!
//! Settings: `webhook_secret` (the notification destination's secret), `price_plans` (optional,
//! `pri_…=plan,…`, for plan changes). Paddle's notification destination is
//! `https://<porthole>/hooks/billing/<plugin name>`.
//!
//! `paddle` is the logic, tested natively with `cargo test`; `component` binds it to the
//! contract and exists only in the wasm32 build.

pub mod paddle;

#[cfg(target_arch = "wasm32")]
mod component;
