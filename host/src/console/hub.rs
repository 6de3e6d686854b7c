//! The registry of this daemon's live console sessions: admission against the session caps, a
//! stop signal per session (revocation, operator close, shutdown), live byte counters, and the
//! relay's counters for operators.
//!
//! The caps count the sessions of every daemon sharing the database: a session is admitted by
//! writing its record in the same transaction that counts the live ones, and stays live while
//! its daemon renews the record's `alive_until` (see [`super::watch`]), so the sessions of a
//! daemon that died stop counting within [`ConsoleLimits::session_heartbeat`] × 3.
//!
//! Each session holds a `watch` receiver; [`ConsoleHub::revoke`] sends a [`CloseReason`] to every
//! session of a service, which its relay task sees at once, and revokes the service's
//! outstanding tokens in the database. The registry is per daemon: with several daemons sharing
//! a database, the token table and the service state (checked again when a token is redeemed)
//! stop new sessions everywhere, and each daemon's [`super::watch`] task notices a revocation
//! made elsewhere from the service's state and stops the sessions it relays.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::watch;

use super::close::{CloseReason, Revocation};
use super::limits::ConsoleLimits;
use super::tokens::{self, ConsoleKind, Grant};
use crate::store::console::{Caps, Relayed};
use crate::store::{self, Store, StoreError};

/// Why no further session fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityRefusal {
    #[error("you already have {0} open consoles; close one first")]
    PerUser(usize),
    #[error("the console service is at capacity ({0} sessions); try again shortly")]
    Total(usize),
}

impl CapacityRefusal {
    pub fn label(&self) -> &'static str {
        match self {
            Self::PerUser(_) => "user_session_limit",
            Self::Total(_) => "total_session_limit",
        }
    }
}

/// Byte counters and activity of one session, shared by its relay task and the registry.
#[derive(Debug)]
pub struct SessionStats {
    started: Instant,
    to_vm: AtomicU64,
    to_browser: AtomicU64,
    /// Milliseconds after `started` of the last data either way.
    last_activity_ms: AtomicU64,
    /// Milliseconds after `started` of the last frame of any kind from the browser, pongs
    /// included: its sign of life, which unlike activity a keepalive renews.
    browser_heard_ms: AtomicU64,
}

impl SessionStats {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            to_vm: AtomicU64::new(0),
            to_browser: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
            browser_heard_ms: AtomicU64::new(0),
        }
    }

    pub fn add_to_vm(&self, bytes: usize) {
        self.to_vm.fetch_add(bytes as u64, Ordering::Relaxed);
        self.touch();
    }

    pub fn add_to_browser(&self, bytes: usize) {
        self.to_browser.fetch_add(bytes as u64, Ordering::Relaxed);
        self.touch();
    }

    fn touch(&self) {
        self.last_activity_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// The browser sent a frame, data or control.
    pub fn heard_from_browser(&self) {
        self.browser_heard_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn last_activity(&self) -> Instant {
        self.at(&self.last_activity_ms)
    }

    pub fn browser_last_heard(&self) -> Instant {
        self.at(&self.browser_heard_ms)
    }

    fn at(&self, ms: &AtomicU64) -> Instant {
        self.started + std::time::Duration::from_millis(ms.load(Ordering::Relaxed))
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn bytes(&self) -> (u64, u64) {
        (
            self.to_vm.load(Ordering::Relaxed),
            self.to_browser.load(Ordering::Relaxed),
        )
    }
}

/// A live session as operators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveSessionView {
    /// The `console_sessions` row id.
    pub id: i64,
    pub user_id: i64,
    pub service_id: i64,
    pub kind: ConsoleKind,
    /// Unix seconds.
    pub started_at: i64,
    pub bytes_to_vm: u64,
    pub bytes_to_browser: u64,
}

/// The relay's counters since the daemon started.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsoleCounters {
    pub live: usize,
    pub opened: u64,
    /// Refusals before a session existed, by reason.
    pub refused: BTreeMap<&'static str, u64>,
    /// Sessions ended, by close reason.
    pub closed: BTreeMap<&'static str, u64>,
}

struct Entry {
    grant: Grant,
    session_id: i64,
    started_at: i64,
    stats: Arc<SessionStats>,
    stop: watch::Sender<Option<CloseReason>>,
}

