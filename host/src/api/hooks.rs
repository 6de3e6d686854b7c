//! `POST /hooks/billing/{plugin}`: a billing system's webhook, handed whole to that billing
//! plugin. The plugin verifies it (signatures are its business) and says what to answer and which
//! events to apply; we answer exactly what it said.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::plugins::WebhookRequest;

pub async fn billing(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = WebhookRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let outcome = match state
        .plugins
        .billing_adapter(&plugin)
        .handle_webhook(&request)
        .await
    {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::warn!(plugin, error = %err, "billing webhook failed");
            // A retryable 503 lets the billing system deliver again later.
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "error": "the webhook could not be handled" })),
            )
                .into_response();
        }
    };
    let applied = state.lifecycle.apply_billing(&plugin, outcome.events).await;
    crate::audit::record(
        &state.store,
        crate::audit::Entry {
            actor: &format!("plugin:{plugin}"),
            action: "billing.webhook",
            target: None,
            detail: json!({ "events": applied }),
            client: None,
        },
    )
    .await;
    plugin_response(outcome.response)
}

fn plugin_response(answer: crate::plugins::WebhookResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
