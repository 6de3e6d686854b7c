//! Stripe event → Porthole lifecycle event.

use porthole_plugin_support::error::PluginError;
use porthole_plugin_support::settings::{Kv, Settings};
use serde_json::Value;

/// The WIT `customer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub external_id: String,
    pub email: String,
    pub name: String,
}

/// The WIT `order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub event_id: String,
    pub customer: Customer,
    pub plan: String,
    pub template: String,
    pub hostname: Option<String>,
    pub ssh_keys: Vec<String>,
    pub external_ref: String,
}

/// The WIT `service-ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub event_id: String,
    pub external_ref: String,
}

/// The WIT `plan-change`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    pub event_id: String,
    pub external_ref: String,
    pub plan: String,
}

/// The WIT `billing-event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingEvent {
    Activate(Order),
    Suspend(ServiceRef),
    Unsuspend(ServiceRef),
    Terminate(ServiceRef),
    ChangePlan(PlanChange),
}

/// The lifecycle events one verified Stripe event means (often none).
pub fn map_event(
    event: &Value,
    settings: &impl Settings,
    kv: &impl Kv,
) -> Result<Vec<BillingEvent>, PluginError> {
    let event_id = text(&event["id"])
        .ok_or_else(|| PluginError::invalid("Stripe event without an id"))?
        .to_owned();
    let object = &event["data"]["object"];
    let service = |external_ref: String| ServiceRef {
        event_id: event_id.clone(),
        external_ref,
    };
    let event = match text(&event["type"]).unwrap_or_default() {
        "checkout.session.completed" => {
            Some(BillingEvent::Activate(order(&event_id, object, settings)?))
        }
        "invoice.payment_failed" => match invoice_subscription(object) {
            Some(sub) => {
                // Remembered so that the payment that follows unsuspends.
                kv.set(&failed_key(&sub), b"1")?;
                Some(BillingEvent::Suspend(service(sub)))
            }
            None => None,
        },
        "invoice.paid" | "invoice.payment_succeeded" => match invoice_subscription(object) {
            Some(sub) if kv.get(&failed_key(&sub))?.is_some() => {
                kv.delete(&failed_key(&sub))?;
                Some(BillingEvent::Unsuspend(service(sub)))
            }
            _ => None,
        },
        "customer.subscription.deleted" => {
            text(&object["id"]).map(|sub| BillingEvent::Terminate(service(sub.to_owned())))
        }
        "customer.subscription.updated" => plan_change(&event_id, event, settings)?,
        _ => None,
    };
    Ok(event.into_iter().collect())
}

fn text(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.is_empty())
}

fn failed_key(subscription: &str) -> String {
    format!("payment-failed/{subscription}")
}

/// The invoice's subscription: top-level before API version 2025-03-31, under
/// `parent.subscription_details` since.
fn invoice_subscription(invoice: &Value) -> Option<String> {
    text(&invoice["subscription"])
        .or_else(|| text(&invoice["parent"]["subscription_details"]["subscription"]))
        .map(str::to_owned)
}

