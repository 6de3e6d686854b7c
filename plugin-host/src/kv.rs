//! The `kv` interface: a small persistent store private to each plugin, with a size quota.
//!
//! The namespace is the plugin's configured name, fixed by the host for the whole call; the guest
//! only ever supplies keys inside it.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::kv::{self, KvError};
use crate::sandbox::CallState;
use crate::store::{KvStore, StoreFault, Stored};

const MAX_KEY_BYTES: usize = 256;
const MAX_LIST: u32 = 1000;

/// What the `kv` interface needs for one call.
pub struct KvState {
    namespace: String,
    store: Option<Arc<dyn KvStore>>,
    quota_bytes: u64,
}

impl KvState {
    pub fn new(namespace: &str, store: Option<Arc<dyn KvStore>>, quota_kib: u32) -> Self {
        Self {
            namespace: namespace.to_owned(),
            store,
            quota_bytes: u64::from(quota_kib) * 1024,
        }
    }

    fn store(&self) -> Result<&dyn KvStore, KvError> {
        self.store
            .as_deref()
            .ok_or_else(|| KvError::Unavailable("this Porthole runs without a database".into()))
    }

    fn failed(&self, fault: StoreFault) -> KvError {
        tracing::warn!(plugin = %self.namespace, error = %fault, "plugin kv query failed");
        KvError::Unavailable("the store failed; try again later".into())
    }
}

pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    kv::add_to_linker::<CallState, HasSelf<KvState>>(linker, |state| &mut state.kv)
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::InvalidKey(format!(
            "keys are 1 to {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

impl kv::Host for KvState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        check_key(&key)?;
        let asked = self.store()?.get(&self.namespace, &key);
        asked.await.map_err(|fault| self.failed(fault))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        check_key(&key)?;
        let quota = self.quota_bytes;
        let asked = self.store()?.set(&self.namespace, &key, value, quota);
        match asked.await.map_err(|fault| self.failed(fault))? {
            Stored::Yes => Ok(()),
            Stored::OverQuota { total } => Err(KvError::QuotaExceeded(format!(
                "storing this would use {total} bytes of a {quota}-byte quota"
            ))),
        }
    }

    async fn delete(&mut self, key: String) -> Result<(), KvError> {
        check_key(&key)?;
        let asked = self.store()?.delete(&self.namespace, &key);
        asked.await.map_err(|fault| self.failed(fault))
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, KvError> {
        let asked = self
            .store()?
            .list_keys(&self.namespace, &prefix, limit.min(MAX_LIST));
        asked.await.map_err(|fault| self.failed(fault))
    }
}
