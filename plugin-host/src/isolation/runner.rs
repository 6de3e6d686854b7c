//! `porthole plugin-runner`: one plugin, in a process of its own, locked down before it reads
//! the plugin (see [`super::lockdown`]), serving the daemon's calls over its one descriptor.
//!
//! Calls run exactly as in the daemon (a fresh store per call, the same limits and deadline),
//! but every capability is asked of the daemon: `kv`, outbound HTTP, and the log, which is
//! forwarded line by line for the daemon to cap and write.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot};
use wasmtime::Engine;

use super::lockdown;
use super::protocol::{
    self, Confinement, FromRunner, HostReply, HostRequest, LogLevel, Start, ToRunner,
};
use crate::Secret;
use crate::egress::Route;
use crate::engine::PluginEngine;
use crate::error::CallError;
use crate::harness::Harness;
use crate::invoke::{Answer, Invocation};
use crate::kv::KvBackend;
use crate::loader::{self, WorldPre};
use crate::sandbox::{self, CallLimits, CallSetup};

/// Frames waiting to be written to the daemon; a log line that finds the queue full is dropped.
const OUTGOING_FRAMES: usize = 256;

/// The runner's side of the daemon's capabilities for one call: asks, and waits for the reply.
#[derive(Clone)]
pub struct Relay {
    call: u64,
    link: Arc<Link>,
}

impl Relay {
    /// The daemon's reply; `None` once the channel is gone.
    pub async fn ask(&self, ask: HostRequest) -> Option<HostReply> {
        let request = self.link.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.link.pending.lock().ok()?.insert(request, reply);
        let frame = FromRunner::Host {
            call: self.call,
            request,
            ask,
        };
        self.link.out.send(frame).await.ok()?;
        answer.await.ok()
    }
}

struct Link {
    out: mpsc::Sender<FromRunner>,
    pending: Mutex<HashMap<u64, oneshot::Sender<HostReply>>>,
    next_request: AtomicU64,
}

/// Runs the runner; the process exits with what this returns. `address_space_bytes` is the
/// address-space limit the daemon chose for this plugin.
pub fn main(address_space_bytes: u64) -> std::process::ExitCode {
    match run(address_space_bytes) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The daemon has been told (or the channel is gone); a status is all that is left.
        Err(()) => std::process::ExitCode::FAILURE,
    }
}

fn run(address_space_bytes: u64) -> Result<(), ()> {
    let channel = std::os::unix::net::UnixStream::from(lockdown::take_channel());
    let mut confinement = match lockdown::confine(&channel, address_space_bytes) {
        Ok(confinement) => confinement,
        Err(err) => return refuse(&channel, &err.to_string()),
    };
    // Everything that makes a thread or a descriptor happens here, before the allow-list.
    let engine = match PluginEngine::for_runner() {
        Ok(engine) => engine,
        Err(err) => return refuse(&channel, &format!("the plugin engine: {err:#}")),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let (Ok(runtime), Ok(())) = (runtime, channel.set_nonblocking(true)) else {
        return refuse(&channel, "cannot start the runner's event loop");
    };
    let Ok(channel) = runtime.block_on(async { UnixStream::from_std(channel) }) else {
        return Err(());
    };
    let forbidden = lockdown::forbid_syscalls(&mut confinement);
    report_panics();
    runtime.block_on(serve(channel, engine, confinement, forbidden))
}

/// A panic anywhere in the runner ends it, after telling the daemon why (its standard error
/// goes nowhere). The frame may land amid another; the daemon then reads a malformed frame,
/// which ends the runner just the same.
fn report_panics() {
    std::panic::set_hook(Box::new(|panic| {
        let failed = FromRunner::Failed {
            reason: format!("the runner panicked: {panic}"),
        };
        if let Ok(frame) = protocol::encode(&failed) {
            let channel = std::io::stdin();
            let _ = nix::unistd::write(channel.as_fd(), &frame);
        }
        std::process::abort();
    }));
}

/// Tells the daemon why the runner cannot start.
fn refuse(mut channel: &std::os::unix::net::UnixStream, reason: &str) -> Result<(), ()> {
    use std::io::Write;
    let failed = FromRunner::Failed {
        reason: reason.to_owned(),
    };
    if let Ok(frame) = protocol::encode(&failed) {
        let _ = channel.write_all(&frame);
    }
    Err(())
}

async fn serve(
    channel: UnixStream,
    engine: PluginEngine,
    confinement: Confinement,
    forbidden: Result<(), lockdown::LockdownError>,
) -> Result<(), ()> {
    let (mut reader, mut writer) = channel.into_split();
    // One task writes every frame: a call abandoned at its deadline mid-request cannot leave
    // half a frame on the channel, and log lines queued during a call precede its answer.
    let (out, mut outgoing) = mpsc::channel::<FromRunner>(OUTGOING_FRAMES);
    tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if protocol::write_frame(&mut writer, &frame).await.is_err() {
                break;
            }
        }
    });
    let say = |frame| {
        let out = out.clone();
        async move { out.send(frame).await.map_err(drop) }
    };
    if let Err(err) = forbidden {
        let reason = err.to_string();
        say(FromRunner::Failed { reason }).await?;
        return Err(());
    }
    say(FromRunner::Confined(confinement)).await?;
    forward_tracing(out.clone());
    let start = match protocol::read_frame::<ToRunner>(&mut reader, protocol::MAX_TO_RUNNER).await {
        Ok(Some(ToRunner::Start(start))) => start,
        _ => return Err(()),
    };
    let plugin = match Plugin::prepare(engine.engine(), *start) {
        Ok(plugin) => Arc::new(plugin),
        Err(reason) => {
            say(FromRunner::Failed { reason }).await?;
            return Err(());
        }
    };
    say(FromRunner::Ready).await?;
    let link = Arc::new(Link {
        out,
        pending: Mutex::default(),
        next_request: AtomicU64::new(0),
    });
    answer_calls(&mut reader, engine.engine(), &plugin, &link).await;
    Ok(())
}