/// The order from a completed checkout session. Plan, template, hostname and SSH keys come from
/// the session's metadata (set when the session is created); the subscription (or, for one-off
/// payments, the session) is the reference later events use.
fn order(event_id: &str, session: &Value, settings: &impl Settings) -> Result<Order, PluginError> {
    let metadata = &session["metadata"];
    let from_metadata_or_setting = |key: &str, setting: &str| {
        text(&metadata[key])
            .map(str::to_owned)
            .or_else(|| settings.get(setting))
            .ok_or_else(|| {
                PluginError::invalid(format!(
                    "checkout session has no `{key}` metadata and the `{setting}` setting is not set"
                ))
            })
    };
    let external_ref = text(&session["subscription"])
        .or_else(|| text(&session["id"]))
        .ok_or_else(|| PluginError::invalid("checkout session without an id"))?;
    let email = text(&session["customer_details"]["email"])
        .or_else(|| text(&session["customer_email"]))
        .ok_or_else(|| PluginError::invalid("checkout session without a customer email"))?;
    Ok(Order {
        event_id: event_id.to_owned(),
        customer: Customer {
            external_id: text(&session["customer"]).unwrap_or(email).to_owned(),
            email: email.to_owned(),
            name: text(&session["customer_details"]["name"])
                .unwrap_or_default()
                .to_owned(),
        },
        plan: from_metadata_or_setting("plan", "default_plan")?,
        template: from_metadata_or_setting("template", "default_template")?,
        hostname: text(&metadata["hostname"]).map(str::to_owned),
        ssh_keys: text(&metadata["ssh_keys"])
            .map(|keys| {
                keys.lines()
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        external_ref: external_ref.to_owned(),
    })
}

/// A subscription update changes plan only when its price changed (`previous_attributes`
/// names `items` or `plan`); status or metadata updates mean nothing here.
fn plan_change(
    event_id: &str,
    event: &Value,
    settings: &impl Settings,
) -> Result<Option<BillingEvent>, PluginError> {
    let previous = &event["data"]["previous_attributes"];
    if previous.get("items").is_none() && previous.get("plan").is_none() {
        return Ok(None);
    }
    let subscription = &event["data"]["object"];
    let Some(external_ref) = text(&subscription["id"]) else {
        return Ok(None);
    };
    let price = text(&subscription["items"]["data"][0]["price"]["id"])
        .or_else(|| text(&subscription["plan"]["id"]))
        .ok_or_else(|| PluginError::invalid("updated subscription without a price"))?;
    let plan = plan_for_price(price, settings)?;
    Ok(Some(BillingEvent::ChangePlan(PlanChange {
        event_id: event_id.to_owned(),
        external_ref: external_ref.to_owned(),
        plan,
    })))
}

/// `price_plans` is `price_id=plan` pairs, comma-separated. An unmapped price is an error, so
/// Stripe retries the delivery once the operator has added it.
fn plan_for_price(price: &str, settings: &impl Settings) -> Result<String, PluginError> {
    let map = settings.get("price_plans").unwrap_or_default();
    map.split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(id, _)| id.trim() == price)
        .map(|(_, plan)| plan.trim().to_owned())
        .ok_or_else(|| {
            PluginError::invalid(format!("price {price} is not in the `price_plans` setting"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use porthole_plugin_support::settings::{MapSettings, MemoryKv};
    use serde_json::json;

    fn settings() -> MapSettings {
        MapSettings::new([
            ("price_plans", "price_small=small, price_large=large"),
            ("default_template", "debian-12"),
        ])
    }

    fn event(kind: &str, object: Value) -> Value {
        json!({"id": "evt_1", "type": kind, "data": {"object": object}})
    }

    #[test]
    fn checkout_completed_activates_an_order() {
        let session = json!({"id": "cs_1", "customer": "cus_1", "subscription": "sub_1",
            "customer_details": {"email": "a@example.com", "name": "Ada"},
            "metadata": {"plan": "small", "hostname": "ada1", "ssh_keys": "ssh-ed25519 AAAA a\nssh-ed25519 BBBB b"}});
        let events = map_event(
            &event("checkout.session.completed", session),
            &settings(),
            &MemoryKv::default(),
        )
        .unwrap();
        let [BillingEvent::Activate(order)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(order.external_ref, "sub_1");
        assert_eq!(order.customer.external_id, "cus_1");
        assert_eq!(order.plan, "small");
        assert_eq!(order.template, "debian-12");
        assert_eq!(order.hostname.as_deref(), Some("ada1"));
        assert_eq!(order.ssh_keys.len(), 2);
    }

    #[test]
    fn failure_suspends_and_the_next_payment_unsuspends_once() {
        let kv = MemoryKv::default();
        let invoice = json!({"id": "in_1", "subscription": "sub_1"});
        let failed = map_event(
            &event("invoice.payment_failed", invoice.clone()),
            &settings(),
            &kv,
        )
        .unwrap();
        assert!(matches!(&failed[..], [BillingEvent::Suspend(r)] if r.external_ref == "sub_1"));
        let paid = map_event(&event("invoice.paid", invoice.clone()), &settings(), &kv).unwrap();
        assert!(matches!(&paid[..], [BillingEvent::Unsuspend(r)] if r.external_ref == "sub_1"));
        let succeeded = map_event(
            &event("invoice.payment_succeeded", invoice),
            &settings(),
            &kv,
        )
        .unwrap();
        assert_eq!(succeeded, vec![]);
    }

    #[test]
    fn a_regular_payment_changes_nothing() {
        let invoice =
            json!({"id": "in_2", "parent": {"subscription_details": {"subscription": "sub_2"}}});
        assert_eq!(
            map_event(
                &event("invoice.paid", invoice),
                &settings(),
                &MemoryKv::default()
            )
            .unwrap(),
            vec![]
        );
    }

    #[test]
    fn deleted_subscription_terminates() {
        let events = map_event(
            &event("customer.subscription.deleted", json!({"id": "sub_3"})),
            &settings(),
            &MemoryKv::default(),
        )
        .unwrap();
        assert!(
            matches!(&events[..], [BillingEvent::Terminate(r)] if r.external_ref == "sub_3" && r.event_id == "evt_1")
        );
    }

    #[test]
    fn a_price_change_changes_plan_and_other_updates_do_not() {
        let subscription =
            json!({"id": "sub_4", "items": {"data": [{"price": {"id": "price_large"}}]}});
        let mut changed = event("customer.subscription.updated", subscription.clone());
        changed["data"]["previous_attributes"] =
            json!({"items": {"data": [{"price": {"id": "price_small"}}]}});
        let events = map_event(&changed, &settings(), &MemoryKv::default()).unwrap();
        assert!(
            matches!(&events[..], [BillingEvent::ChangePlan(c)] if c.plan == "large" && c.external_ref == "sub_4")
        );
        let mut status_only = event("customer.subscription.updated", subscription);
        status_only["data"]["previous_attributes"] = json!({"status": "trialing"});
        assert_eq!(
            map_event(&status_only, &settings(), &MemoryKv::default()).unwrap(),
            vec![]
        );
    }

    #[test]
    fn an_unmapped_price_is_an_error_so_stripe_retries() {
        let mut changed = event(
            "customer.subscription.updated",
            json!({"id": "sub_5", "items": {"data": [{"price": {"id": "price_new"}}]}}),
        );
        changed["data"]["previous_attributes"] = json!({"items": {}});
        assert!(map_event(&changed, &settings(), &MemoryKv::default()).is_err());
    }
}
