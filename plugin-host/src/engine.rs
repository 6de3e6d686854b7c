//! The one wasmtime `Engine` all plugins share, its epoch ticker, and compilation with an on-disk
//! cache of our own artifacts.
//!
//! Compiling a component takes a good fraction of a second; a restart should not pay it for every
//! plugin. Compiled artifacts are cached under `plugin-cache/` beside the database, one file per
//! plugin name, component SHA-256 and engine. Deserializing is only safe for bytes wasmtime itself
//! produced, so each artifact is sealed with an HMAC-SHA256 under a key derived from the daemon's
//! data key (`porthole-plugin-artifact`, the workspace's one `unsafe` call) that also binds the
//! plugin's name, the component's digest and the engine's settings; it is deserialized only after
//! the MAC verifies. Anything else, including a file in an older layout, is recompiled. Once
//! every configured plugin is loaded, entries none of them uses are deleted once a day old.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use porthole_plugin_artifact::Binding;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Upper bound on any one plugin's linear memory; the config check refuses more, and the loader
/// clamps to it as well.
pub const MAX_PLUGIN_MEMORY_BYTES: usize = 512 * 1024 * 1024;

/// Concurrent plugin instances the pool holds; further calls wait for a slot.
pub const POOL_SLOTS: u32 = 128;

/// Dirty linear-memory bytes a freed pool slot restores in place (copied back from the module's
/// image, or zeroed) instead of handing them back to the kernel. The next instance still starts
/// from pristine memory; what is saved is the `madvise` at every teardown and the page faults of
/// every fresh instance touching its stack, data and heap, together over a third of a cloud-init
/// render. The cost is memory kept resident: at most this much per slot, 128 MiB for a full pool.
const MEMORY_KEEP_RESIDENT: usize = 1024 * 1024;
/// The same for the slot's tables of function references.
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;

/// The shared engine and the thread that advances its epoch.
pub struct PluginEngine {
    engine: Engine,
    ticker_stop: Arc<AtomicBool>,
}

impl PluginEngine {
    pub fn new() -> wasmtime::Result<Self> {
        Self::with(&engine_config())
    }

    /// The engine of a plugin runner, whose address space is limited to little more than the
    /// plugin's memory: no pool (its slots reserve gigabytes), memories reserved at their size
    /// and moved when they grow, no guard regions, no copy-on-write images (which need
    /// `memfd_create`), and compilation on the calling thread (the runner makes no thread once
    /// it serves). The daemon compiles its runners' components in [`Self::compiling_for_runners`].
    pub fn for_runner() -> wasmtime::Result<Self> {
        Self::with(&Self::runner_config(false))
    }

    /// The daemon's engine when plugins run in runners: configured as theirs, so the artifacts it
    /// compiles load there, but compiling on every core (which artifacts do not record).
    pub fn compiling_for_runners() -> wasmtime::Result<Self> {
        Self::with(&Self::runner_config(true))
    }

    fn runner_config(parallel_compilation: bool) -> Config {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .wasm_component_model(true)
            .max_wasm_stack(512 * 1024)
            .memory_reservation(0)
            .memory_reservation_for_growth(1024 * 1024)
            .memory_guard_size(0)
            .guard_before_linear_memory(false)
            .memory_init_cow(false)
            .parallel_compilation(parallel_compilation);
        config
    }

