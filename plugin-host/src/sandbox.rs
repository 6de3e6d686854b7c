//! One call's sandbox: the store data every capability hangs off, the per-world linkers, and the
//! limits a fresh `Store` is created with.
//!
//! Nothing here outlives a call: a `Store` is created for each one and dropped after it, taking
//! the guest's memory, its resources and any in-flight HTTP exchange with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::egress::{self, EgressHooks, Route};
use crate::engine::PluginEngine;
use crate::error::{CallBudget, CallError, classify_trap};
use crate::harness::{FixedClock, Harness};
use crate::host_api::{self, HostState};
use crate::invoke::{Answer, Invocation, invoke};
use crate::kv::{self, KvBackend, KvState};
use crate::loader::WorldPre;
use crate::stdio::CapturedOutput;
use crate::{PluginWorld, Secret};

/// Bytes of stdout and of stderr kept per call.
const STDIO_CAP: usize = 16 * 1024;
/// Resources (streams, requests, fields…) a plugin may hold at once.
const MAX_RESOURCES: usize = 1_000;
/// Bytes the guest may hand the host in one host call, and in the result of the call itself:
/// wasmtime copies strings and lists out of guest memory into host allocations, so without this
/// a guest could make the host allocate as much as its own memory limit in one go (wasmtime's
/// default is 128 MiB). The largest thing a well-behaved plugin passes is an HTTP body chunk or a
/// 64 KiB answer; 8 MiB leaves ample room and bounds the host's copy.
pub(super) const HOSTCALL_FUEL: usize = 8 * 1024 * 1024;

/// The per-call limits, from the manifest.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub memory_bytes: usize,
    pub kv_quota_kib: u32,
}

/// Everything a plugin call's store carries.
pub struct CallState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) http: WasiHttpCtx,
    pub(super) egress: EgressHooks,
    pub(super) host: HostState,
    pub(super) kv: KvState,
    limits: StoreLimits,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
    plugin: Arc<str>,
}

/// What a plugin brings to each of its calls.
#[derive(Clone)]
pub struct CallSetup {
    pub plugin: Arc<str>,
    pub settings: Arc<BTreeMap<String, Secret>>,
    pub limits: CallLimits,
    pub egress: Route,
    pub kv: KvBackend,
    /// The author's workbench, whose clock the call reads when it is fixed; never in the daemon.
    pub harness: Option<Arc<Harness>>,
}

impl CallState {
    fn new(setup: &CallSetup) -> Self {
        let stdout = CapturedOutput::new(STDIO_CAP);
        let stderr = CapturedOutput::new(STDIO_CAP);
        let clock = setup.harness.as_ref().and_then(|h| h.clock());
        let wasi = locked_down_wasi(&stdout, &stderr, clock);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let limits = StoreLimitsBuilder::new()
            .memory_size(setup.limits.memory_bytes)
            .memories(1)
            .tables(16)
            .instances(32)
            .table_elements(100_000)
            .trap_on_grow_failure(true)
            .build();
        Self {
            wasi,
            table,
            http: WasiHttpCtx::new(),
            egress: EgressHooks::new(
                setup.plugin.clone(),
                setup.egress.clone(),
                setup.limits.memory_bytes,
            ),
            host: HostState::new(setup.plugin.clone(), setup.settings.clone()),
            kv: KvState::new(&setup.plugin, setup.kv.clone(), setup.limits.kv_quota_kib),
            limits,
            stdout,
            stderr,
            plugin: setup.plugin.clone(),
        }
    }

    /// Logs what the call printed and what it was refused.
    pub fn finish(&self) -> Vec<String> {
        self.stdout.flush_to_log(&self.plugin, "stdout");
        self.stderr.flush_to_log(&self.plugin, "stderr");
        self.host.finish();
        self.egress.denials()
    }
}

