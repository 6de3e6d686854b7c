//! The `kv` interface: a small persistent store private to each plugin, with a size quota.
//!
//! The namespace is the plugin's configured name, fixed by the host for the whole call; the guest
//! only ever supplies keys inside it. In a plugin runner the guest's requests are relayed to the
//! daemon, which answers them with [`serve`], in the namespace and under the quota it knows.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::kv::{self, KvError};
use crate::isolation::protocol::{HostReply, HostRequest, KvAnswer, KvRefusal};
use crate::isolation::runner::Relay;
use crate::sandbox::CallState;
use crate::store::{KvStore, StoreFault, Stored};

const MAX_KEY_BYTES: usize = 256;
const MAX_LIST: u32 = 1000;

/// What the `kv` interface needs for one call.
pub struct KvState {
    namespace: String,
    backend: KvBackend,
    quota_bytes: u64,
}

/// Where a call's entries are kept.
#[derive(Clone)]
pub enum KvBackend {
    /// In the daemon's database, or nowhere (`kv` answers `unavailable`).
    Store(Option<Arc<dyn KvStore>>),
    /// Asked of the daemon, from a plugin runner.
    Relayed(Relay),
}

impl KvState {
    pub fn new(namespace: &str, backend: KvBackend, quota_kib: u32) -> Self {
        Self {
            namespace: namespace.to_owned(),
            backend,
            quota_bytes: u64::from(quota_kib) * 1024,
        }
    }

    fn store(&self) -> Result<&dyn KvStore, KvError> {
        match &self.backend {
            KvBackend::Store(Some(store)) => Ok(store.as_ref()),
            KvBackend::Store(None) | KvBackend::Relayed(_) => Err(KvError::Unavailable(
                "this Porthole runs without a database".into(),
            )),
        }
    }

    fn relay(&self) -> Option<&Relay> {
        match &self.backend {
            KvBackend::Relayed(relay) => Some(relay),
            KvBackend::Store(_) => None,
        }
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
        if let Some(relay) = self.relay() {
            return match relayed(relay, HostRequest::KvGet { key }).await? {
                KvAnswer::Value(value) => Ok(value),
                _ => Err(garbled()),
            };
        }
        let asked = self.store()?.get(&self.namespace, &key);
        asked.await.map_err(|fault| self.failed(fault))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        check_key(&key)?;
        if let Some(relay) = self.relay() {
            return match relayed(relay, HostRequest::KvSet { key, value }).await? {
                KvAnswer::Stored => Ok(()),
                _ => Err(garbled()),
            };
        }
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
        if let Some(relay) = self.relay() {
            return match relayed(relay, HostRequest::KvDelete { key }).await? {
                KvAnswer::Deleted => Ok(()),
                _ => Err(garbled()),
            };
        }
        let asked = self.store()?.delete(&self.namespace, &key);
        asked.await.map_err(|fault| self.failed(fault))
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, KvError> {
        if let Some(relay) = self.relay() {
            let limit = limit.min(MAX_LIST);
            return match relayed(relay, HostRequest::KvList { prefix, limit }).await? {
                KvAnswer::Keys(keys) => Ok(keys),
                _ => Err(garbled()),
            };
        }
        let asked = self
            .store()?
            .list_keys(&self.namespace, &prefix, limit.min(MAX_LIST));
        asked.await.map_err(|fault| self.failed(fault))
    }
}

async fn relayed(relay: &Relay, request: HostRequest) -> Result<KvAnswer, KvError> {
    match relay.ask(request).await {
        Some(HostReply::Kv(Ok(answer))) => Ok(answer),
        Some(HostReply::Kv(Err(refusal))) => Err(match refusal {
            KvRefusal::InvalidKey(why) => KvError::InvalidKey(why),
            KvRefusal::QuotaExceeded(why) => KvError::QuotaExceeded(why),
            KvRefusal::Unavailable(why) => KvError::Unavailable(why),
        }),
        _ => Err(garbled()),
    }
}

fn garbled() -> KvError {
    KvError::Unavailable("the daemon did not answer; try again later".into())
}

/// Answers a runner's `kv` request for plugin `namespace` from `store`, under the daemon's own
/// key checks and quota: the runner's are never trusted.
pub async fn serve(
    namespace: &str,
    store: Option<Arc<dyn KvStore>>,
    quota_kib: u32,
    request: HostRequest,
) -> HostReply {
    use kv::Host as _;
    let mut state = KvState::new(namespace, KvBackend::Store(store), quota_kib);
    let answer = match request {
        HostRequest::KvGet { key } => state.get(key).await.map(KvAnswer::Value),
        HostRequest::KvSet { key, value } => state.set(key, value).await.map(|()| KvAnswer::Stored),
        HostRequest::KvDelete { key } => state.delete(key).await.map(|()| KvAnswer::Deleted),
        HostRequest::KvList { prefix, limit } => {
            state.list_keys(prefix, limit).await.map(KvAnswer::Keys)
        }
        HostRequest::Http(_) => Err(garbled()),
    };
    HostReply::Kv(answer.map_err(|error| match error {
        KvError::InvalidKey(why) => KvRefusal::InvalidKey(why),
        KvError::QuotaExceeded(why) => KvRefusal::QuotaExceeded(why),
        KvError::Unavailable(why) => KvRefusal::Unavailable(why),
    }))
}
