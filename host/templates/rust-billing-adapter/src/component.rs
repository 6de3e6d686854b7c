//! The component's face: the `billing` export over [`crate::paddle`].

wit_bindgen::generate!({
    path: "wit",
    world: "porthole:plugin/billing-adapter",
    generate_all,
});

use crate::paddle::{self, Event};
use exports::porthole::plugin::billing::{
    BillingEvent, Customer, Guest, Order, PlanChange, ServiceRef, WebhookOutcome, WebhookRequest,
    WebhookResponse,
};
use porthole::plugin::host::{self, LogLevel};
use porthole::plugin::types::{ErrorKind, PluginError};

struct Adapter;

export!(Adapter);

impl Guest for Adapter {
    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let Some(secret) = host::setting("webhook_secret").filter(|s| !s.is_empty()) else {
            // An error, not a 4xx: Paddle retries, and the delivery succeeds once it is set.
            return Err(PluginError {
                kind: ErrorKind::InvalidInput,
                message: "the setting `webhook_secret` is not set".into(),
            });
        };
        let header = request
            .headers
            .iter()
            .find(|(name, _)| name == "paddle-signature")
            .map(|(_, value)| value.as_str());
        let now = wasi::clocks::wall_clock::now().seconds;
        let payload = match paddle::verify(&secret, header, &request.body, now)
            .and_then(|()| paddle::decode(&request.body))
        {
            Ok(payload) => payload,
            Err(why) => {
                host::log(LogLevel::Warn, &format!("webhook refused: {why}"));
                return Ok(answer(400, &why.to_string(), Vec::new()));
            }
        };
        let plans = paddle::parse_price_plans(host::setting("price_plans").as_deref());
        let events: Vec<_> = paddle::events(&payload, &plans)
            .into_iter()
            .map(to_wit)
            .collect();
        let kind = payload["event_type"].as_str().unwrap_or("(none)");
        host::log(
            LogLevel::Info,
            &format!("{kind}: {} event(s)", events.len()),
        );
        Ok(answer(200, "ok", events))
    }
}

fn answer(status: u16, message: &str, events: Vec<BillingEvent>) -> WebhookOutcome {
    WebhookOutcome {
        response: WebhookResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::json!({ "message": message })
                .to_string()
                .into_bytes(),
        },
        events,
    }
}

fn to_wit(event: Event) -> BillingEvent {
    let reference = |event_id, external_ref| ServiceRef {
        event_id,
        external_ref,
    };
    match event {
        Event::Activate(order) => BillingEvent::Activate(Order {
            event_id: order.event_id,
            customer: Customer {
                external_id: order.customer_id,
                email: order.email,
                name: order.name,
            },
            plan: order.plan,
            template: order.template,
            hostname: order.hostname,
            ssh_keys: order.ssh_keys,
            external_ref: order.external_ref,
        }),
        Event::Suspend {
            event_id,
            external_ref,
        } => BillingEvent::Suspend(reference(event_id, external_ref)),
        Event::Unsuspend {
            event_id,
            external_ref,
        } => BillingEvent::Unsuspend(reference(event_id, external_ref)),
        Event::Terminate {
            event_id,
            external_ref,
        } => BillingEvent::Terminate(reference(event_id, external_ref)),
        Event::ChangePlan {
            event_id,
            external_ref,
            plan,
        } => BillingEvent::ChangePlan(PlanChange {
            event_id,
            external_ref,
            plan,
        }),
    }
}
