//! `BillingAdapter`: turns a billing system's webhook into lifecycle events.

use super::{invalid, reported};
use crate::PluginWorld;
use crate::bindings::billing as wit;
use crate::bindings::worlds::BillingAdapterPre;
use crate::data::{
    BillingEvent, Customer, Order, PlanChange, ServiceRef, WebhookOutcome, WebhookRequest,
    WebhookResponse,
};
use crate::error::CallError;
use crate::loader::WorldPre;
use crate::runtime::PluginRuntime;
use crate::sandbox::CallState;
use crate::validate;

/// A billing adapter plugin, by name.
#[derive(Clone)]
pub struct BillingAdapter {
    runtime: PluginRuntime,
    name: String,
}

impl PluginRuntime {
    pub fn billing_adapter(&self, name: &str) -> BillingAdapter {
        BillingAdapter {
            runtime: self.clone(),
            name: name.to_owned(),
        }
    }
}

fn billing_pre(pre: WorldPre) -> wasmtime::Result<BillingAdapterPre<CallState>> {
    match pre {
        WorldPre::Billing(pre) => Ok(pre),
        _ => Err(wasmtime::format_err!("not a billing adapter")),
    }
}

impl BillingAdapter {
    /// Handles one webhook delivery; the answer and events are validated and unsafe response
    /// headers dropped.
    pub async fn handle_webhook(
        &self,
        request: &WebhookRequest,
    ) -> Result<WebhookOutcome, CallError> {
        let name = self.name.as_str();
        let argument = wit::WebhookRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        };
        self.runtime
            .call(
                name,
                PluginWorld::BillingAdapter,
                move |store, pre| {
                    Box::pin(async move {
                        let instance = billing_pre(pre)?.instantiate_async(&mut *store).await?;
                        let billing = instance.porthole_plugin_billing();
                        billing.call_handle_webhook(&mut *store, &argument).await
                    })
                },
                |result| {
                    let outcome = result.map_err(|err| reported(name, err))?;
                    let mut outcome = WebhookOutcome {
                        response: WebhookResponse {
                            status: outcome.response.status,
                            headers: outcome.response.headers,
                            body: outcome.response.body,
                        },
                        events: outcome.events.into_iter().map(event_from_wit).collect(),
                    };
                    validate::webhook(&mut outcome).map_err(|d| invalid(name, d))?;
                    Ok(outcome)
                },
            )
            .await
    }
}

fn service_ref(r: wit::ServiceRef) -> ServiceRef {
    ServiceRef {
        event_id: r.event_id,
        external_ref: r.external_ref,
    }
}

fn event_from_wit(event: wit::BillingEvent) -> BillingEvent {
    match event {
        wit::BillingEvent::Activate(order) => BillingEvent::Activate(Order {
            event_id: order.event_id,
            customer: Customer {
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
        wit::BillingEvent::Suspend(r) => BillingEvent::Suspend(service_ref(r)),
        wit::BillingEvent::Unsuspend(r) => BillingEvent::Unsuspend(service_ref(r)),
        wit::BillingEvent::Terminate(r) => BillingEvent::Terminate(service_ref(r)),
        wit::BillingEvent::ChangePlan(c) => BillingEvent::ChangePlan(PlanChange {
            event_id: c.event_id,
            external_ref: c.external_ref,
            plan: c.plan,
        }),
    }
}
