//! `POST /hooks/billing/{plugin}`: a billing system's webhook, handed whole to that billing
//! plugin. The plugin verifies it (signatures are its business) and says what to answer and which
//! events to apply; we answer exactly what it said.
//!
//! Each plugin handles a bounded number of deliveries at once ([`WebhookGate`]): the plugin pool
//! is shared, and a flood of webhooks must not starve the calls provisioning waits on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::extract::BodyBytes;
use crate::config::PluginWorld;
use crate::lifecycle::WebhookOutcome;
use crate::plugins::WebhookRequest;

/// Deliveries in flight, per billing plugin and in all: at most half the plugin pool goes to
/// webhooks, whatever the number of billing plugins, so provisioning's calls always find slots.
pub struct WebhookGate {
    max_in_flight: usize,
    all: Arc<Semaphore>,
    /// One semaphore per plugin, made on its first delivery; only configured billing plugins get
    /// one, so made-up names in URLs cannot grow the map.
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl WebhookGate {
    pub fn new(max_in_flight: u32) -> Self {
        Self {
            max_in_flight: max_in_flight as usize,
            all: Arc::new(Semaphore::new(crate::plugins::POOL_SLOTS as usize / 2)),
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// Permits for one delivery to `plugin`, or `None` when it, or webhooks in all, have their
    /// fill.
    fn enter(&self, plugin: &str) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let semaphore = {
            let mut gates = self
                .gates
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            gates
                .entry(plugin.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.max_in_flight)))
                .clone()
        };
        let own = semaphore.try_acquire_owned().ok()?;
        let shared = self.all.clone().try_acquire_owned().ok()?;
        Some((own, shared))
    }
}

pub async fn billing(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
) -> Response {
    // Only configured billing plugins are counted: a label per path anyone can send to would
    // grow without end.
    let counted = state.plugins.world_of(&plugin) == Some(PluginWorld::BillingAdapter);
    let response = deliver(&state, &plugin, method, uri, headers, body).await;
    if counted {
        crate::metrics::INSTRUMENTS.webhook(&plugin, response.status().as_u16());
    }
    response
}

async fn deliver(
    state: &AppState,
    plugin: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    if state.plugins.world_of(plugin) != Some(PluginWorld::BillingAdapter) {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": "no such billing plugin" })),
        )
            .into_response();
    }
    let Some(_permit) = state.webhooks.enter(plugin) else {
        tracing::warn!(
            plugin,
            "billing webhook refused: too many deliveries in flight"
        );
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({ "error": "too many deliveries at once; deliver again later" })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let request = WebhookRequest {
        method: method.to_string(),
        // The contract's path is what follows the plugin's prefix, which the route matches
        // exactly: `/`, with the query string if any.
        path: uri
            .query()
            .map_or_else(|| "/".to_owned(), |query| format!("/?{query}")),
        headers: headers
            .iter()
            .filter(|(name, _)| forwardable(name.as_str()))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    match state.lifecycle.handle_webhook(plugin, &request).await {
        WebhookOutcome::Answered(answer) => plugin_response(answer),
        // A retryable 503: the billing system delivers again later.
        WebhookOutcome::DeliverAgain => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": "try again later" })),
        )
            .into_response(),
    }
}

/// A webhook's own credentials are the plugin's business (a signature header); a browser's
/// cookies and our API tokens never are.
fn forwardable(name: &str) -> bool {
    !matches!(
        name,
        "cookie" | "authorization" | "x-forwarded-for" | "forwarded"
    ) && !name.starts_with("proxy-")
}

/// The plugin's answer, made harmless on our origin: it is served from the panel's own host, so
/// a page with script or a redirect would be an attack on every signed-in operator. Only the
/// status (not a redirect) and a plain-text or JSON body pass.
fn plugin_response(answer: crate::plugins::WebhookResponse) -> Response {
    let status = StatusCode::from_u16(answer.status)
        .ok()
        .filter(|status| !status.is_redirection() && !status.is_informational())
        .unwrap_or(StatusCode::OK);
    let content_type = answer
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.to_ascii_lowercase())
        .filter(|value| value.starts_with("application/json") || value.starts_with("text/plain"))
        .unwrap_or_else(|| "text/plain".to_owned());
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    let safe = [
        (header::CONTENT_TYPE, content_type.as_str()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ),
    ];
    for (name, value) in safe {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}
