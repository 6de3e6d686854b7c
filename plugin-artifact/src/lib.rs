//! Compiled plugin artifacts, sealed with a MAC so that only bytes Porthole itself produced, for
//! this very plugin, component and engine, are ever handed to `Component::deserialize`.
//!
//! `Component::deserialize` trusts its input completely: a crafted artifact is native code. The
//! daemon therefore seals every artifact it writes with an HMAC-SHA256 under a key only it holds,
//! and [`open`] deserializes only after that MAC verifies. The MAC covers, besides the artifact,
//! what the artifact is for: the plugin's name, the component's SHA-256 and the engine's settings.
//! A valid artifact copied to another plugin's cache entry, or left over from another component or
//! engine, is therefore refused like a forged one, and can never run in place of the code the
//! operator pinned. This crate owns nothing else; the cache's layout and policy live in the
//! daemon (`porthole::plugins::engine`).
//!
//! The sealed form is `[FORMAT_VERSION] artifact tag`. A file of another version is refused as
//! [`OpenError::OtherFormat`] before anything else is looked at, so a future layout change costs a
//! recompilation, never an error.

use std::hash::{Hash, Hasher};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 32;

/// The layout [`seal`] writes and [`open`] reads.
pub const FORMAT_VERSION: u8 = 1;

/// What an artifact was compiled for; bound into its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The plugin's name in the operator's configuration.
    pub plugin: &'a str,
    /// The SHA-256 of the component the artifact was compiled from, as the manifest pins it.
    pub sha256: &'a str,
}

/// A digest of everything about `engine` that decides whether an artifact it compiled can run
/// in it: wasmtime's version and the engine's settings.
pub fn engine_fingerprint(engine: &Engine) -> [u8; 32] {
    /// Feeds what `Hash` writes into SHA-256 instead of a 64-bit hash.
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            // Never asked for: the digest is taken from the inner SHA-256.
            0
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

fn mac(key: &[u8; 32], engine: &Engine, binding: &Binding<'_>, artifact: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail for 32 bytes.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"porthole plugin artifact");
    mac.update(&[FORMAT_VERSION]);
    // Length-prefixed, so that no two different bindings feed the MAC the same bytes.
    for field in [binding.plugin.as_bytes(), binding.sha256.as_bytes()] {
        mac.update(&(field.len() as u64).to_le_bytes());
        mac.update(field);
    }
    mac.update(&engine_fingerprint(engine));
    mac.update(artifact);
    mac
}

/// `artifact` (from `Component::serialize` in `engine`) sealed for `binding` under `key`.
pub fn seal(key: &[u8; 32], engine: &Engine, binding: &Binding<'_>, artifact: &[u8]) -> Vec<u8> {
    let tag = mac(key, engine, binding, artifact).finalize().into_bytes();
    let mut sealed = Vec::with_capacity(1 + artifact.len() + TAG_LEN);
    sealed.push(FORMAT_VERSION);
    sealed.extend_from_slice(artifact);
    sealed.extend_from_slice(&tag);
    sealed
}

/// Why a sealed artifact was not opened. Each one means: compile afresh.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Written in another layout (or empty): not something this version reads.
    OtherFormat(Option<u8>),
    /// Too short, or the MAC does not verify: not written with this key for this plugin,
    /// component and engine.
    NotOurs,
    /// Ours, but wasmtime refuses it for this engine anyway.
    Incompatible(String),
}

/// The component sealed in `sealed` for `binding`, if its MAC verifies under `key`.
pub fn open(
    engine: &Engine,
    key: &[u8; 32],
    binding: &Binding<'_>,
    sealed: &[u8],
) -> Result<Component, OpenError> {
    let Some((&version, rest)) = sealed.split_first() else {
        return Err(OpenError::OtherFormat(None));
    };
    if version != FORMAT_VERSION {
        return Err(OpenError::OtherFormat(Some(version)));
    }
    if rest.len() < TAG_LEN {
        return Err(OpenError::NotOurs);
    }
    let (artifact, tag) = rest.split_at(rest.len() - TAG_LEN);
    mac(key, engine, binding, artifact)
        .verify_slice(tag)
        .map_err(|_| OpenError::NotOurs)?;
    // SAFETY: the MAC proves these bytes are exactly what `Component::serialize` produced, in a
    // Porthole holding `key`, for this plugin's pinned component and an engine with these
    // settings; wasmtime additionally checks that they match this engine's configuration and
    // version, and refuses them otherwise.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, artifact) };
    component.map_err(|err| OpenError::Incompatible(format!("{err:#}")))
}

