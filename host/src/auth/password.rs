//! argon2id password hashing.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password accepted for a new or changed account.
pub const MIN_LENGTH: usize = 10;
/// Longer is refused before hashing: a megabyte "password" is an attack on the CPU, not a secret.
pub const MAX_LENGTH: usize = 1024;

/// Hashes with argon2id and the crate's recommended parameters (OWASP's minimum: m=19 MiB, t=2).
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|err| anyhow::anyhow!("while hashing a password: {err}"))?;
    Ok(hash.to_string())
}

/// True when `password` matches `stored`; a malformed stored hash never matches.
pub fn verify(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Spends the same time as a real verification, so a sign-in for an unknown username takes as
/// long as one with a wrong password and does not reveal which usernames exist.
pub fn verify_dummy(password: &str) {
    static DUMMY: LazyLock<Option<String>> = LazyLock::new(|| hash("not a real password").ok());
    if let Some(dummy) = DUMMY.as_deref() {
        let _ = verify(dummy, password);
    }
}

/// Why a new password is refused, in words for the user.
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(format!(
            "the password must have at least {MIN_LENGTH} characters"
        ));
    }
    check_length(password)
}

/// Whether `password` is short enough to be hashed at all.
pub fn check_length(password: &str) -> Result<(), String> {
    if password.len() > MAX_LENGTH {
        return Err(format!("the password must have at most {MAX_LENGTH} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify(&stored, "correct horse battery"));
        assert!(!verify(&stored, "correct horse battery "));
        assert!(!verify("garbage", "correct horse battery"));
    }
}