#[derive(Default)]
struct Registry {
    next_key: u64,
    sessions: HashMap<u64, Entry>,
    /// Bytes `(to_vm, to_browser)` of the sessions that ended, by kind. Kept under the same
    /// lock as the live ones, so a session's bytes move from one to the other at once.
    ended_bytes: BTreeMap<&'static str, (u64, u64)>,
    /// Whether the [`super::watch`] task runs; it does exactly while there are sessions.
    watching: bool,
}

/// Live sessions and their controls. Shared by the API handlers, the relay tasks and (later) the
/// lifecycle engine.
pub struct ConsoleHub {
    store: Store,
    limits: ConsoleLimits,
    registry: Mutex<Registry>,
    opened: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    closed: Mutex<BTreeMap<&'static str, u64>>,
}

/// A reserved place for one session, recorded in `console_sessions`. Dropping it frees the
/// place; the record of a session that never opened goes with it.
pub struct Admission {
    hub: Arc<ConsoleHub>,
    key: u64,
    /// The session's `console_sessions` row.
    pub session_id: i64,
    pub grant: Grant,
    pub stats: Arc<SessionStats>,
    pub stop: watch::Receiver<Option<CloseReason>>,
    opened: AtomicBool,
}

impl Admission {
    /// The session opened: counted, and its record kept whatever happens next.
    pub(super) fn count_open(&self) {
        self.opened.store(true, Ordering::Relaxed);
        self.hub.opened.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_close(&self, reason: &CloseReason) {
        *lock(&self.hub.closed).entry(reason.label()).or_default() += 1;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        {
            let mut registry = self.hub.registry();
            registry.sessions.remove(&self.key);
            let (to_vm, to_browser) = self.stats.bytes();
            let ended = registry
                .ended_bytes
                .entry(self.grant.kind.as_str())
                .or_default();
            ended.0 += to_vm;
            ended.1 += to_browser;
        }
        if self.opened.load(Ordering::Relaxed) {
            return;
        }
        // Left alone, the record would still count until its `alive_until` lapses.
        let (store, id) = (self.hub.store.clone(), self.session_id);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(err) = store::console::discard_session(&store, id).await {
                        tracing::warn!(session_id = id, error = %err, "could not discard an unopened console session");
                    }
                });
            }
            Err(_) => tracing::warn!(
                session_id = id,
                "no runtime to discard an unopened console session"
            ),
        }
    }
}