/// No preopens, no environment, no arguments, no network, stdio captured; the wall clock fixed
/// at `clock` (Unix seconds) when an author's test asks.
fn locked_down_wasi(
    stdout: &CapturedOutput,
    stderr: &CapturedOutput,
    clock: Option<u64>,
) -> WasiCtx {
    let mut builder = WasiCtx::builder();
    builder
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    if let Some(seconds) = clock {
        builder.wall_clock(FixedClock(seconds));
    }
    builder.build()
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A fresh store for one call, with its limits, hostcall fuel and epoch deadline in place.
///
/// The guest yields to the async runtime at every epoch tick it runs through, and traps after
/// `deadline_ticks` of them. Without the yields a guest that computes without calling the host
/// would hold a runtime worker thread until its deadline, and a few such calls would stall every
/// connection the daemon serves. Ticks spent waiting to be polled again are not counted here;
/// the `tokio` timeout around the call bounds its wall time.
pub fn new_store(engine: &Engine, setup: &CallSetup, deadline_ticks: u64) -> Store<CallState> {
    let mut store = Store::new(engine, CallState::new(setup));
    store.limiter(|state| &mut state.limits);
    store.set_hostcall_fuel(HOSTCALL_FUEL);
    store.set_epoch_deadline(1);
    let mut ticks_left = deadline_ticks;
    store.epoch_deadline_callback(move |_| {
        if ticks_left <= 1 {
            return Err(Trap::Interrupt.into());
        }
        ticks_left -= 1;
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// Makes `invocation` of `pre` in a fresh store of `setup` within `timeout`, in whichever
/// process the plugin runs: the outcome, each failure classified, and what the egress policy
/// refused during the call.
pub async fn run(
    engine: &Engine,
    setup: &CallSetup,
    pre: WorldPre,
    timeout: std::time::Duration,
    invocation: Invocation,
) -> (Result<Answer, CallError>, Vec<String>) {
    let name = &*setup.plugin;
    let limit_ms = timeout.as_millis() as u64;
    let mut store = new_store(engine, setup, PluginEngine::ticks_for(timeout));
    let result = tokio::time::timeout(timeout, invoke(&mut store, pre, invocation)).await;
    let denials = store.data().finish();
    drop(store);
    let outcome = match result {
        Err(_) => Err(CallError::Timeout {
            name: name.to_owned(),
            limit_ms,
        }),
        Ok(Err(err)) => {
            let budget = CallBudget {
                timeout_ms: limit_ms,
                memory_bytes: setup.limits.memory_bytes,
                hostcall_bytes: HOSTCALL_FUEL,
            };
            Err(classify_trap(name, &budget, &err))
        }
        Ok(Ok(answer)) => Ok(answer),
    };
    (outcome, denials)
}

/// The linker for `world`: exactly the world's interfaces plus inert WASI.
pub fn linker(engine: &Engine, world: PluginWorld) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    link_inert_wasi(&mut linker)?;
    host_api::link(&mut linker)?;
    if world != PluginWorld::CloudInitTemplate {
        kv::link(&mut linker)?;
        egress::link(&mut linker)?;
    }
    #[cfg(feature = "hostile-test-hooks")]
    crate::escape_hooks::link(&mut linker)?;
    Ok(linker)
}

/// The WASI interfaces language runtimes import on start-up, each backed by nothing: stdio goes
/// to our capped buffers, the environment and argument list are empty, the filesystem has no
/// preopened directory so no path resolves, and there is no socket interface at all.
fn link_inert_wasi(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

    let l = linker;
    wasmtime_wasi::p2::bindings::io::error::add_to_linker::<CallState, HasTable>(l, |s| {
        &mut s.table
    })?;
    wasmtime_wasi::p2::bindings::io::poll::add_to_linker::<CallState, HasTable>(l, |s| {
        &mut s.table
    })?;
    wasmtime_wasi::p2::bindings::io::streams::add_to_linker::<CallState, HasTable>(l, |s| {
        &mut s.table
    })?;
    clocks::wall_clock::add_to_linker::<CallState, WasiClocks>(
        l,
        <CallState as WasiClocksView>::clocks,
    )?;
    clocks::monotonic_clock::add_to_linker::<CallState, WasiClocks>(
        l,
        <CallState as WasiClocksView>::clocks,
    )?;
    random::random::add_to_linker::<CallState, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure::add_to_linker::<CallState, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure_seed::add_to_linker::<CallState, WasiRandom>(l, |s| s.wasi.random())?;
    cli::exit::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    cli::environment::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    cli::stdin::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    cli::stdout::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    cli::stderr::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    cli::terminal_input::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    cli::terminal_output::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    cli::terminal_stdin::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    cli::terminal_stdout::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    cli::terminal_stderr::add_to_linker::<CallState, WasiCli>(l, <CallState as WasiCliView>::cli)?;
    filesystem::types::add_to_linker::<CallState, WasiFilesystem>(
        l,
        <CallState as WasiFilesystemView>::filesystem,
    )?;
    filesystem::preopens::add_to_linker::<CallState, WasiFilesystem>(
        l,
        <CallState as WasiFilesystemView>::filesystem,
    )?;
    // The context permits no TCP, no UDP and no name lookup: wasmtime-wasi checks that before it
    // makes any socket, so each attempt answers `access-denied`.
    let network_options = sockets::network::LinkOptions::default();
    sockets::network::add_to_linker::<CallState, WasiSockets>(l, &network_options, |s| {
        s.sockets()
    })?;
    sockets::instance_network::add_to_linker::<CallState, WasiSockets>(l, |s| s.sockets())?;
    sockets::tcp_create_socket::add_to_linker::<CallState, WasiSockets>(l, |s| s.sockets())?;
    sockets::tcp::add_to_linker::<CallState, WasiSockets>(l, |s| s.sockets())?;
    sockets::udp_create_socket::add_to_linker::<CallState, WasiSockets>(l, |s| s.sockets())?;
    sockets::udp::add_to_linker::<CallState, WasiSockets>(l, |s| s.sockets())?;
    sockets::ip_name_lookup::add_to_linker::<CallState, WasiSockets>(l, |s| s.sockets())?;
    Ok(())
}

struct HasTable;

impl wasmtime::component::HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}