/// The component in `artifact`, which a plugin runner received from its daemon.
///
/// A runner (`porthole plugin-runner`) gets its plugin already compiled, over the socket pair
/// the daemon created for it and whose other end only the daemon holds; the daemon sends only
/// what `Component::serialize` produced in its own engine, or what [`open`] verified. A runner
/// therefore never compiles, and never deserializes bytes from anywhere else.
pub fn from_daemon(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: the bytes come from the daemon that started this process, over a channel no
    // other process holds, and are `Component::serialize` output of an engine configured as
    // `engine` (the same build, the same settings); wasmtime checks that they match this
    // engine's configuration and version, and refuses them otherwise.
    #[allow(unsafe_code)]
    unsafe {
        Component::deserialize(engine, artifact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const DNS: Binding<'static> = Binding {
        plugin: "dns",
        sha256: "aa11",
    };

    #[test]
    fn tampered_or_foreign_artifacts_are_never_deserialized() {
        let engine = Engine::default();
        let sealed = seal(&KEY, &engine, &DNS, b"not really an artifact");
        // Right key and binding, but not a real artifact: the MAC passes and wasmtime refuses.
        assert!(matches!(
            open(&engine, &KEY, &DNS, &sealed),
            Err(OpenError::Incompatible(_))
        ));
        // Wrong key, flipped byte, truncated: refused before wasmtime sees anything.
        assert_eq!(
            open(&engine, &[8; 32], &DNS, &sealed).err(),
            Some(OpenError::NotOurs)
        );
        let mut flipped = sealed.clone();
        flipped[5] ^= 1;
        assert_eq!(
            open(&engine, &KEY, &DNS, &flipped).err(),
            Some(OpenError::NotOurs)
        );
        assert_eq!(
            open(&engine, &KEY, &DNS, &sealed[..10]).err(),
            Some(OpenError::NotOurs)
        );
    }

    #[test]
    fn an_artifact_opens_only_for_the_plugin_component_and_engine_it_was_sealed_for() {
        let engine = Engine::default();
        let sealed = seal(&KEY, &engine, &DNS, b"artifact");
        for other in [
            Binding {
                plugin: "billing",
                ..DNS
            },
            Binding {
                sha256: "bb22",
                ..DNS
            },
            // The same bytes split differently between the fields.
            Binding {
                plugin: "dnsaa",
                sha256: "11",
            },
        ] {
            assert_eq!(
                open(&engine, &KEY, &other, &sealed).err(),
                Some(OpenError::NotOurs),
                "{other:?}"
            );
        }
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let Ok(other_engine) = Engine::new(&config) else {
            panic!("an engine with epoch interruption");
        };
        assert_ne!(
            engine_fingerprint(&engine),
            engine_fingerprint(&other_engine)
        );
        assert_eq!(
            open(&other_engine, &KEY, &DNS, &sealed).err(),
            Some(OpenError::NotOurs)
        );
    }

    #[test]
    fn another_format_version_is_refused_before_anything_else() {
        let engine = Engine::default();
        let mut sealed = seal(&KEY, &engine, &DNS, b"artifact");
        assert_eq!(sealed[0], FORMAT_VERSION);
        sealed[0] = FORMAT_VERSION + 1;
        assert_eq!(
            open(&engine, &KEY, &DNS, &sealed).err(),
            Some(OpenError::OtherFormat(Some(FORMAT_VERSION + 1)))
        );
        // The layout before versions began with the artifact itself, an ELF image.
        assert_eq!(
            open(&engine, &KEY, &DNS, b"\x7fELF...").err(),
            Some(OpenError::OtherFormat(Some(0x7f)))
        );
        assert_eq!(
            open(&engine, &KEY, &DNS, b"").err(),
            Some(OpenError::OtherFormat(None))
        );
    }
}
