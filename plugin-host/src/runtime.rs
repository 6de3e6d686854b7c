//! `PluginRuntime`: the loaded plugins, their health, and the one way a call is made.
//!
//! Every call goes through [`PluginRuntime::call`]: check the breaker, take a pool slot, build a
//! fresh store, run the guest under an epoch deadline and a tokio timeout, let the facade validate
//! what came back, and record the outcome.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::Semaphore;
use url::Url;

use crate::breaker::{Admission, Breaker, Outcome, Permit, Transition};
use crate::engine::{ArtifactCache, Compiler, POOL_SLOTS, PluginEngine};
use crate::error::{CallError, LoadError};
use crate::harness::Harness;
use crate::invoke::{Answer, Invocation};
use crate::isolation::supervisor::RunnerPlugin;
use crate::isolation::{Isolation, RunnerStatus, Supervisor};
use crate::loader::{self, Environment, Prepared};
use crate::sandbox;
use crate::store::{KvStore, Trip, TripStore};
use crate::worlds;
use crate::{PluginSpec, PluginWorld};

/// How many errors each plugin's status keeps.
const RECENT_ERRORS: usize = 10;

/// What the runtime is built with.
#[derive(Clone)]
pub struct RuntimeOptions {
    /// Backs the plugins' `kv`; without it `kv` answers `unavailable`.
    pub kv: Option<Arc<dyn KvStore>>,
    /// Keeps breaker trips across restarts; without it a restart forgets them.
    pub trips: Option<Arc<dyn TripStore>>,
    /// Directory for compiled artifacts and the daemon's data key that authenticates them.
    pub cache: Option<(PathBuf, [u8; 32])>,
    /// The Proxmox API URLs; plugins may never reach them unless listed exactly.
    pub protected_urls: Vec<Url>,
    /// Misbehaving calls in a row that switch a plugin off.
    pub breaker_threshold: u32,
    /// How long a switched-off plugin stays off before one trial call.
    pub breaker_cool_down: Duration,
    /// Where plugins run: in this process, or each in a locked-down runner.
    pub isolation: Isolation,
    /// The author's workbench (`porthole plugin call`, `plugin test`); never in the daemon.
    pub harness: Option<Arc<Harness>>,
    /// Told of every call's outcome and duration (the daemon's metrics).
    pub observer: Option<Arc<dyn CallObserver>>,
}

/// Hears of every finished plugin call.
pub trait CallObserver: Send + Sync + 'static {
    /// `outcome` is `ok` or the failure's [`CallError::kind`].
    fn call_finished(&self, plugin: &str, outcome: &str, took: Duration);
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            kv: None,
            trips: None,
            cache: None,
            protected_urls: Vec::new(),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(300),
            isolation: Isolation::InProcess,
            harness: None,
            observer: None,
        }
    }
}

/// One plugin as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginStatus {
    pub name: String,
    pub kind: PluginWorld,
    pub sha256: String,
    pub allowed_hosts: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub allowed_addresses: Vec<IpAddr>,
    pub state: PluginState,
    pub recent_errors: Vec<RecentError>,
    /// A DNS provider that also keeps reverse DNS (it exports `reverse-dns`).
    pub reverse_dns: bool,
    /// `process` (each plugin in a locked-down runner) or `in-process`.
    pub isolation: &'static str,
    /// Its runner process, when plugins run in processes of their own.
    pub runner: Option<RunnerStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PluginState {
    Loaded,
    Refused { reason: String },
    Tripped { consecutive_failures: u32 },
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecentError {
    /// Unix seconds.
    pub at: u64,
    pub message: String,
}

struct Entry {
    config: PluginSpec,
    plugin: Result<Arc<Prepared>, LoadError>,
    health: Mutex<Health>,
}

struct Health {
    breaker: Breaker,
    failures_in_a_row: u32,
    recent: VecDeque<RecentError>,
    /// The trip the database should hold: set when the breaker opens, cleared when it closes.
    trip: Option<Trip>,
    /// `trip` changed here and is not written yet: the database is behind, not ahead.
    unsaved: bool,
}

impl Health {
    fn note(&mut self, message: String) {
        if self.recent.len() == RECENT_ERRORS {
            self.recent.pop_front();
        }
        self.recent.push_back(RecentError {
            at: unix_now(),
            message,
        });
    }
}

struct Inner {
    engine: PluginEngine,
    compiler: Compiler,
    options: RuntimeOptions,
    plugins: RwLock<BTreeMap<String, Arc<Entry>>>,
    slots: Semaphore,
    /// Serialises writes of breaker state, each of which stores the state current at the time of
    /// writing, so the last write always leaves the database agreeing with memory.
    persisting: tokio::sync::Mutex<()>,
}

/// The plugin runtime; cheap to clone.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<Inner>,
}

