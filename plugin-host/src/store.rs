//! What the runtime keeps in the daemon's database, behind traits the daemon implements: each
//! plugin's `kv` entries and its breaker's trip. The runtime never sees the database itself.

use std::pin::Pin;

/// A database operation in flight.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreFault>> + Send>>;

/// The database failed; the plugin is told to try later, the daemon's log says why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreFault(pub String);

/// Whether a `kv` write was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Yes,
    /// Refused: the namespace would then hold `total` bytes, over its quota.
    OverQuota {
        total: u64,
    },
}

/// Each plugin's `kv` entries, by namespace (the plugin's configured name, which the runtime
/// fixes; a guest only ever supplies keys).
pub trait KvStore: Send + Sync + 'static {
    fn get(&self, namespace: &str, key: &str) -> StoreFuture<Option<Vec<u8>>>;
    /// Stores `value` unless the namespace would then exceed `quota` bytes (keys plus values).
    fn set(&self, namespace: &str, key: &str, value: Vec<u8>, quota: u64) -> StoreFuture<Stored>;
    fn delete(&self, namespace: &str, key: &str) -> StoreFuture<()>;
    /// Up to `limit` keys starting with `prefix` (literally: no wildcards), in order.
    fn list_keys(&self, namespace: &str, prefix: &str, limit: u32) -> StoreFuture<Vec<String>>;
}

/// A plugin's breaker trip, kept so a restart does not switch a misbehaving plugin back on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// Unix seconds.
    pub at: u64,
    pub reason: String,
}

/// Where breaker trips are kept.
pub trait TripStore: Send + Sync + 'static {
    fn load(&self, plugin: &str) -> StoreFuture<Option<Trip>>;
    /// Keeps `trip`, or forgets the plugin's trip when `None`.
    fn save(&self, plugin: &str, trip: Option<Trip>) -> StoreFuture<()>;
}
