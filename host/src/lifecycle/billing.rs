//! Billing events become operations. Each event is applied under the key
//! `billing:<plugin>:<event id>`, so a webhook delivered again (billing systems retry) starts
//! nothing new; the `billing_events` table remembers every event applied, including ones that
//! named a service we do not know.

use serde::Serialize;

use super::{Lifecycle, Operation, OrderError, OrderSpec, TakenHostname};
use crate::plugins::{BillingEvent, Order, WebhookRequest, WebhookResponse};
use crate::store::users::{self, Role};
use crate::store::{StoreError, billing, services};

/// What became of one event.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub event_id: String,
    /// `queued`, `duplicate`, or `failed` with the reason.
    pub outcome: String,
    pub service_id: Option<i64>,
    /// True when delivering the webhook again may succeed (a suspend that arrived before its
    /// activation, a busy database): the caller should ask the billing system to retry.
    pub retry: bool,
}

/// What a billing webhook came to.
#[derive(Debug)]
pub enum WebhookOutcome {
    /// Handled: the plugin's own answer, to pass on to the billing system.
    Answered(WebhookResponse),
    /// The plugin failed, or an event cannot be taken yet: the billing system should deliver
    /// the webhook again later (the event keys make that safe).
    DeliverAgain,
}

impl Lifecycle {
    /// Hands a webhook to billing plugin `plugin`, applies the events it returns and audits
    /// them.
    pub async fn handle_webhook(&self, plugin: &str, request: &WebhookRequest) -> WebhookOutcome {
        let handled = self
            .inner
            .plugins
            .billing_adapter(plugin)
            .handle_webhook(request)
            .await;
        let outcome = match handled {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(plugin, error = %err, "billing webhook failed");
                return WebhookOutcome::DeliverAgain;
            }
        };
        let applied = self.apply_billing(plugin, outcome.events).await;
        crate::audit::record(
            &self.inner.store,
            crate::audit::Entry {
                actor: &format!("plugin:{plugin}"),
                action: "billing.webhook",
                target: None,
                detail: serde_json::json!({ "events": applied }),
                client: None,
            },
        )
        .await;
        if applied.iter().any(|a| a.retry) {
            return WebhookOutcome::DeliverAgain;
        }
        WebhookOutcome::Answered(outcome.response)
    }

    pub async fn apply_billing(&self, plugin: &str, events: Vec<BillingEvent>) -> Vec<Applied> {
        let mut applied = Vec::with_capacity(events.len());
        for event in events {
            let event_id = event.event_id().to_owned();
            let outcome = match self.apply_one(plugin, &event).await {
                Ok((service_id, created)) => Applied {
                    event_id: event_id.clone(),
                    outcome: if created { "queued" } else { "duplicate" }.into(),
                    service_id,
                    retry: false,
                },
                Err(err) => {
                    tracing::warn!(plugin, event = event_id, error = %err, "billing event not applied");
                    // A suspend before its activation, or a busy database, may work next time.
                    let retry =
                        matches!(err, OrderError::NotFound("service") | OrderError::Store(_));
                    Applied {
                        event_id: event_id.clone(),
                        outcome: format!("failed: {err}"),
                        service_id: None,
                        retry,
                    }
                }
            };
            if !outcome.retry {
                self.remember_event(plugin, &event_id).await;
            }
            applied.push(outcome);
        }
        applied
    }

    async fn apply_one(
        &self,
        plugin: &str,
        event: &BillingEvent,
    ) -> Result<(Option<i64>, bool), OrderError> {
        let key = format!("billing:{plugin}:{}", event.event_id());
        let actor = format!("plugin:{plugin}");
        let operation = match event {
            BillingEvent::Activate(order) => self.activation(plugin, order).await?,
            BillingEvent::Suspend(r) => Operation::Suspend {
                service: self.service_for(plugin, &r.external_ref).await?,
            },
            BillingEvent::Unsuspend(r) => Operation::Unsuspend {
                service: self.service_for(plugin, &r.external_ref).await?,
            },
            BillingEvent::Terminate(r) => Operation::Terminate {
                service: self.service_for(plugin, &r.external_ref).await?,
            },
            BillingEvent::ChangePlan(change) => Operation::ChangePlan {
                service: self.service_for(plugin, &change.external_ref).await?,
                plan: change.plan.clone(),
            },
        };
        let receipt = self.submit(&key, &actor, operation).await?;
        Ok((Some(receipt.service_id), receipt.created))
    }

    /// The service this plugin's reference names. References are scoped by plugin, so one
    /// billing plugin can never act on another's services.
    async fn service_for(&self, plugin: &str, external_ref: &str) -> Result<i64, OrderError> {
        let reference = scoped_ref(plugin, external_ref);
        let service = services::by_external_ref(&self.inner.store, &reference).await?;
        service.map(|s| s.id).ok_or(OrderError::NotFound("service"))
    }

    /// The provision operation for a paid order, creating the customer's account on first sight.
    async fn activation(&self, plugin: &str, order: &Order) -> Result<Operation, OrderError> {
        let customer = self.customer_account(plugin, order).await?;
        let hostname = order
            .hostname
            .clone()
            .unwrap_or_else(|| default_hostname(&order.external_ref));
        Ok(Operation::Provision {
            customer,
            order: OrderSpec {
                plan: order.plan.clone(),
                template: order.template.clone(),
                hostname,
                username: "porthole".into(),
                ssh_keys: order.ssh_keys.clone(),
                password_hash: None,
            },
            external_ref: Some(scoped_ref(plugin, &order.external_ref)),
            taken_hostname: TakenHostname::PickFree,
        })
    }

    /// The account for the billing system's customer, found by its external id or created with a
    /// random password the customer replaces (an operator or a reset flow hands it over). Lookup
    /// and creation happen in one transaction, so two webhooks for a new customer make one account.
    async fn customer_account(&self, plugin: &str, order: &Order) -> Result<i64, OrderError> {
        let external_id = format!("{plugin}:{}", order.customer.external_id);
        let preferred = account_name(&order.customer.email, &order.customer.external_id);
        let fallback = account_name("", &format!("{plugin}{}", order.customer.external_id));
        let password = crate::auth::secret_token::generate();
        let hash = tokio::task::spawn_blocking(move || crate::auth::password::hash(&password))
            .await
            .map_err(|err| OrderError::Invalid(format!("hashing failed: {err}")))?
            .map_err(|err| OrderError::Invalid(err.to_string()))?;
        let (external_id, preferred, fallback, hash) = (&external_id, &preferred, &fallback, &hash);
        let id = self
            .inner
            .store
            .transaction(|tx| async move {
                if let Some(id) = billing::account_for(&tx, external_id).await? {
                    return Ok::<_, StoreError>(id);
                }
                // The e-mail may already name another account (an operator's, or one from
                // another billing system): then the billing id names this one.
                let taken = users::find_for_login(&tx, preferred).await?.is_some();
                let username = if taken { fallback } else { preferred };
                let user = users::insert(&tx, username, Role::Customer, hash).await?;
                billing::link_account(&tx, user.id, external_id).await?;
                Ok(user.id)
            })
            .await?;
        Ok(id)
    }

    async fn remember_event(&self, plugin: &str, event_id: &str) {
        if let Err(err) = billing::remember_event(&self.inner.store, plugin, event_id).await {
            tracing::warn!(error = %err, "could not record a billing event");
        }
    }
}

/// How a billing plugin's reference is stored: prefixed by the plugin.
fn scoped_ref(plugin: &str, external_ref: &str) -> String {
    format!("{plugin}:{external_ref}")
}

/// A username from the customer's e-mail, or from their billing id when the e-mail will not do.
fn account_name(email: &str, external_id: &str) -> String {
    let fine = |s: &str| {
        (1..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
    };
    if fine(email) {
        return email.to_ascii_lowercase();
    }
    let cleaned: String = external_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(48)
        .collect();
    format!("customer-{cleaned}")
}

/// `vm-` and the billing reference, cut to a DNS label.
fn default_hostname(external_ref: &str) -> String {
    let cleaned: String = external_ref
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric())
        .take(40)
        .collect();
    format!("vm-{cleaned}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_made_from_billing_data_are_valid() {
        assert_eq!(account_name("Ann@Example.com", "cus_1"), "ann@example.com");
        assert_eq!(account_name("not an email", "cus_Q1!"), "customer-cusQ1");
        assert_eq!(default_hostname("sub_1NXyZ"), "vm-sub1nxyz");
    }
}
