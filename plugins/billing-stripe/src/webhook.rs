//! One webhook delivery: verify, parse, map, answer.

use crate::events::{BillingEvent, map_event};
use crate::signature::verify_signature;
use porthole_plugin_support::error::PluginError;
use porthole_plugin_support::settings::{Kv, Settings};
use serde_json::{Value, json};

/// Stripe's own default tolerance.
const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

/// The WIT `webhook-request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The WIT `webhook-response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The WIT `webhook-outcome`, plus the Stripe event id (also inside each event) for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub response: WebhookResponse,
    pub events: Vec<BillingEvent>,
    pub event_id: Option<String>,
}

impl Outcome {
    fn refused(status: u16, reason: &str) -> Self {
        Outcome {
            response: json_response(status, &json!({"error": reason})),
            events: Vec::new(),
            event_id: None,
        }
    }
}

fn json_response(status: u16, body: &Value) -> WebhookResponse {
    WebhookResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// Handles one delivery at Unix time `now`. Bad requests and bad signatures are answered (4xx,
/// no events); configuration problems are errors, so Porthole answers 503 and Stripe retries.
pub fn handle_webhook(
    request: &WebhookRequest,
    settings: &impl Settings,
    kv: &impl Kv,
    now: u64,
) -> Result<Outcome, PluginError> {
    let secret = settings.required("webhook_secret")?;
    let tolerance = match settings.get("tolerance_seconds") {
        Some(value) => value.trim().parse().map_err(|_| {
            PluginError::invalid(format!("tolerance_seconds {value:?} is not a number"))
        })?,
        None => DEFAULT_TOLERANCE_SECONDS,
    };
    if !request.method.eq_ignore_ascii_case("POST") {
        return Ok(Outcome::refused(405, "webhooks are POSTed"));
    }
    let Some(header) = header(request, "stripe-signature") else {
        return Ok(Outcome::refused(400, "no Stripe-Signature header"));
    };
    if let Err(err) = verify_signature(header, &request.body, secret.trim(), now, tolerance) {
        return Ok(Outcome::refused(400, &err.to_string()));
    }
    let Ok(event) = serde_json::from_slice::<Value>(&request.body) else {
        return Ok(Outcome::refused(400, "the body is not a JSON event"));
    };
    let events = map_event(&event, settings, kv)?;
    Ok(Outcome {
        response: json_response(200, &json!({"received": true})),
        events,
        event_id: event["id"].as_str().map(str::to_owned),
    })
}

fn header<'a>(request: &'a WebhookRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sign;
    use porthole_plugin_support::settings::{MapSettings, MemoryKv};

    const NOW: u64 = 1_700_000_000;
    const SECRET: &str = "whsec_abc";

    fn request(body: &str, signature: Option<String>) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: signature
                .map(|s| ("stripe-signature".into(), s))
                .into_iter()
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_signed_event_is_received_with_its_events_and_id() {
        let body = r#"{"id":"evt_9","type":"customer.subscription.deleted","data":{"object":{"id":"sub_9"}}}"#;
        let settings = MapSettings::new([("webhook_secret", SECRET)]);
        let outcome = handle_webhook(
            &request(body, Some(sign(body.as_bytes(), SECRET, NOW))),
            &settings,
            &MemoryKv::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(outcome.response.status, 200);
        assert_eq!(outcome.response.body, br#"{"received":true}"#);
        assert_eq!(outcome.event_id.as_deref(), Some("evt_9"));
        assert_eq!(outcome.events.len(), 1);
    }

    #[test]
    fn bad_signatures_get_400_with_the_reason_and_no_events() {
        let body = r#"{"id":"evt_9","type":"customer.subscription.deleted","data":{"object":{"id":"sub_9"}}}"#;
        let settings = MapSettings::new([("webhook_secret", SECRET)]);
        let kv = MemoryKv::default();
        let tampered = body.replace("sub_9", "sub_1");
        let outcome = handle_webhook(
            &request(&tampered, Some(sign(body.as_bytes(), SECRET, NOW))),
            &settings,
            &kv,
            NOW,
        )
        .unwrap();
        assert_eq!(outcome.response.status, 400);
        assert!(String::from_utf8_lossy(&outcome.response.body).contains("no signature matches"));
        assert!(outcome.events.is_empty());
        let unsigned = handle_webhook(&request(body, None), &settings, &kv, NOW).unwrap();
        assert_eq!(unsigned.response.status, 400);
    }

    #[test]
    fn a_missing_secret_is_a_configuration_error() {
        let err = handle_webhook(
            &request("{}", None),
            &MapSettings::default(),
            &MemoryKv::default(),
            NOW,
        )
        .unwrap_err();
        assert!(err.message.contains("webhook_secret"));
    }
}
