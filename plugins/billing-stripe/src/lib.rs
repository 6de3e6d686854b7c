//! `billing-stripe`: turns Stripe webhooks into Porthole lifecycle events.
//!
//! Every delivery's `Stripe-Signature` (`t=…,v1=…[,v1=…]`) is verified: HMAC-SHA256 of
//! `"{t}.{body}"` with the endpoint secret, compared in constant time against each `v1`, and
//! `t` must be within the tolerance of the current time. Then:
//!
//! | Stripe event | Porthole event |
//! |---|---|
//! | `checkout.session.completed` | activate (plan, template, hostname, SSH keys from the session's metadata) |
//! | `invoice.payment_failed` | suspend |
//! | `invoice.paid` / `invoice.payment_succeeded` after a failure | unsuspend |
//! | `customer.subscription.deleted` | terminate |
//! | `customer.subscription.updated` with a new price | change-plan (plan from the price map) |
//!
//! Settings: `webhook_secret` (required, `whsec_…`), `tolerance_seconds` (default 300),
//! `price_plans` (`price_123=small,price_456=large`), `default_plan` and `default_template`
//! (used when the checkout session's metadata names none).

mod events;
mod signature;
mod webhook;

pub use events::{BillingEvent, Customer, Order, PlanChange, ServiceRef};
pub use signature::{SignatureError, sign, verify_signature};
pub use webhook::{Outcome, WebhookRequest, WebhookResponse, handle_webhook};

#[cfg(target_arch = "wasm32")]
mod bindings;