impl ConsoleHub {
    pub fn new(store: Store, limits: ConsoleLimits) -> Arc<Self> {
        Arc::new(Self {
            store,
            limits,
            registry: Mutex::new(Registry::default()),
            opened: AtomicU64::new(0),
            refused: Mutex::new(BTreeMap::new()),
            closed: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn limits(&self) -> &ConsoleLimits {
        &self.limits
    }

    /// Whether `user_id` could open one more session now (checked before minting a token).
    pub async fn check_capacity(
        &self,
        user_id: i64,
    ) -> Result<Result<(), CapacityRefusal>, StoreError> {
        store::console::room_for(&self.store, user_id, self.caps()).await
    }

    /// Reserves and records a place for `grant`'s session from `client`, or says which cap it
    /// hits.
    pub async fn admit(
        self: &Arc<Self>,
        grant: Grant,
        client: &str,
    ) -> Result<Result<Admission, CapacityRefusal>, StoreError> {
        let (caps, alive_secs) = (self.caps(), self.limits.alive_secs());
        let admitted = self
            .store
            .transaction(|tx| async move {
                store::console::admit_session(&tx, grant, client, caps, alive_secs).await
            })
            .await?;
        let session_id = match admitted {
            Ok(id) => id,
            Err(full) => return Ok(Err(full)),
        };
        let mut registry = self.registry();
        let key = registry.next_key;
        registry.next_key += 1;
        let stats = Arc::new(SessionStats::new());
        let (stop, stop_rx) = watch::channel(None);
        registry.sessions.insert(
            key,
            Entry {
                grant,
                session_id,
                started_at: store::now(),
                stats: stats.clone(),
                stop,
            },
        );
        if !registry.watching {
            registry.watching = self.start_watching();
        }
        Ok(Ok(Admission {
            hub: self.clone(),
            key,
            session_id,
            grant,
            stats,
            stop: stop_rx,
            opened: AtomicBool::new(false),
        }))
    }

    fn caps(&self) -> Caps {
        Caps {
            per_user: self.limits.max_sessions_per_user,
            total: self.limits.max_sessions_total,
        }
    }

    /// Closes every live console of `service_id` on this daemon (they see the reason at once) and
    /// revokes its outstanding tokens. Call it after the service's state has changed, so that a
    /// token redeemed concurrently meets the new state. Returns the number of sessions closed.
    pub async fn revoke(&self, service_id: i64, why: Revocation) -> usize {
        let closed = self.stop_service(service_id, why);
        let now = store::now();
        let revoked = tokens::revoke_for_service(&self.store, service_id, now).await;
        match revoked {
            Ok(tokens) => {
                tracing::info!(
                    service_id,
                    sessions = closed,
                    tokens,
                    reason = why.as_str(),
                    "consoles revoked"
                );
            }
            Err(err) => {
                tracing::error!(service_id, error = %err, "could not revoke console tokens");
            }
        }
        // Other daemons relaying this service's consoles look at its state now rather than at
        // their next sweep.
        let notice = format!("{}{service_id}", super::watch::REVOKED);
        if let Err(err) = self.store.notify(&notice).await {
            tracing::warn!(service_id, error = %err, "could not tell other daemons of a revocation");
        }
        closed
    }

    /// Stops every live session of `service_id` that is not stopping yet; returns how many.
    pub(super) fn stop_service(&self, service_id: i64, why: Revocation) -> usize {
        self.signal(
            |entry| entry.grant.service_id == service_id,
            || CloseReason::Revoked(why),
        )
    }

    /// The services of the sessions not stopping yet, for the watcher; `None` once no session
    /// is left, which ends the watcher (the next admission starts a new one).
    pub(super) fn watched_services(&self) -> Option<BTreeSet<i64>> {
        let mut registry = self.registry();
        if registry.sessions.is_empty() {
            registry.watching = false;
            return None;
        }
        let services = registry
            .sessions
            .values()
            .filter(|entry| entry.stop.borrow().is_none())
            .map(|entry| entry.grant.service_id)
            .collect();
        Some(services)
    }

    /// Starts the watcher on the current runtime; false if there is none to start it on.
    fn start_watching(self: &Arc<Self>) -> bool {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(super::watch::watch_states(Arc::downgrade(self)));
                true
            }
            Err(_) => {
                tracing::warn!("no runtime: revocations by other daemons go unnoticed");
                false
            }
        }
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// This daemon's live sessions with their byte counts, whose records the watcher renews.
    pub(super) fn relayed(&self) -> Vec<Relayed> {
        self.registry()
            .sessions
            .values()
            .map(|entry| {
                let (bytes_to_vm, bytes_to_browser) = entry.stats.bytes();
                Relayed {
                    id: entry.session_id,
                    bytes_to_vm,
                    bytes_to_browser,
                }
            })
            .collect()
    }

    /// Closes one session by its row id, whichever daemon relays it: at once when it is this
    /// one, else by asking through the database (see [`super::watch`]). False if no such
    /// session is live anywhere.
    pub async fn close_anywhere(&self, session_id: i64) -> Result<bool, StoreError> {
        if self.close_session(session_id) {
            return Ok(true);
        }
        if !store::console::request_close(&self.store, session_id).await? {
            return Ok(false);
        }
        let notice = format!("{}{session_id}", super::watch::CLOSE);
        if let Err(err) = self.store.notify(&notice).await {
            // The relaying daemon still sees the request at its next renewal.
            tracing::warn!(session_id, error = %err, "could not tell other daemons to close a session");
        }
        Ok(true)
    }

    /// The live sessions of every daemon sharing the database; this daemon's with their byte
    /// counts of this moment, the others' as of their daemon's last renewal.
    pub async fn sessions_everywhere(&self) -> Result<Vec<LiveSessionView>, StoreError> {
        let mut everywhere = store::console::live_sessions(&self.store).await?;
        let here = self.live_sessions();
        everywhere.retain(|session| !here.iter().any(|local| local.id == session.id));
        everywhere.extend(here);
        everywhere.sort_by_key(|view| view.id);
        Ok(everywhere)
    }

    /// Closes one session by its row id; false if no such session is live here.
    pub fn close_session(&self, session_id: i64) -> bool {
        self.signal(
            |entry| entry.session_id == session_id,
            || CloseReason::ClosedByOperator,
        ) > 0
    }

    /// Closes every live session (the daemon is stopping).
    pub fn close_all(&self) -> usize {
        self.signal(|_| true, || CloseReason::Shutdown)
    }

    pub fn live_sessions(&self) -> Vec<LiveSessionView> {
        let registry = self.registry();
        let mut views: Vec<LiveSessionView> = registry
            .sessions
            .values()
            .map(|entry| {
                let (to_vm, to_browser) = entry.stats.bytes();
                LiveSessionView {
                    id: entry.session_id,
                    user_id: entry.grant.user_id,
                    service_id: entry.grant.service_id,
                    kind: entry.grant.kind,
                    started_at: entry.started_at,
                    bytes_to_vm: to_vm,
                    bytes_to_browser: to_browser,
                }
            })
            .collect();
        views.sort_by_key(|view| view.id);
        views
    }

    /// Bytes `(kind, to_vm, to_browser)` this daemon has relayed, ended and live sessions
    /// together: a running total that only grows.
    pub fn relayed_bytes(&self) -> Vec<(&'static str, u64, u64)> {
        let registry = self.registry();
        let mut totals = registry.ended_bytes.clone();
        for entry in registry.sessions.values() {
            let (to_vm, to_browser) = entry.stats.bytes();
            let total = totals.entry(entry.grant.kind.as_str()).or_default();
            total.0 += to_vm;
            total.1 += to_browser;
        }
        totals
            .into_iter()
            .map(|(kind, (to_vm, to_browser))| (kind, to_vm, to_browser))
            .collect()
    }

    pub fn counters(&self) -> ConsoleCounters {
        ConsoleCounters {
            live: self.registry().sessions.len(),
            opened: self.opened.load(Ordering::Relaxed),
            refused: lock(&self.refused).clone(),
            closed: lock(&self.closed).clone(),
        }
    }

    pub(crate) fn count_refusal(&self, label: &'static str) {
        *lock(&self.refused).entry(label).or_default() += 1;
    }

    /// Sends a stop to each matching session that has none yet; returns how many.
    fn signal(&self, matches: impl Fn(&Entry) -> bool, reason: impl Fn() -> CloseReason) -> usize {
        let registry = self.registry();
        let mut signalled = 0;
        for entry in registry.sessions.values().filter(|e| matches(e)) {
            let first = entry.stop.send_if_modified(|current| {
                let first = current.is_none();
                if first {
                    *current = Some(reason());
                }
                first
            });
            signalled += usize::from(first);
        }
        signalled
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }
}

/// The registry's data stays consistent even if a holder panicked: every update is one insert,
/// remove or field store.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn hub(per_user: usize, total: usize) -> (tempfile::TempDir, Arc<ConsoleHub>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).await.unwrap();
        let limits = ConsoleLimits {
            max_sessions_per_user: per_user,
            max_sessions_total: total,
            ..ConsoleLimits::default()
        };
        (dir, ConsoleHub::new(store, limits))
    }