    fn with(config: &Config) -> wasmtime::Result<Self> {
        let engine = Engine::new(config)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.weak(), ticker_stop.clone())?;
        Ok(Self {
            engine,
            ticker_stop,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Epoch ticks covering `timeout`, plus one so a deadline never fires early.
    pub fn ticks_for(timeout: Duration) -> u64 {
        (timeout.as_millis() / EPOCH_TICK.as_millis()) as u64 + 1
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn engine_config() -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_SLOTS)
        .total_core_instances(POOL_SLOTS * 8)
        .total_memories(POOL_SLOTS)
        .total_tables(POOL_SLOTS * 4)
        .max_memories_per_component(1)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .max_tables_per_component(8)
        .max_core_instances_per_component(16)
        .max_memory_size(MAX_PLUGIN_MEMORY_BYTES)
        .table_elements(100_000);
    // Keeping pages resident is only cheap when the kernel can tell which pages a call dirtied
    // (PAGEMAP_SCAN, Linux 6.7+); without it wasmtime would memset the whole kept range on every
    // teardown, which costs more than the page faults it saves.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
    }
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .wasm_component_model(true)
        // A deep recursion must end in a trap well before it could touch the host's own stack.
        .max_wasm_stack(512 * 1024);
    config
}

/// Advances the epoch every tick until the engine is gone or `stop` is set.
fn spawn_ticker(engine: wasmtime::EngineWeak, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("porthole-plugin-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
    Ok(())
}

/// Compiled-artifact cache, one entry per plugin, component and engine, each sealed with a MAC.
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
    /// Entries this run looked for or wrote; the rest are left over from other components,
    /// plugins or engine versions.
    used: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl ArtifactCache {
    /// `data_key` is the daemon's data key; the MAC key is derived from it so the two are never
    /// used for the same purpose.
    pub fn new(dir: PathBuf, data_key: &[u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"porthole plugin artifact cache v1");
        hasher.update(data_key);
        Self {
            dir,
            key: hasher.finalize().into(),
            used: Default::default(),
        }
    }

    /// Deletes the entries no plugin of this run uses: a plugin upgraded, renamed or removed, or
    /// a daemon upgraded, would otherwise leave its artifacts behind for ever. Entries written in
    /// the last day stay, and so do files being written: another daemon sharing the directory
    /// (a rolling upgrade) may be using them.
    pub fn prune(&self) {
        const GRACE: Duration = Duration::from_secs(24 * 60 * 60);
        let recent = |path: &Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_none_or(|age| age < GRACE)
        };
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let Ok(used) = self.used.lock() else {
            return;
        };
        let stale = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|path| {
                let ours = path.extension().and_then(|e| e.to_str()) == Some("cwasm");
                ours && !used.contains(path) && !recent(path)
            });
        let mut removed = 0;
        for path in stale {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "cannot remove a stale plugin cache entry")
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed stale plugin cache entries");
        }
    }

    fn note_used(&self, path: &Path) {
        if let Ok(mut used) = self.used.lock() {
            used.insert(path.to_owned());
        }
    }

    /// The entry's file. The MAC, not the name, is what ties an entry to its plugin: the name
    /// only keeps entries apart, so a configured name is cut to what is safe in a file name.
    fn path_for(&self, engine: &Engine, binding: &Binding<'_>) -> PathBuf {
        let plugin: String = binding
            .plugin
            .chars()
            .take(64)
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '-' | '_' => c,
                _ => '_',
            })
            .collect();
        let engine = hex::encode(&porthole_plugin_artifact::engine_fingerprint(engine)[..8]);
        self.dir
            .join(format!("{plugin}-{}-{engine}.cwasm", binding.sha256))
    }

    /// The cached component for `binding`, if present and sealed by us for exactly that.
    fn load(&self, engine: &Engine, binding: &Binding<'_>) -> Option<Component> {
        let path = self.path_for(engine, binding);
        self.note_used(&path);
        let sealed = std::fs::read(&path).ok()?;
        match porthole_plugin_artifact::open(engine, &self.key, binding, &sealed) {
            Ok(component) => Some(component),
            Err(problem) => {
                tracing::warn!(path = %path.display(), ?problem, "ignoring a plugin cache entry; recompiling");
                None
            }
        }
    }

    fn store(&self, engine: &Engine, binding: &Binding<'_>, component: &Component) {
        let result = (|| -> anyhow::Result<()> {
            let artifact = component
                .serialize()
                .map_err(|err| anyhow::anyhow!("{err:#}"))?;
            std::fs::create_dir_all(&self.dir)?;
            let path = self.path_for(engine, binding);
            self.note_used(&path);
            let partial = path.with_extension("partial");
            std::fs::write(
                &partial,
                porthole_plugin_artifact::seal(&self.key, engine, binding, &artifact),
            )?;
            std::fs::rename(partial, path)?;
            Ok(())
        })();
        if let Err(err) = result {
            tracing::warn!(error = %err, "could not cache a compiled plugin; it will be recompiled next start");
        }
    }
}

/// Compiles each distinct component once: in memory per digest for the daemon's lifetime, and on
/// disk across restarts when a cache directory is configured.
#[derive(Default)]
pub struct Compiler {
    compiled: std::sync::Mutex<std::collections::HashMap<String, Component>>,
    disk: Option<ArtifactCache>,
}

impl Compiler {
    pub fn new(disk: Option<ArtifactCache>) -> Self {
        Self {
            compiled: Default::default(),
            disk,
        }
    }

    /// Deletes cached artifacts that no plugin compiled so far uses.
    pub fn prune_cache(&self) {
        if let Some(disk) = &self.disk {
            disk.prune();
        }
    }

    /// The component for plugin `plugin`'s `bytes`, whose SHA-256 (already verified) is `sha256`.
    pub fn compile(
        &self,
        engine: &Engine,
        plugin: &str,
        sha256: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        if let Some(component) = self
            .compiled
            .lock()
            .ok()
            .and_then(|c| c.get(sha256).cloned())
        {
            return Ok(component);
        }
        let binding = Binding { plugin, sha256 };
        let component = match self
            .disk
            .as_ref()
            .and_then(|disk| disk.load(engine, &binding))
        {
            Some(component) => component,
            None => {
                let component = Component::new(engine, bytes)?;
                if let Some(disk) = &self.disk {
                    disk.store(engine, &binding, &component);
                }
                component
            }
        };
        if let Ok(mut compiled) = self.compiled.lock() {
            compiled.insert(sha256.to_owned(), component.clone());
        }
        Ok(component)
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where the cache lives for a database at `database`.
pub fn cache_dir_for(database: &Path) -> PathBuf {
    database
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("plugin-cache")
}
