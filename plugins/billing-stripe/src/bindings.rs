//! The component's WIT face (`billing-adapter` world) over [`crate::handle_webhook`]. The clock
//! is `wasi:clocks/wall-clock` (through `std`). Compiled for wasm32 only.
#![allow(unsafe_code)] // wit-bindgen's generated ABI glue

use crate::{BillingEvent, WebhookRequest, handle_webhook};
use exports::porthole::plugin::billing::{
    self as wit, Guest, WebhookOutcome, WebhookRequest as WitRequest, WebhookResponse,
};
use porthole::plugin::types::PluginError;
use std::time::{SystemTime, UNIX_EPOCH};

wit_bindgen::generate!({
    path: "../../wit",
    world: "porthole:plugin/billing-adapter",
    generate_all,
});

porthole_plugin_support::wit_glue!(kv);

struct Adapter;

impl Guest for Adapter {
    fn handle_webhook(request: WitRequest) -> Result<WebhookOutcome, PluginError> {
        let request = WebhookRequest {
            method: request.method,
            path: request.path,
            headers: request.headers,
            body: request.body,
        };
        // A clock before 1970 would fail every timestamp check, which is the safe outcome.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let outcome =
            handle_webhook(&request, &HostSettings, &HostKv, now).map_err(to_wit_error)?;
        Ok(WebhookOutcome {
            response: WebhookResponse {
                status: outcome.response.status,
                headers: outcome.response.headers,
                body: outcome.response.body,
            },
            events: outcome.events.into_iter().map(event_to_wit).collect(),
        })
    }
}

fn event_to_wit(event: BillingEvent) -> wit::BillingEvent {
    let service = |r: crate::ServiceRef| wit::ServiceRef {
        event_id: r.event_id,
        external_ref: r.external_ref,
    };
    match event {
        BillingEvent::Activate(order) => wit::BillingEvent::Activate(wit::Order {
            event_id: order.event_id,
            customer: wit::Customer {
                external_id: order.customer.external_id,
                email: order.customer.email,
                name: order.customer.name,
            },
            plan: order.plan,
            template: order.template,
            hostname: order.hostname,
            ssh_keys: order.ssh_keys,
            external_ref: order.external_ref,
        }),
        BillingEvent::Suspend(r) => wit::BillingEvent::Suspend(service(r)),
        BillingEvent::Unsuspend(r) => wit::BillingEvent::Unsuspend(service(r)),
        BillingEvent::Terminate(r) => wit::BillingEvent::Terminate(service(r)),
        BillingEvent::ChangePlan(c) => wit::BillingEvent::ChangePlan(wit::PlanChange {
            event_id: c.event_id,
            external_ref: c.external_ref,
            plan: c.plan,
        }),
    }
}

export!(Adapter);
