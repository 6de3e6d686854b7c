//! Compiled plugin artifacts, sealed with a MAC so that only bytes Porthole itself produced are
//! ever handed to `Component::deserialize`.
//!
//! `Component::deserialize` trusts its input completely: a crafted artifact is native code. The
//! daemon therefore appends an HMAC-SHA256 under a key only it holds to every artifact it writes,
//! and [`open`] deserializes only after that MAC verifies. This crate owns nothing else; the
//! cache's layout and policy live in the daemon (`porthole::plugins::engine`).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 32;

fn mac(key: &[u8; 32], artifact: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail for 32 bytes.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(artifact);
    mac
}

/// `artifact` (from `Component::serialize`) followed by its MAC under `key`.
pub fn seal(key: &[u8; 32], mut artifact: Vec<u8>) -> Vec<u8> {
    let tag = mac(key, &artifact).finalize().into_bytes();
    artifact.extend_from_slice(&tag);
    artifact
}

/// Why a sealed artifact was not opened.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Too short or the MAC does not verify: not something we wrote with this key.
    NotOurs,
    /// Ours, but this engine cannot load it (e.g. another wasmtime version).
    Incompatible(String),
}

/// The component sealed in `sealed`, if its MAC verifies under `key`.
pub fn open(engine: &Engine, key: &[u8; 32], sealed: &[u8]) -> Result<Component, OpenError> {
    if sealed.len() < TAG_LEN {
        return Err(OpenError::NotOurs);
    }
    let (artifact, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    mac(key, artifact)
        .verify_slice(tag)
        .map_err(|_| OpenError::NotOurs)?;
    // SAFETY: the MAC proves these bytes are exactly what `Component::serialize` produced in a
    // Porthole holding `key`; wasmtime additionally checks that they match this engine's
    // configuration and version, and refuses them otherwise.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, artifact) };
    component.map_err(|err| OpenError::Incompatible(format!("{err:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampered_or_foreign_artifacts_are_never_deserialized() {
        let key = [7; 32];
        let sealed = seal(&key, b"not really an artifact".to_vec());
        let engine = Engine::default();
        // Right key, but not a real artifact: the MAC passes and wasmtime's own check refuses.
        assert!(matches!(
            open(&engine, &key, &sealed),
            Err(OpenError::Incompatible(_))
        ));
        // Wrong key, flipped byte, truncated: refused before wasmtime sees anything.
        assert_eq!(
            open(&engine, &[8; 32], &sealed).err(),
            Some(OpenError::NotOurs)
        );
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert_eq!(
            open(&engine, &key, &flipped).err(),
            Some(OpenError::NotOurs)
        );
        assert_eq!(
            open(&engine, &key, &sealed[..10]).err(),
            Some(OpenError::NotOurs)
        );
    }
}
