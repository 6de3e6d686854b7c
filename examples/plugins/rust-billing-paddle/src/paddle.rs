//! Paddle Billing webhooks: signature, replay window and event mapping, in plain Rust.
//!
//! A webhook carries `Paddle-Signature: ts=<unix seconds>;h1=<hex HMAC-SHA256>`, the HMAC taken
//! with the notification secret over `<ts>:<raw body>`.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Webhooks signed longer ago than this (or this far in the future) are refused as replays.
pub const MAX_AGE_SECONDS: u64 = 300;

/// Why a webhook is not Paddle's, or not now: answered 400, no events.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejected(pub &'static str);

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Refuses `body` unless `header` signs it with `secret` within the replay window around `now`.
pub fn verify(secret: &str, header: Option<&str>, body: &[u8], now: u64) -> Result<(), Rejected> {
    let header = header.ok_or(Rejected("no Paddle-Signature header"))?;
    let mut ts = None;
    let mut signatures = Vec::new();
    for part in header.split(';') {
        match part.trim().split_once('=') {
            Some(("ts", value)) => ts = value.parse::<u64>().ok(),
            Some(("h1", value)) => signatures.push(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    let (Some(ts), false) = (ts, signatures.is_empty()) else {
        return Err(Rejected("a malformed Paddle-Signature header"));
    };
    if now.abs_diff(ts) > MAX_AGE_SECONDS {
        return Err(Rejected("the signature is too old or from the future"));
    }
    let matches = |signature: &String| {
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(format!("{ts}:").as_bytes());
        mac.update(body);
        // Constant time, whatever the signature's length.
        mac.verify_slice(&signature).is_ok()
    };
    if signatures.iter().any(matches) {
        Ok(())
    } else {
        Err(Rejected("the signature does not match"))
    }
}

/// The body as a JSON object.
pub fn decode(body: &[u8]) -> Result<Value, Rejected> {
    match serde_json::from_slice::<Value>(body) {
        Ok(payload) if payload.is_object() => Ok(payload),
        Ok(_) => Err(Rejected("the body is not a JSON object")),
        Err(_) => Err(Rejected("the body is not JSON")),
    }
}

/// `pri_a=small,pri_b=large` as a map from price to plan.
pub fn parse_price_plans(setting: Option<&str>) -> BTreeMap<String, String> {
    setting
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(price, plan)| !price.is_empty() && !plan.is_empty())
        .map(|(price, plan)| (price.to_owned(), plan.to_owned()))
        .collect()
}

/// A new subscription's order, from its `custom_data`, which the checkout sets.
#[derive(Debug, PartialEq, Eq)]
pub struct Activation {
    pub event_id: String,
    pub external_ref: String,
    pub customer_id: String,
    pub email: String,
    pub name: String,
    pub plan: String,
    pub template: String,
    pub hostname: Option<String>,
    pub ssh_keys: Vec<String>,
}

/// What Porthole is asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Activate(Activation),
    Suspend {
        event_id: String,
        external_ref: String,
    },
    Unsuspend {
        event_id: String,
        external_ref: String,
    },
    Terminate {
        event_id: String,
        external_ref: String,
    },
    ChangePlan {
        event_id: String,
        external_ref: String,
        plan: String,
    },
}

/// Porthole's events for one notification; none for notifications it ignores.
pub fn events(payload: &Value, price_plans: &BTreeMap<String, String>) -> Vec<Event> {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let data = &payload["data"];
    let (event_id, external_ref) = (text(&payload["event_id"]), text(&data["id"]));
    if event_id.is_empty() || external_ref.is_empty() {
        return Vec::new();
    }
    let event = match payload["event_type"].as_str().unwrap_or_default() {
        "subscription.activated" => {
            let custom = &data["custom_data"];
            Event::Activate(Activation {
                customer_id: text(&data["customer_id"]),
                email: text(&custom["email"]),
                name: text(&custom["name"]),
                plan: text(&custom["plan"]),
                template: text(&custom["template"]),
                hostname: custom["hostname"].as_str().map(str::to_owned),
                ssh_keys: (custom["ssh_keys"].as_array().into_iter().flatten())
                    .filter_map(|key| key.as_str().map(str::to_owned))
                    .collect(),
                event_id,
                external_ref,
            })
        }
        "subscription.paused" | "subscription.past_due" => Event::Suspend {
            event_id,
            external_ref,
        },
        "subscription.resumed" => Event::Unsuspend {
            event_id,
            external_ref,
        },
        "subscription.canceled" => Event::Terminate {
            event_id,
            external_ref,
        },
        "subscription.updated" => {
            let price = data["items"][0]["price"]["id"].as_str().unwrap_or_default();
            match price_plans.get(price) {
                Some(plan) => Event::ChangePlan {
                    event_id,
                    external_ref,
                    plan: plan.clone(),
                },
                None => return Vec::new(),
            }
        }
        _ => return Vec::new(),
    };
    vec![event]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "pdl_ntfset_example_secret";
    const NOW: u64 = 1_767_225_600;

    fn sign(body: &[u8], ts: u64, secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{ts}:").as_bytes());
        mac.update(body);
        format!("ts={ts};h1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_signed_body_is_accepted_and_a_changed_one_refused() {
        let body = br#"{"event_type":"subscription.activated"}"#;
        let header = sign(body, NOW, SECRET);
        assert_eq!(verify(SECRET, Some(&header), body, NOW + 10), Ok(()));
        assert!(verify(SECRET, Some(&header), b"{}", NOW).is_err());
        assert!(verify(SECRET, Some(&sign(body, NOW, "other")), body, NOW).is_err());
        let several = header.replace("h1=", "h1=00;h1=");
        assert_eq!(verify(SECRET, Some(&several), body, NOW), Ok(()));
    }

    #[test]
    fn the_replay_window_is_five_minutes_either_way() {
        let body = b"{}";
        let header = sign(body, NOW, SECRET);
        assert_eq!(verify(SECRET, Some(&header), body, NOW + 300), Ok(()));
        for now in [NOW + 301, NOW - 301] {
            assert_eq!(
                verify(SECRET, Some(&header), body, now),
                Err(Rejected("the signature is too old or from the future"))
            );
        }
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        for header in [None, Some(""), Some("ts=abc;h1=00"), Some("ts=1")] {
            assert!(verify(SECRET, header, b"{}", NOW).is_err(), "{header:?}");
        }
    }

    #[test]
    fn subscriptions_map_to_lifecycle_events() {
        let payload = |kind: &str, data: Value| json!({"event_id": "evt_1", "event_type": kind, "data": data});
        let activated = payload(
            "subscription.activated",
            json!({"id": "sub_1", "customer_id": "ctm_1", "custom_data": {"plan": "small"}}),
        );
        let [Event::Activate(order)] = &events(&activated, &BTreeMap::new())[..] else {
            panic!("one activation expected");
        };
        assert_eq!(
            (order.plan.as_str(), order.hostname.as_deref()),
            ("small", None)
        );
        let paused = payload("subscription.paused", json!({"id": "sub_1"}));
        assert!(matches!(
            &events(&paused, &BTreeMap::new())[..],
            [Event::Suspend { .. }]
        ));
        let plans = parse_price_plans(Some("pri_small=small, pri_large=large"));
        let updated = payload(
            "subscription.updated",
            json!({"id": "sub_1", "items": [{"price": {"id": "pri_large"}}]}),
        );
        assert!(matches!(
            &events(&updated, &plans)[..],
            [Event::ChangePlan { plan, .. }] if plan == "large"
        ));
        let other = payload("transaction.completed", json!({"id": "txn_1"}));
        assert!(events(&other, &plans).is_empty());
    }
}
