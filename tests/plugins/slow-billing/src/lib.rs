//! Hostile: a billing adapter that never answers a webhook. The epoch deadline must stop it.

wit_bindgen::generate!({ path: "../../../wit", world: "billing-adapter", generate_all });

use exports::porthole::plugin::billing::{Guest, PluginError, WebhookOutcome, WebhookRequest};

struct Plugin;

impl Guest for Plugin {
    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let mut counter = 0u64;
        loop {
            counter = std::hint::black_box(counter.wrapping_add(request.body.len() as u64));
        }
    }
}

export!(Plugin);
