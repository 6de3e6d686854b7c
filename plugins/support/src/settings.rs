//! The plugin's own settings (`host.setting`) and its private key-value store (`kv`), as traits
//! so the logic is unit-tested with in-memory versions.

use crate::error::PluginError;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Read access to this plugin's settings.
pub trait Settings {
    fn get(&self, key: &str) -> Option<String>;

    /// The setting, or an invalid-input error naming it.
    fn required(&self, key: &str) -> Result<String, PluginError> {
        self.get(key)
            .filter(|value| !value.trim().is_empty())
            .ok_or_else(|| PluginError::missing_setting(key))
    }
}

/// Settings from a map, for tests and native callers.
#[derive(Debug, Clone, Default)]
pub struct MapSettings(pub BTreeMap<String, String>);

impl MapSettings {
    pub fn new<const N: usize>(pairs: [(&str, &str); N]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

impl Settings for MapSettings {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// This plugin's private, persistent key-value store.
pub trait Kv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PluginError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), PluginError>;
    fn delete(&self, key: &str) -> Result<(), PluginError>;

    /// The value as UTF-8 text; anything else counts as absent.
    fn get_text(&self, key: &str) -> Result<Option<String>, PluginError> {
        Ok(self
            .get(key)?
            .and_then(|bytes| String::from_utf8(bytes).ok()))
    }
}

/// A [`Kv`] in memory.
#[derive(Debug, Default)]
pub struct MemoryKv(pub RefCell<BTreeMap<String, Vec<u8>>>);

impl Kv for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PluginError> {
        Ok(self.0.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), PluginError> {
        self.0.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), PluginError> {
        self.0.borrow_mut().remove(key);
        Ok(())
    }
}