/// Serves frames until the daemon closes the channel or sends one the runner cannot read.
async fn answer_calls(
    reader: &mut OwnedReadHalf,
    engine: &Engine,
    plugin: &Arc<Plugin>,
    link: &Arc<Link>,
) {
    while let Ok(Some(frame)) =
        protocol::read_frame::<ToRunner>(reader, protocol::MAX_TO_RUNNER).await
    {
        match frame {
            ToRunner::Call {
                call,
                invocation,
                wall_clock,
            } => {
                let (engine, plugin, link) = (engine.clone(), plugin.clone(), link.clone());
                tokio::spawn(async move {
                    let outcome = plugin
                        .call(&engine, call, &link, invocation, wall_clock)
                        .await;
                    let _ = link.out.send(FromRunner::Done { call, outcome }).await;
                });
            }
            ToRunner::Reply { request, reply } => {
                let waiting = link
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&request));
                if let Some(waiting) = waiting {
                    let _ = waiting.send(reply);
                }
            }
            ToRunner::Start(_) => break,
        }
    }
}

/// The plugin this runner serves.
struct Plugin {
    name: Arc<str>,
    pre: WorldPre,
    settings: Arc<BTreeMap<String, Secret>>,
    memory_bytes: usize,
    timeout: Duration,
}

impl Plugin {
    fn prepare(engine: &Engine, start: Start) -> Result<Self, String> {
        let component = porthole_plugin_artifact::from_daemon(engine, &start.artifact)
            .map_err(|err| format!("cannot load the compiled component: {err:#}"))?;
        let world = loader::examine(engine, &component, Some(start.world))
            .map_err(|err| err.to_string())?;
        let pre = loader::prepare(engine, &component, world).map_err(|err| err.to_string())?;
        let settings = start
            .settings
            .into_iter()
            .map(|(key, value)| (key, Secret::new(value)))
            .collect();
        Ok(Self {
            name: Arc::from(start.plugin.as_str()),
            pre,
            settings: Arc::new(settings),
            memory_bytes: start.memory_bytes,
            timeout: Duration::from_millis(start.timeout_ms.max(1)),
        })
    }

    /// Makes call `call` in a fresh store whose capabilities are relayed to the daemon.
    async fn call(
        &self,
        engine: &Engine,
        call: u64,
        link: &Arc<Link>,
        invocation: Invocation,
        wall_clock: Option<u64>,
    ) -> Result<Answer, CallError> {
        let relay = Relay {
            call,
            link: link.clone(),
        };
        let setup = CallSetup {
            plugin: self.name.clone(),
            settings: self.settings.clone(),
            limits: CallLimits {
                memory_bytes: self.memory_bytes,
                // The daemon holds the quota and applies it to every write.
                kv_quota_kib: 0,
            },
            egress: Route::Relayed(relay.clone()),
            kv: KvBackend::Relayed(relay),
            harness: wall_clock.map(|seconds| {
                let harness = Harness::new();
                harness.set_clock(Some(seconds));
                harness
            }),
        };
        // What the egress policy refused is the daemon's to know: it applied the policy.
        let (outcome, _) =
            sandbox::run(engine, &setup, self.pre.clone(), self.timeout, invocation).await;
        outcome
    }
}

/// Sends every log event of the runtime to the daemon, which writes it as this plugin's.
fn forward_tracing(out: mpsc::Sender<FromRunner>) {
    let _ = tracing::subscriber::set_global_default(Forward { out });
}

struct Forward {
    out: mpsc::Sender<FromRunner>,
}

impl tracing::Subscriber for Forward {
    /// The runtime's own events, which carry what the plugin logged and printed; of wasmtime's
    /// and Cranelift's, only warnings and errors.
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with(env!("CARGO_CRATE_NAME"))
            || *metadata.level() <= tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let level = match *event.metadata().level() {
            tracing::Level::TRACE => LogLevel::Trace,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::ERROR => LogLevel::Error,
        };
        let mut text = Text::default();
        event.record(&mut text);
        // A full queue drops the line: the log must never hold a call up.
        let _ = self.out.try_send(FromRunner::Log {
            level,
            text: text.0,
        });
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// An event's message, then its fields as `name=value` (the plugin's name, which the daemon
/// knows, left out).
#[derive(Default)]
struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        match field.name() {
            "plugin" => {}
            "message" if self.0.is_empty() => {
                let _ = write!(self.0, "{value:?}");
            }
            "message" => self.0.insert_str(0, &format!("{value:?} ")),
            name => {
                let _ = write!(self.0, " {name}={value:?}");
            }
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.record_debug(field, &format_args!("{value}")),
            // Quoted, as the daemon's own log writes a text field.
            _ => self.record_debug(field, &value),
        }
    }
}
