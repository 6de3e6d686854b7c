//! Second factors: TOTP (RFC 6238: HMAC-SHA-1, six digits, 30 s steps, one step of skew either
//! way, which is what authenticator apps do) and single-use recovery codes. Secrets are
//! generated here and sealed by the caller; a code's acceptance (once per step) is the store's.

use rand::RngCore as _;
use totp_rs::{Builder, Secret, Totp};

/// Who the authenticator app lists the account under.
const ISSUER: &str = "Porthole";
/// Recovery codes an account gets at a time.
pub const RECOVERY_CODES: usize = 10;

/// A fresh 160-bit secret, as RFC 4226 recommends.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 20];
    rand::rng().fill_bytes(&mut secret);
    secret
}

fn totp(secret: &[u8], account: &str) -> Result<Totp, String> {
    Builder::new()
        .with_secret(Secret::from(secret.to_vec()))
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|err| format!("a TOTP secret is unusable: {err}"))
}

/// What an authenticator app needs: the secret in base32 (typed in by hand) and the
/// `otpauth://` URL (read from a QR code).
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_url: String,
}

pub fn enrolment(secret: &[u8], account: &str) -> Result<Enrolment, String> {
    let totp = totp(secret, account)?;
    let otpauth_url = totp
        .to_url()
        .map_err(|err| format!("cannot write the otpauth URL: {err}"))?;
    Ok(Enrolment {
        secret_base32: Secret::from(secret.to_vec()).to_base32(),
        otpauth_url,
    })
}

/// The time step `code` is right for at `now` (unix seconds), if any. Spaces are ignored, as
/// apps show codes as `123 456`.
pub fn check_totp(secret: &[u8], code: &str, now: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let step = totp(secret, "").ok()?.check(&code, now)?;
    i64::try_from(step).ok()
}

/// New recovery codes: 80 random bits each, written `xxxx-xxxx-xxxx-xxxx` in lowercase base32.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::rng().fill_bytes(&mut bytes);
            let text = Secret::from(bytes.to_vec()).to_base32().to_lowercase();
            let groups: Vec<&str> =
                [&text[0..4], &text[4..8], &text[8..12], &text[12..16]].to_vec();
            groups.join("-")
        })
        .collect()
}

/// What a recovery code is stored as: the SHA-256 of its letters, however it was typed.
pub fn recovery_code_hash(code: &str) -> [u8; 32] {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    super::secret_token::digest(&normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 vectors, cut to six digits.
    #[test]
    fn codes_match_the_rfc_vectors_within_one_step_either_way() {
        let secret = b"12345678901234567890";
        assert_eq!(check_totp(secret, "287082", 59), Some(1));
        assert_eq!(check_totp(secret, "081804", 1111111109), Some(37037036));
        assert_eq!(
            check_totp(secret, "081 804", 1111111109 + 30),
            Some(37037036)
        );
        assert_eq!(
            check_totp(secret, "081804", 1111111109 + 61),
            None,
            "two steps late"
        );
        assert_eq!(check_totp(secret, "08180", 1111111109), None);
        assert_eq!(check_totp(secret, "abcdef", 1111111109), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_however_they_are_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(codes[0].len(), 19);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let typed = codes[0].to_uppercase().replace('-', " ");
        assert_eq!(recovery_code_hash(&typed), recovery_code_hash(&codes[0]));
    }

    #[test]
    fn the_otpauth_url_names_the_issuer_and_account() {
        let enrolment = enrolment(&new_secret(), "alice").unwrap();
        assert!(
            enrolment
                .otpauth_url
                .starts_with("otpauth://totp/Porthole:alice?")
        );
        assert!(enrolment.otpauth_url.contains(&enrolment.secret_base32));
    }
}