    fn grant(user_id: i64, service_id: i64) -> Grant {
        Grant {
            user_id,
            service_id,
            kind: ConsoleKind::Vnc,
        }
    }

    async fn admit(hub: &Arc<ConsoleHub>, grant: Grant) -> Result<Admission, CapacityRefusal> {
        hub.admit(grant, "192.0.2.1").await.unwrap()
    }

    /// Waits until `service_id` has `records` session records: a dropped admission's record
    /// is discarded by a task of its own.
    async fn records_of(hub: &ConsoleHub, service_id: i64, records: usize) {
        let discarded = async {
            while store::console::sessions_for_service(&hub.store, service_id)
                .await
                .unwrap()
                .len()
                != records
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), discarded)
            .await
            .expect("the unopened session's record is discarded");
    }

    #[tokio::test]
    async fn admission_respects_both_caps_and_frees_its_place_when_dropped() {
        let (_dir, hub) = hub(2, 3).await;
        let a1 = admit(&hub, grant(1, 10)).await.unwrap();
        let _a2 = admit(&hub, grant(1, 10)).await.unwrap();
        assert_eq!(
            admit(&hub, grant(1, 11)).await.err(),
            Some(CapacityRefusal::PerUser(2))
        );
        let _b1 = admit(&hub, grant(2, 20)).await.unwrap();
        assert_eq!(
            admit(&hub, grant(3, 30)).await.err(),
            Some(CapacityRefusal::Total(3))
        );
        drop(a1);
        records_of(&hub, 10, 1).await;
        assert!(hub.check_capacity(1).await.unwrap().is_ok());
        assert_eq!(hub.counters().live, 2);
    }

    #[tokio::test]
    async fn a_session_that_opened_keeps_its_record_when_it_ends() {
        let (_dir, hub) = hub(8, 8).await;
        let unopened = admit(&hub, grant(1, 10)).await.unwrap();
        let opened = admit(&hub, grant(1, 10)).await.unwrap();
        opened.count_open();
        drop((unopened, opened));
        records_of(&hub, 10, 1).await;
    }

    #[tokio::test]
    async fn revoking_a_service_stops_its_sessions_only() {
        let (_dir, hub) = hub(8, 8).await;
        let first = admit(&hub, grant(1, 10)).await.unwrap();
        let second = admit(&hub, grant(2, 10)).await.unwrap();
        let other = admit(&hub, grant(1, 11)).await.unwrap();
        assert_eq!(hub.revoke(10, Revocation::Suspended).await, 2);
        let suspended = Some(CloseReason::Revoked(Revocation::Suspended));
        assert_eq!(*first.stop.borrow(), suspended);
        assert_eq!(*second.stop.borrow(), suspended);
        assert_eq!(*other.stop.borrow(), None);
        assert_eq!(
            hub.revoke(10, Revocation::Terminated).await,
            0,
            "already stopping"
        );
    }

    #[tokio::test]
    async fn the_state_watcher_runs_only_while_there_are_sessions() {
        let (_dir, hub) = hub(8, 8).await;
        assert!(!hub.registry().watching);
        let admission = admit(&hub, grant(1, 10)).await.unwrap();
        assert!(hub.registry().watching);
        drop(admission);
        let stopped = async {
            while hub.registry().watching {
                tokio::time::sleep(hub.limits().state_poll).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), stopped)
            .await
            .expect("the watcher ends with the last session");
        let _again = admit(&hub, grant(1, 10)).await.unwrap();
        assert!(hub.registry().watching, "and starts with the next one");
    }

    #[tokio::test]
    async fn operators_close_a_session_by_its_record_id() {
        let (_dir, hub) = hub(8, 8).await;
        let admission = admit(&hub, grant(1, 10)).await.unwrap();
        let id = admission.session_id;
        assert!(!hub.close_session(id + 1));
        assert_eq!(hub.live_sessions()[0].id, id);
        assert!(hub.close_session(id));
        assert_eq!(
            *admission.stop.borrow(),
            Some(CloseReason::ClosedByOperator)
        );
    }

    /// Three daemons on one PostgreSQL database admit at once, far more than the caps allow:
    /// exactly the caps' worth get in, whichever daemon they came to.
    #[tokio::test]
    async fn the_caps_count_the_sessions_of_every_daemon() {
        let first = crate::store::testing::TestStore::postgres().await.unwrap();
        let limits = ConsoleLimits {
            max_sessions_per_user: 3,
            max_sessions_total: 7,
            ..ConsoleLimits::default()
        };
        let mut hubs = vec![ConsoleHub::new(first.store.clone(), limits.clone())];
        for _ in 0..2 {
            let store = first.another_daemon().await.unwrap();
            hubs.push(ConsoleHub::new(store, limits.clone()));
        }
        let attempts = (0..30).map(|n| {
            let hub = hubs[n % hubs.len()].clone();
            // Users 0 and 1 try ten times each, users 2..12 once.
            let user = if n < 20 { n as i64 % 2 } else { n as i64 - 18 };
            async move { (user, admit(&hub, grant(user, 10)).await) }
        });
        let results = futures_util::future::join_all(attempts).await;
        let admitted: Vec<i64> = results
            .iter()
            .filter(|(_, result)| result.is_ok())
            .map(|(user, _)| *user)
            .collect();
        assert_eq!(admitted.len(), 7, "{admitted:?}");
        for user in [0, 1] {
            assert!(
                admitted.iter().filter(|&&u| u == user).count() <= 3,
                "{admitted:?}"
            );
        }
        let live: usize = hubs.iter().map(|hub| hub.counters().live).sum();
        assert_eq!(live, 7);
    }
}
