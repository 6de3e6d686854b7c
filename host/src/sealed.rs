//! Secrets at rest: values sealed with the operator's data key (ChaCha20-Poly1305, a random
//! 96-bit nonce per value) before they reach the database, so a copied database file reveals
//! nothing without the key file.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::config::DataKey;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open with this data key")]
    WrongKey,
}

/// Seals `plaintext`; the result is text (base64 of nonce and ciphertext).
pub fn seal(key: &DataKey, plaintext: &[u8]) -> String {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.0));
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let nonce = Nonce::from_slice(&nonce_bytes);
    // Encryption with a valid key and nonce cannot fail; an empty result would fail to open.
    let ciphertext = cipher.encrypt(nonce, plaintext).unwrap_or_default();
    let mut out = nonce_bytes.to_vec();
    out.extend(ciphertext);
    STANDARD.encode(out)
}

pub fn open(key: &DataKey, sealed: &str) -> Result<Vec<u8>, SealError> {
    let bytes = STANDARD.decode(sealed).map_err(|_| SealError::Malformed)?;
    if bytes.len() < NONCE_LEN {
        return Err(SealError::Malformed);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key.0));
    cipher
        .decrypt(Nonce::from_slice(nonce), ciphertext)
        .map_err(|_| SealError::WrongKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only() {
        let key = DataKey([7; 32]);
        let sealed = seal(&key, b"tunnel token");
        assert!(!sealed.contains("tunnel"));
        assert_eq!(open(&key, &sealed).unwrap(), b"tunnel token");
        assert!(matches!(
            open(&DataKey([8; 32]), &sealed),
            Err(SealError::WrongKey)
        ));
        assert!(matches!(open(&key, "AAAA"), Err(SealError::Malformed)));
        assert_ne!(
            sealed,
            seal(&key, b"tunnel token"),
            "a fresh nonce every time"
        );
    }
}
