//! Random bearer secrets (session ids, API tokens) and the digests we store instead of them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// API tokens start with this, so secret scanners and humans recognise a leaked one.
pub const API_TOKEN_PREFIX: &str = "pht_";

/// A fresh 256-bit random value, URL-safe base64.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn generate_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", generate())
}

/// What the store keeps of a secret. A plain SHA-256 suffices: the input has 256 bits of entropy,
/// so there is nothing to brute-force and no need for a slow hash.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_distinct_and_carry_256_bits() {
        let a = generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, generate());
        assert!(generate_api_token().starts_with(API_TOKEN_PREFIX));
    }
}
