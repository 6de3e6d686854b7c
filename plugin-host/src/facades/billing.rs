//! `BillingAdapter`: turns a billing system's webhook into lifecycle events.

use super::{invalid, reported, unexpected};
use crate::PluginWorld;
use crate::data::{WebhookOutcome, WebhookRequest};
use crate::error::CallError;
use crate::invoke::{Answer, Invocation};
use crate::runtime::PluginRuntime;
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

impl BillingAdapter {
    /// Handles one webhook delivery; the answer and events are validated and unsafe response
    /// headers dropped.
    pub async fn handle_webhook(
        &self,
        request: &WebhookRequest,
    ) -> Result<WebhookOutcome, CallError> {
        let name = self.name.as_str();
        let invocation = Invocation::HandleWebhook {
            request: request.clone(),
        };
        let check = |answer| match answer {
            Answer::Webhook(handled) => {
                let mut outcome = handled.map_err(|failure| reported(name, failure))?;
                validate::webhook(&mut outcome).map_err(|d| invalid(name, d))?;
                Ok(outcome)
            }
            other => Err(unexpected(name, &other)),
        };
        let world = PluginWorld::BillingAdapter;
        self.runtime.call(name, world, invocation, check).await
    }
}
