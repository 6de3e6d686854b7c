//! Stripe's webhook signature scheme (`Stripe-Signature: t=…,v1=…`).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Why a signature was refused; the text goes into the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    MissingHeader,
    Malformed,
    NoV1Signature,
    StaleTimestamp,
    Mismatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::MissingHeader => "no Stripe-Signature header",
            SignatureError::Malformed => "Stripe-Signature header has no valid timestamp",
            SignatureError::NoV1Signature => "Stripe-Signature header has no v1 signature",
            SignatureError::StaleTimestamp => "timestamp outside the tolerance",
            SignatureError::Mismatch => {
                "no signature matches the expected signature for the payload"
            }
        })
    }
}

impl std::error::Error for SignatureError {}

/// Verifies `header` for `payload`. `now` is Unix seconds; `t` may differ from it by at most
/// `tolerance` seconds either way (Stripe retries sign afresh, so old signatures are replays).
pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secret: &str,
    now: u64,
    tolerance: u64,
) -> Result<(), SignatureError> {
    let (timestamp, signatures) = parse_header(header)?;
    if timestamp.abs_diff(now) > tolerance {
        return Err(SignatureError::StaleTimestamp);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    // `verify_slice` compares in constant time; every candidate is tried.
    let matched = signatures.iter().fold(false, |found, candidate| {
        found | mac.clone().verify_slice(candidate).is_ok()
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// `t` and every decodable `v1`; other schemes (`v0`) and junk are ignored as Stripe's own
/// libraries do.
fn parse_header(header: &str) -> Result<(u64, Vec<Vec<u8>>), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = value.parse::<u64>().ok(),
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoV1Signature);
    }
    Ok((timestamp, signatures))
}

/// `t=…,v1=…` for `payload`, as Stripe signs it (for tests and the simulator).
pub fn sign(payload: &[u8], secret: &str, timestamp: u64) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const NOW: u64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    #[test]
    fn accepts_a_correctly_signed_payload() {
        let header = sign(BODY, SECRET, NOW - 10);
        assert_eq!(verify_signature(&header, BODY, SECRET, NOW, 300), Ok(()));
    }

    #[test]
    fn rejects_a_tampered_body() {
        let header = sign(BODY, SECRET, NOW);
        let tampered = br#"{"id":"evt_1","type":"invoice.paid","x":1}"#;
        assert_eq!(
            verify_signature(&header, tampered, SECRET, NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_the_wrong_secret() {
        let header = sign(BODY, "whsec_other", NOW);
        assert_eq!(
            verify_signature(&header, BODY, SECRET, NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_a_stale_or_future_timestamp() {
        let old = sign(BODY, SECRET, NOW - 301);
        assert_eq!(
            verify_signature(&old, BODY, SECRET, NOW, 300),
            Err(SignatureError::StaleTimestamp)
        );
        let future = sign(BODY, SECRET, NOW + 301);
        assert_eq!(
            verify_signature(&future, BODY, SECRET, NOW, 300),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn accepts_when_one_of_several_v1_signatures_matches() {
        let good = sign(BODY, SECRET, NOW);
        let good_v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t={NOW},v1={},v1={good_v1},v0=abc", "00".repeat(32));
        assert_eq!(verify_signature(&header, BODY, SECRET, NOW, 300), Ok(()));
    }

    #[test]
    fn rejects_headers_without_timestamp_or_v1() {
        assert_eq!(
            verify_signature("v1=00", BODY, SECRET, NOW, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(&format!("t={NOW},v0=00"), BODY, SECRET, NOW, 300),
            Err(SignatureError::NoV1Signature)
        );
    }
}
