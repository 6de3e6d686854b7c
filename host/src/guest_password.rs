//! Passwords Porthole makes for a customer's VM: shown to the customer once, handed to the guest
//! as a crypt(3) hash (cloud-init) or over the guest agent, and never stored in plain text.

use rand::Rng;
use sha_crypt::{Sha512Params, sha512_crypt_b64};

/// Letters and digits a person can copy by hand: no 0/O, 1/l/I.
const LEGIBLE: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
/// 20 characters of 56: about 116 bits.
const LENGTH: usize = 20;
/// crypt(3)'s salt alphabet.
const SALT_ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// glibc's default rounds, which `$6$salt$…` (no `rounds=`) means.
const ROUNDS: usize = 5000;

/// A fresh random password.
pub fn generate() -> String {
    let mut rng = rand::rng();
    (0..LENGTH)
        .map(|_| char::from(LEGIBLE[rng.random_range(0..LEGIBLE.len())]))
        .collect()
}

/// The SHA-512 crypt hash (`$6$salt$…`) of `password` with a fresh 16-character salt.
pub fn crypt_hash(password: &str) -> String {
    let mut rng = rand::rng();
    let salt: String = (0..16)
        .map(|_| char::from(SALT_ALPHABET[rng.random_range(0..SALT_ALPHABET.len())]))
        .collect();
    hash_with_salt(password, &salt)
}

fn hash_with_salt(password: &str, salt: &str) -> String {
    // ROUNDS is within sha-crypt's bounds and the salt is 16 characters, so this cannot fail;
    // were it to, `!` (crypt(3)'s locked account) is a hash no password matches.
    let params = Sha512Params::new(ROUNDS).unwrap_or_default();
    match sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params) {
        Ok(hash) => format!("$6${salt}${hash}"),
        Err(_) => "!".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_glibc_crypt() {
        // `openssl passwd -6 -salt saltsaltsaltsalt hunter22`
        assert_eq!(
            hash_with_salt("hunter22", "saltsaltsaltsalt"),
            "$6$saltsaltsaltsalt$jyvHgtT1goBSoiXiLIBpRHHoYBokgsBpSvVCQyw5AOcA3c9LgOT9QVNIWmL4W7NZnYL4ySfN.Hni7dPPJ5GAs0"
        );
    }

    #[test]
    fn passwords_are_long_legible_and_different() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), LENGTH);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| LEGIBLE.contains(&c)));
        assert!(crypt_hash(&a).starts_with("$6$"));
    }
}