impl PluginRuntime {
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Self> {
        // With runners, the daemon compiles for them: in an engine configured as theirs.
        let engine = match options.isolation {
            Isolation::InProcess => PluginEngine::new(),
            Isolation::Process(_) => PluginEngine::compiling_for_runners(),
        }
        .map_err(|err| anyhow::anyhow!("plugin engine: {err:#}"))?;
        let disk = options
            .cache
            .as_ref()
            .map(|(dir, key)| ArtifactCache::new(dir.clone(), key));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                compiler: Compiler::new(disk),
                options,
                plugins: RwLock::default(),
                slots: Semaphore::new(POOL_SLOTS as usize),
                persisting: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Loads every plugin; a plugin that cannot be loaded is kept as refused, with the reason.
    pub async fn load_all(&self, plugins: &[PluginSpec]) {
        let (names, addresses) =
            loader::protected_endpoints(&self.inner.options.protected_urls).await;
        let mut loaded = Vec::with_capacity(plugins.len());
        for plugin in plugins {
            let runtime = self.clone();
            let plugin = plugin.clone();
            let (names, addresses) = (names.clone(), addresses.clone());
            // Compiling is CPU-bound and takes a while; keep it off the async workers.
            let prepared = tokio::task::spawn_blocking(move || {
                let outcome = runtime.prepare(&plugin, &names, &addresses);
                (plugin, outcome)
            })
            .await;
            match prepared {
                Ok(prepared) => loaded.push(prepared),
                Err(err) => tracing::error!(error = %err, "plugin loading task failed"),
            }
        }
        // Runners start side by side; each is refused on its own if it cannot.
        let started = join_all(
            loaded
                .into_iter()
                .map(|(plugin, outcome)| async { (plugin, start_runner(outcome).await) }),
        )
        .await;
        for (plugin, outcome) in started {
            self.install(plugin, outcome).await;
        }
        self.inner.compiler.prune_cache();
    }

    fn prepare(
        &self,
        plugin: &PluginSpec,
        names: &[String],
        addresses: &[IpAddr],
    ) -> Result<Arc<Prepared>, LoadError> {
        let env = Environment {
            engine: self.inner.engine.engine(),
            compiler: &self.inner.compiler,
            kv: self.inner.options.kv.clone(),
            protected_names: names,
            protected_addresses: addresses,
            harness: self.inner.options.harness.clone(),
        };
        let mut prepared = loader::load(&env, plugin)?;
        if let Isolation::Process(command) = &self.inner.options.isolation {
            prepared.runner = Some(Arc::new(Supervisor::new(
                command.clone(),
                runner_plugin(plugin, &prepared),
            )));
        }
        Ok(Arc::new(prepared))
    }

    async fn install(&self, config: PluginSpec, plugin: Result<Arc<Prepared>, LoadError>) {
        let name = config.name.clone();
        match &plugin {
            Ok(prepared) => tracing::info!(
                plugin = %name,
                world = worlds::world_name(prepared.world),
                "plugin loaded"
            ),
            Err(reason) => {
                tracing::error!(plugin = %name, %reason, "plugin refused; continuing without it")
            }
        }
        let limits = &config.limits;
        let mut health = Health {
            breaker: Breaker::new(
                limits
                    .failures_to_trip
                    .unwrap_or(self.inner.options.breaker_threshold),
                limits
                    .cool_down_secs
                    .map_or(self.inner.options.breaker_cool_down, Duration::from_secs),
            ),
            failures_in_a_row: 0,
            recent: VecDeque::new(),
            trip: None,
            unsaved: false,
        };
        if let Some(trip) = self.persisted_trip(&name).await {
            health.breaker.restore_trip(trip_age(&trip), Instant::now());
            health.note(format!("switched off before a restart: {}", trip.reason));
            health.trip = Some(trip);
        }
        let entry = Arc::new(Entry {
            config,
            plugin,
            health: Mutex::new(health),
        });
        if let Ok(mut plugins) = self.inner.plugins.write() {
            plugins.insert(name, entry);
        }
    }

    /// The status of every configured plugin, by name.
    pub fn status(&self) -> Vec<PluginStatus> {
        let Ok(plugins) = self.inner.plugins.read() else {
            return Vec::new();
        };
        let isolation = match self.inner.options.isolation {
            Isolation::InProcess => "in-process",
            Isolation::Process(_) => "process",
        };
        plugins
            .values()
            .map(|entry| status_of(entry, isolation))
            .collect()
    }

    /// Whether plugin `name` is loaded and keeps reverse DNS (exports `reverse-dns`).
    pub fn keeps_reverse_dns(&self, name: &str) -> bool {
        self.reverse_dns_support(name) == Some(true)
    }

    /// Whether loaded plugin `name` exports `reverse-dns`; none when it is not loaded.
    pub fn reverse_dns_support(&self, name: &str) -> Option<bool> {
        let entry = self.entry(name)?;
        let plugin = entry.plugin.as_ref().ok()?;
        Some(plugin.pre.reverse_dns())
    }

    /// The world plugin `name` is configured for, if it is configured.
    pub fn world_of(&self, name: &str) -> Option<PluginWorld> {
        self.entry(name).map(|entry| entry.config.world)
    }

    /// Closes a tripped plugin's breaker. False when no such plugin is configured.
    pub async fn reset(&self, name: &str) -> bool {
        let Some(entry) = self.entry(name) else {
            return false;
        };
        if let Ok(mut health) = entry.health.lock() {
            health.breaker.reset();
            health.failures_in_a_row = 0;
            health.trip = None;
            health.unsaved = true;
        }
        self.persist_breaker(name, &entry).await;
        tracing::info!(plugin = name, "plugin breaker reset by an operator");
        true
    }

    /// Instantiates plugin `name` in a fresh sandbox without calling it: a health probe, and the
    /// benchmark's measure of the per-call sandbox cost.
    pub async fn instantiate_only(&self, name: &str) -> Result<(), CallError> {
        let world = self
            .entry(name)
            .and_then(|entry| entry.plugin.as_ref().ok().map(|p| p.world))
            .unwrap_or(PluginWorld::CloudInitTemplate);
        self.call(name, world, Invocation::Instantiate, drop_answer)
            .await
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        self.inner.plugins.read().ok()?.get(name).cloned()
    }

    /// Makes `invocation` in a fresh sandbox of plugin `name`, which must implement `world`,
    /// then `check`s the answer. The outcome feeds the plugin's breaker.
    pub(crate) async fn call<T>(
        &self,
        name: &str,
        world: PluginWorld,
        invocation: Invocation,
        check: impl FnOnce(Answer) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let entry = self.entry(name).ok_or_else(|| CallError::Unknown {
            name: name.to_owned(),
        })?;
        let (plugin, mut admitted) = admit(&entry, name, world)?;
        let started = Instant::now();
        let outcome = {
            let _slot = self
                .inner
                .slots
                .acquire()
                .await
                .map_err(|_| CallError::Busy)?;
            self.run(name, &plugin, invocation).await.and_then(check)
        };
        if let Some(observer) = &self.inner.options.observer {
            let kind = outcome.as_ref().map_or_else(CallError::kind, |_| "ok");
            observer.call_finished(name, kind, started.elapsed());
        }
        if let Some(permit) = admitted.permit.take() {
            self.record(name, &entry, permit, &outcome).await;
        }
        outcome
    }

    async fn run(
        &self,
        name: &str,
        plugin: &Prepared,
        invocation: Invocation,
    ) -> Result<Answer, CallError> {
        if let Some(runner) = &plugin.runner {
            let (outcome, denials) = runner.call(invocation).await;
            self.note_denials(name, denials);
            return outcome;
        }
        let engine = self.inner.engine.engine();
        let pre = plugin.pre.clone();
        let (outcome, denials) =
            sandbox::run(engine, &plugin.setup, pre, plugin.timeout, invocation).await;
        self.note_denials(name, denials);
        outcome
    }

    fn note_denials(&self, name: &str, denials: Vec<String>) {
        if !denials.is_empty()
            && let Some(entry) = self.entry(name)
            && let Ok(mut health) = entry.health.lock()
        {
            denials.into_iter().for_each(|denial| health.note(denial));
        }
    }

    async fn record(
        &self,
        name: &str,
        entry: &Arc<Entry>,
        permit: Permit,
        outcome: &Result<impl Sized, CallError>,
    ) {
        let transition = {
            let Ok(mut health) = entry.health.lock() else {
                return;
            };
            let verdict = match outcome {
                Ok(_) => {
                    health.failures_in_a_row = 0;
                    Outcome::Success
                }
                Err(err) => {
                    tracing::warn!(plugin = name, error = %err, "plugin call failed");
                    health.note(err.to_string());
                    if err.is_misbehaviour() {
                        health.failures_in_a_row += 1;
                        Outcome::Misbehaviour
                    } else if matches!(err, CallError::Plugin { .. }) {
                        Outcome::ReportedError
                    } else {
                        Outcome::NoVerdict
                    }
                }
            };
            let transition = health.breaker.settle(permit, verdict, Instant::now());
            match (transition, outcome) {
                (Transition::Opened, Err(err)) => {
                    health.trip = Some(Trip {
                        at: unix_now(),
                        reason: err.to_string(),
                    });
                    health.unsaved = true;
                }
                (Transition::Closed, _) => {
                    health.trip = None;
                    health.failures_in_a_row = 0;
                    health.unsaved = true;
                }
                _ => {}
            }
            transition
        };
        match transition {
            Transition::None => return,
            Transition::Opened if permit.is_trial() => tracing::error!(
                plugin = name,
                "plugin's trial call after its cool-down failed; switched off again"
            ),
            Transition::Opened => {
                tracing::error!(plugin = name, "plugin switched off after repeated failures")
            }
            Transition::Closed => {
                tracing::info!(
                    plugin = name,
                    "plugin's trial call succeeded; switched on again"
                )
            }
        }
        // Detached, so that a caller who stops waiting cannot leave the database behind memory;
        // awaited, so that a restart right after this call finds the state it left.
        let runtime = self.clone();
        let (name, entry) = (name.to_owned(), entry.clone());
        let write = tokio::spawn(async move { runtime.persist_breaker(&name, &entry).await });
        if let Err(err) = write.await {
            tracing::warn!(error = %err, "persisting a plugin's breaker state failed");
        }
    }

    async fn persisted_trip(&self, name: &str) -> Option<Trip> {
        let trips = self.inner.options.trips.as_ref()?;
        match trips.load(name).await {
            Ok(trip) => trip,
            Err(fault) => {
                tracing::warn!(plugin = name, error = %fault, "cannot read the plugin's breaker state");
                None
            }
        }
    }

    /// Writes plugin `name`'s current trip (or its absence) to the database.
    async fn persist_breaker(&self, name: &str, entry: &Entry) {
        let Some(trips) = &self.inner.options.trips else {
            return;
        };
        let _turn = self.inner.persisting.lock().await;
        let Ok(trip) = entry.health.lock().map(|mut health| {
            health.unsaved = false;
            health.trip.clone()
        }) else {
            return;
        };
        if let Err(fault) = trips.save(name, trip).await {
            tracing::warn!(plugin = name, error = %fault, "could not persist the plugin's breaker state");
            if let Ok(mut health) = entry.health.lock() {
                health.unsaved = true;
            }
        }
    }

    /// Takes plugin `name`'s breaker state from the database, where another daemon sharing it
    /// may have switched the plugin off (or back on, or an operator reset it there). A change
    /// of this daemon's own that is not written yet wins: it is written (again, if writing it
    /// failed before) instead.
    pub async fn sync_trip(&self, name: &str) {
        let (Some(trips), Some(entry)) = (&self.inner.options.trips, self.entry(name)) else {
            return;
        };
        if entry.health.lock().is_ok_and(|health| health.unsaved) {
            self.persist_breaker(name, &entry).await;
            return;
        }
        let _turn = self.inner.persisting.lock().await;
        let stored = match trips.load(name).await {
            Ok(stored) => stored,
            Err(fault) => {
                tracing::warn!(plugin = name, error = %fault, "cannot read the plugin's breaker state");
                return;
            }
        };
        let Ok(mut health) = entry.health.lock() else {
            return;
        };
        if health.unsaved || health.trip == stored {
            return;
        }
        match stored {
            Some(trip) => {
                health.breaker.restore_trip(trip_age(&trip), Instant::now());
                health.note(format!("switched off by another daemon: {}", trip.reason));
                tracing::warn!(plugin = name, "plugin switched off by another daemon");
                health.trip = Some(trip);
            }
            None => {
                health.breaker.reset();
                health.failures_in_a_row = 0;
                health.trip = None;
                tracing::info!(plugin = name, "plugin switched on again by another daemon");
            }
        }
    }

    /// The names of the configured plugins.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .plugins
            .read()
            .map(|plugins| plugins.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A breaker admission in hand. Dropped without its permit taken, which happens when the caller
/// stops waiting mid-call, it settles the call as having no verdict, so a trial that is abandoned
/// never holds its plugin half-open for good.
struct Admitted {
    entry: Arc<Entry>,
    permit: Option<Permit>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take()
            && let Ok(mut health) = self.entry.health.lock()
        {
            health
                .breaker
                .settle(permit, Outcome::NoVerdict, Instant::now());
        }
    }
}

fn admit(
    entry: &Arc<Entry>,
    name: &str,
    world: PluginWorld,
) -> Result<(Arc<Prepared>, Admitted), CallError> {
    let plugin = entry.plugin.as_ref().map_err(|reason| CallError::Refused {
        name: name.to_owned(),
        reason: reason.to_string(),
    })?;
    if plugin.world != world {
        return Err(CallError::WrongWorld {
            name: name.to_owned(),
            expected: worlds::world_name(world).to_owned(),
            actual: worlds::world_name(plugin.world).to_owned(),
        });
    }
    let tripped = || CallError::Tripped {
        name: name.to_owned(),
    };
    let mut health = entry.health.lock().map_err(|_| tripped())?;
    match health.breaker.admit(Instant::now()) {
        Admission::Go(permit) => Ok((
            plugin.clone(),
            Admitted {
                entry: entry.clone(),
                permit: Some(permit),
            },
        )),
        Admission::Refused => Err(tripped()),
    }
}

/// How long ago `trip` was. Both times are whole seconds, so the trip may be up to a second more
/// recent than their difference says; count from the latest it can be, never cutting a
/// cool-down.
fn trip_age(trip: &Trip) -> Duration {
    Duration::from_secs(unix_now().saturating_sub(trip.at).saturating_sub(1))
}

fn status_of(entry: &Entry, isolation: &'static str) -> PluginStatus {
    let config = &entry.config;
    let (state, recent_errors) = match entry.health.lock() {
        Ok(health) => {
            let state = match &entry.plugin {
                Err(reason) => PluginState::Refused {
                    reason: reason.to_string(),
                },
                Ok(_) if health.breaker.is_tripped() => PluginState::Tripped {
                    consecutive_failures: health.failures_in_a_row,
                },
                Ok(_) => PluginState::Loaded,
            };
            (state, health.recent.iter().cloned().collect())
        }
        Err(_) => (PluginState::Loaded, Vec::new()),
    };
    PluginStatus {
        name: config.name.clone(),
        kind: config.world,
        sha256: config.sha256.to_ascii_lowercase(),
        allowed_hosts: config
            .allowed_hosts
            .iter()
            .map(|url| url.as_str().trim_end_matches('/').to_owned())
            .collect(),
        allowed_addresses: config.allowed_addresses.clone(),
        state,
        recent_errors,
        reverse_dns: entry
            .plugin
            .as_ref()
            .is_ok_and(|plugin| plugin.pre.reverse_dns()),
        isolation,
        runner: entry
            .plugin
            .as_ref()
            .ok()
            .and_then(|plugin| plugin.runner.as_ref())
            .map(|runner| runner.status()),
    }
}

/// Starts a loaded plugin's runner, so a runner that cannot start refuses the plugin at once.
async fn start_runner(
    outcome: Result<Arc<Prepared>, LoadError>,
) -> Result<Arc<Prepared>, LoadError> {
    let prepared = outcome?;
    if let Some(runner) = &prepared.runner {
        runner
            .ensure_started()
            .await
            .map_err(|detail| LoadError::Runner { detail })?;
    }
    Ok(prepared)
}

/// What plugin `spec`'s runner is given, and what the daemon keeps to serve it.
fn runner_plugin(spec: &PluginSpec, prepared: &Prepared) -> RunnerPlugin {
    let crate::egress::Route::Direct(egress) = &prepared.setup.egress else {
        unreachable!("the loader always routes directly")
    };
    // An artifact that cannot be serialized starts a runner that says so, once.
    let artifact = prepared.component.serialize().unwrap_or_default();
    RunnerPlugin {
        name: prepared.setup.plugin.clone(),
        world: prepared.world,
        artifact: Arc::new(artifact),
        settings: spec
            .settings
            .iter()
            .map(|(key, value)| (key.clone(), value.expose().to_owned()))
            .collect(),
        memory_bytes: prepared.setup.limits.memory_bytes,
        timeout: prepared.timeout,
        kv: match &prepared.setup.kv {
            crate::kv::KvBackend::Store(store) => store.clone(),
            crate::kv::KvBackend::Relayed(_) => None,
        },
        kv_quota_kib: prepared.setup.limits.kv_quota_kib,
        egress: egress.clone(),
    }
}

fn drop_answer(answer: Answer) -> Result<(), CallError> {
    drop(answer);
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
