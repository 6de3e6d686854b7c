//! Secrets named in the configuration: where they come from, and a type that never prints them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Exactly one of `file` (read at start, surrounding whitespace trimmed) or `env`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

/// Why a secret could not be read; the caller adds the key and line.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("give exactly one of `file` or `env`")]
    Ambiguous,
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("environment variable {0} is not set")]
    Env(String),
    #[error("the secret is empty")]
    Empty,
}

impl SecretSource {
    /// Reads the secret; `base` anchors a relative file path.
    pub fn read(&self, base: &Path) -> Result<Secret, SecretError> {
        let value = match (&self.file, &self.env) {
            (Some(file), None) => {
                let path = base.join(file);
                std::fs::read_to_string(&path)
                    .map_err(|source| SecretError::File { path, source })?
            }
            (None, Some(var)) => std::env::var(var).map_err(|_| SecretError::Env(var.clone()))?,
            _ => return Err(SecretError::Ambiguous),
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret::new(value))
    }
}

pub use porthole_plugin_host::Secret;

/// The 32-byte key for secrets at rest.
#[derive(Clone)]
pub struct DataKey(pub [u8; 32]);

impl DataKey {
    /// Parses 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| "the data key must be 64 hexadecimal digits".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the data key must be 64 hexadecimal digits (32 bytes)".to_owned())?;
        Ok(Self(key))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(…)")
    }
}
