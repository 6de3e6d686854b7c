//! The daemon's side of a plugin runner: starting it, making calls, performing the capabilities
//! it asks for under this plugin's own namespace, quota and egress policy, and killing it when it
//! crashes, hangs past a call's deadline or sends a frame it should not. A killed runner is
//! started again at the next call, after a back-off that doubles while restarts keep failing.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use super::protocol::{
    self, Confinement, FromRunner, HostReply, HostRequest, HttpFailure, KvRefusal, LogLevel, Start,
    ToRunner,
};
use crate::PluginWorld;
use crate::data::PluginFailure;
use crate::egress::{self, EgressConfig, EgressHooks, Route};
use crate::error::{CallError, MAX_DETAIL};
use crate::invoke::{Answer, Invocation};
use crate::kv;
use crate::store::KvStore;
use crate::text::{escape_controls, truncate};

/// Address space a runner has beyond its plugin's memory: the mapped binary, the compiled
/// component, the allocator's arenas, fiber stacks and the event loop.
pub const ADDRESS_SPACE_OVERHEAD: u64 = 1024 * 1024 * 1024;
/// How long a runner has to confine itself, and then to compile its component.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// A call's answer may arrive this long after the call's own deadline before the runner is
/// taken to hang.
const ANSWER_GRACE: Duration = Duration::from_secs(2);
/// The first wait before a restart, and the longest.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Capabilities a runner may have asked for and not yet been answered; more is misbehaviour (a
/// guest waits for each answer, so a runner whose calls are within their own limits needs
/// few).
const MAX_OPEN_REQUESTS: usize = 256;
/// Frames waiting to be written to a runner.
const OUTGOING_FRAMES: usize = 256;
/// Log bytes a runner may send per minute; the rest is dropped and counted.
const LOG_BYTES_PER_MINUTE: usize = 1024 * 1024;
/// Longest log line kept from a runner.
const MAX_LOG_LINE: usize = 8 * 1024;

/// How the daemon starts a runner: a program (the daemon's own binary) and its arguments.
#[derive(Debug, Clone)]
pub struct RunnerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// A plugin's runner, as the operators' status shows it.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunnerStatus {
    /// The live runner's process id.
    pub pid: Option<u32>,
    /// Runners started after the first.
    pub restarts: u32,
    /// The live runner's resident memory.
    pub rss_kib: Option<u64>,
    /// What its lockdown achieved.
    pub confinement: Option<Confinement>,
}

/// What a runner serves, and what the daemon holds back from it.
pub struct RunnerPlugin {
    pub name: Arc<str>,
    pub world: PluginWorld,
    /// The component, compiled by the daemon in an engine configured as the runner's.
    pub artifact: Arc<Vec<u8>>,
    pub settings: BTreeMap<String, String>,
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub kv: Option<Arc<dyn KvStore>>,
    pub kv_quota_kib: u32,
    pub egress: EgressConfig,
}

/// One plugin's runners, one at a time.
pub struct Supervisor {
    command: RunnerCommand,
    plugin: RunnerPlugin,
    slot: tokio::sync::Mutex<Slot>,
    restarts: AtomicU32,
    /// Whether a runner has been started before (so the next one is a restart).
    started: AtomicBool,
}

#[derive(Default)]
struct Slot {
    live: Option<Arc<Live>>,
    /// Starts that failed, or runners that died, in a row.
    failures: u32,
    /// No start before this.
    not_before: Option<Instant>,
}

/// A running runner.
struct Live {
    name: Arc<str>,
    pid: Option<u32>,
    confinement: Confinement,
    /// Frames to the runner, written by one task: a caller that gives up mid-send cannot
    /// leave half a frame on the channel.
    out: mpsc::Sender<ToRunner>,
    calls: Mutex<HashMap<u64, Pending>>,
    next_call: AtomicU64,
    alive: AtomicBool,
    kill: Notify,
    started_at: Instant,
}

struct Pending {
    done: oneshot::Sender<Result<Answer, CallError>>,
    egress: Arc<Mutex<EgressHooks>>,
}

impl Supervisor {
    pub fn new(command: RunnerCommand, plugin: RunnerPlugin) -> Self {
        Self {
            command,
            plugin,
            slot: tokio::sync::Mutex::default(),
            restarts: AtomicU32::new(0),
            started: AtomicBool::new(false),
        }
    }

    /// Starts the runner if none is live; the reason if it cannot.
    pub async fn ensure_started(&self) -> Result<(), String> {
        self.live().await.map(drop)
    }

    /// Makes `invocation` in the runner. Returns the outcome and what the egress policy refused.
    /// Everything, a runner starting again included, happens within the call's own time limit
    /// (plus a grace for the channel): a runner that stalls cannot hold the caller longer.
    pub async fn call(&self, invocation: Invocation) -> (Result<Answer, CallError>, Vec<String>) {
        let name = &self.plugin.name;
        let deadline = tokio::time::Instant::now() + self.plugin.timeout + ANSWER_GRACE;
        let live = match tokio::time::timeout_at(deadline, self.live()).await {
            Ok(Ok(live)) => live,
            Ok(Err(detail)) => return (Err(runner_error(name, detail)), Vec::new()),
            Err(_) => return (Err(interrupted(name)), Vec::new()),
        };
        let call = live.next_call.fetch_add(1, Ordering::Relaxed);
        let egress = Arc::new(Mutex::new(EgressHooks::new(
            name.clone(),
            Route::Direct(self.plugin.egress.clone()),
            self.plugin.memory_bytes,
        )));
        let (done, answer) = oneshot::channel();
        match live.calls.lock() {
            Ok(mut calls) => {
                let egress = egress.clone();
                calls.insert(call, Pending { done, egress });
            }
            Err(_) => return (Err(interrupted(name)), Vec::new()),
        }
        let wall_clock = self.plugin.egress.harness.as_ref().and_then(|h| h.clock());
        let frame = ToRunner::Call {
            call,
            invocation,
            wall_clock,
        };
        let outcome = match tokio::time::timeout_at(deadline, live.out.send(frame)).await {
            Ok(Ok(())) => match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => Err(interrupted(name)),
                Err(_) => Err(self.hung(&live, call)),
            },
            Ok(Err(_)) => {
                live.forget(call);
                Err(interrupted(name))
            }
            Err(_) => Err(self.hung(&live, call)),
        };
        let denials = egress.lock().map(|e| e.denials()).unwrap_or_default();
        (outcome, denials)
    }

    /// A runner that did not answer call `call` in time: killed, the call timed out.
    fn hung(&self, live: &Live, call: u64) -> CallError {
        let name = &self.plugin.name;
        tracing::warn!(
            plugin = &**name,
            "plugin runner hangs past a call's deadline; killing it"
        );
        live.forget(call);
        live.stop();
        CallError::Timeout {
            name: name.to_string(),
            limit_ms: self.plugin.timeout.as_millis() as u64,
        }
    }

    /// The live runner, started (after the back-off) if there is none.
    async fn live(&self) -> Result<Arc<Live>, String> {
        let mut slot = self.slot.lock().await;
        if let Some(live) = &slot.live {
            if live.alive.load(Ordering::Acquire) {
                return Ok(live.clone());
            }
            // A runner that served a while before it died starts the back-off afresh.
            if live.started_at.elapsed() > MAX_BACKOFF {
                slot.failures = 0;
            }
            slot.failures += 1;
            slot.not_before = Some(Instant::now() + backoff(slot.failures));
            slot.live = None;
        }
        if let Some(not_before) = slot.not_before {
            tokio::time::sleep_until(not_before.into()).await;
        }
        if self.started.swap(true, Ordering::AcqRel) {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        match self.start().await {
            Ok(live) => {
                slot.live = Some(live.clone());
                slot.not_before = None;
                Ok(live)
            }
            Err(reason) => {
                tracing::error!(plugin = &*self.plugin.name, %reason, "plugin runner did not start");
                slot.failures += 1;
                slot.not_before = Some(Instant::now() + backoff(slot.failures));
                Err(reason)
            }
        }
    }

    async fn start(&self) -> Result<Arc<Live>, String> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|err| format!("cannot make the runner's channel: {err}"))?;
        let address_space = self.plugin.memory_bytes as u64 + ADDRESS_SPACE_OVERHEAD;
        let mut child = spawn(&self.command, theirs, address_space)?;
        let pid = child.id();
        let stream = ours
            .set_nonblocking(true)
            .and_then(|()| UnixStream::from_std(ours))
            .map_err(|err| format!("the runner's channel: {err}"))?;
        let (mut reader, mut writer) = stream.into_split();
        let handshake =
            tokio::time::timeout(START_TIMEOUT, self.handshake(&mut reader, &mut writer));
        let confinement = match handshake.await {
            Ok(Ok(confinement)) => confinement,
            Ok(Err(reason)) => return Err(reason),
            Err(_) => return Err("the runner did not get ready in time".into()),
        };
        let (out, outgoing) = mpsc::channel(OUTGOING_FRAMES);
        tokio::spawn(write_frames(writer, outgoing));
        let live = Arc::new(Live {
            name: self.plugin.name.clone(),
            pid,
            confinement,
            out,
            calls: Mutex::default(),
            next_call: AtomicU64::new(0),
            alive: AtomicBool::new(true),
            kill: Notify::new(),
            started_at: Instant::now(),
        });
        let relay = Relayer {
            name: self.plugin.name.clone(),
            kv: self.plugin.kv.clone(),
            kv_quota_kib: self.plugin.kv_quota_kib,
            timeout: self.plugin.timeout,
        };
        tokio::spawn(read_frames(reader, live.clone(), relay));
        let watched = live.clone();
        let name = self.plugin.name.clone();
        tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(plugin = &*name, status = ?status.ok(), "plugin runner exited");
                }
                () = watched.kill.notified() => {
                    let _ = child.kill().await;
                }
            }
            watched.fail_all("the runner stopped");
        });
        tracing::info!(plugin = &*self.plugin.name, pid, "plugin runner started");
        Ok(live)
    }

    /// Waits for the runner's lockdown, sends the plugin, waits for it to be ready.
    async fn handshake(
        &self,
        reader: &mut OwnedReadHalf,
        writer: &mut OwnedWriteHalf,
    ) -> Result<Confinement, String> {
        let confinement = match next(reader).await? {
            FromRunner::Confined(confinement) => confinement,
            other => return Err(unexpected(&other)),
        };
        let start = Start {
            plugin: self.plugin.name.to_string(),
            world: self.plugin.world,
            artifact: self.plugin.artifact.as_ref().clone(),
            settings: self.plugin.settings.clone(),
            memory_bytes: self.plugin.memory_bytes,
            timeout_ms: self.plugin.timeout.as_millis() as u64,
        };
        protocol::write_frame(writer, &ToRunner::Start(Box::new(start)))
            .await
            .map_err(|err| format!("cannot send the plugin to its runner: {err}"))?;
        match next(reader).await? {
            FromRunner::Ready => Ok(confinement),
            other => Err(unexpected(&other)),
        }
    }

    /// The runner's status now.
    pub fn status(&self) -> RunnerStatus {
        let live = self
            .slot
            .try_lock()
            .ok()
            .and_then(|slot| slot.live.clone())
            .filter(|live| live.alive.load(Ordering::Acquire));
        RunnerStatus {
            pid: live.as_ref().and_then(|live| live.pid),
            restarts: self.restarts.load(Ordering::Relaxed),
            rss_kib: live.as_ref().and_then(|live| live.pid).and_then(rss_kib),
            confinement: live.map(|live| live.confinement.clone()),
        }
    }
}

/// Starts a runner without a plugin and reads what its lockdown achieved, so a daemon can
/// refuse to start where the kernel cannot confine a plugin. The runner exits when the channel
/// closes.
pub async fn probe(command: &RunnerCommand) -> Result<Confinement, String> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|err| format!("cannot make a runner's channel: {err}"))?;
    let mut child = spawn(command, theirs, ADDRESS_SPACE_OVERHEAD)?;
    let stream = ours
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(ours))
        .map_err(|err| format!("a runner's channel: {err}"))?;
    let (mut reader, _writer) = stream.into_split();
    let confined = tokio::time::timeout(START_TIMEOUT, next(&mut reader)).await;
    let _ = child.kill().await;
    match confined {
        Ok(Ok(FromRunner::Confined(confinement))) => Ok(confinement),
        Ok(Ok(other)) => Err(unexpected(&other)),
        Ok(Err(reason)) => Err(reason),
        Err(_) => Err("the runner did not confine itself in time".into()),
    }
}

/// Starts `command` as a runner whose only descriptor is `channel`, in an empty environment.
fn spawn(
    command: &RunnerCommand,
    channel: std::os::unix::net::UnixStream,
    address_space: u64,
) -> Result<tokio::process::Child, String> {
    tokio::process::Command::new(&command.program)
        .args(&command.args)
        .arg(address_space.to_string())
        .env_clear()
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(channel)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", command.program.display()))
}

async fn write_frames(mut writer: OwnedWriteHalf, mut outgoing: mpsc::Receiver<ToRunner>) {
    while let Some(frame) = outgoing.recv().await {
        if protocol::write_frame(&mut writer, &frame).await.is_err() {
            break;
        }
    }
}

impl Live {
    fn forget(&self, call: u64) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.remove(&call);
        }
    }

    /// Kills the runner; its calls fail.
    fn stop(&self) {
        self.alive.store(false, Ordering::Release);
        self.kill.notify_one();
    }

    fn fail_all(&self, why: &str) {
        self.alive.store(false, Ordering::Release);
        let pending: Vec<Pending> = match self.calls.lock() {
            Ok(mut calls) => calls.drain().map(|(_, pending)| pending).collect(),
            Err(_) => Vec::new(),
        };
        // One failure of the plugin's, however many calls it cut short.
        let mut counted = false;
        for pending in pending {
            let error = if counted {
                interrupted(&self.name)
            } else {
                runner_error(&self.name, why.to_owned())
            };
            counted = true;
            let _ = pending.done.send(Err(error));
        }
    }
}

/// The next frame of the handshake.
async fn next(reader: &mut OwnedReadHalf) -> Result<FromRunner, String> {
    match protocol::read_frame(reader, protocol::MAX_FROM_RUNNER).await {
        Ok(Some(FromRunner::Failed { reason })) => Err(format!(
            "the runner refused to start: {}",
            escape_controls(truncate(&reason, MAX_LOG_LINE))
        )),
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err("the runner exited before it was ready".into()),
        Err(err) => Err(format!("the runner's channel: {err}")),
    }
}

fn unexpected(frame: &FromRunner) -> String {
    let kind = match frame {
        FromRunner::Confined(_) => "confined",
        FromRunner::Ready => "ready",
        FromRunner::Failed { .. } => "failed",
        FromRunner::Host { .. } => "host",
        FromRunner::Log { .. } => "log",
        FromRunner::Done { .. } => "done",
    };
    format!("the runner sent an unexpected {kind:?} frame")
}

/// What the daemon performs for a runner.
#[derive(Clone)]
struct Relayer {
    name: Arc<str>,
    kv: Option<Arc<dyn KvStore>>,
    kv_quota_kib: u32,
    /// No capability outlives the call that asked for it.
    timeout: Duration,
}

/// Serves the runner's frames until it stops or misbehaves, then kills it.
async fn read_frames(mut reader: OwnedReadHalf, live: Arc<Live>, relay: Relayer) {
    let mut log = LogBudget::default();
    let open_requests = Arc::new(Semaphore::new(MAX_OPEN_REQUESTS));
    let why = loop {
        let frame = match protocol::read_frame(&mut reader, protocol::MAX_FROM_RUNNER).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break "the runner stopped".to_owned(),
            Err(err) if err.kind() == std::io::ErrorKind::InvalidData => {
                break format!("the runner sent a malformed frame ({err})");
            }
            Err(err) => break format!("the runner's channel failed ({err})"),
        };
        match frame {
            FromRunner::Done { call, outcome } => {
                let pending = live.calls.lock().ok().and_then(|mut c| c.remove(&call));
                if let Some(pending) = pending {
                    let outcome = outcome.map_err(|error| from_runner(&relay.name, error));
                    let _ = pending.done.send(outcome);
                }
            }
            FromRunner::Host { call, request, ask } => {
                let egress = live
                    .calls
                    .lock()
                    .ok()
                    .and_then(|calls| calls.get(&call).map(|p| p.egress.clone()));
                // A request for a call that has ended is answered with nothing.
                let Some(egress) = egress else { continue };
                let Ok(open) = open_requests.clone().try_acquire_owned() else {
                    break format!(
                        "the runner asked for more than {MAX_OPEN_REQUESTS} things at once"
                    );
                };
                let (relay, out) = (relay.clone(), live.out.clone());
                tokio::spawn(async move {
                    let reply = relay.perform(&egress, ask).await;
                    let _ = out.send(ToRunner::Reply { request, reply }).await;
                    drop(open);
                });
            }
            FromRunner::Log { level, text } => log.write(&relay.name, level, &text),
            FromRunner::Failed { reason } => {
                break format!(
                    "the runner failed: {}",
                    escape_controls(truncate(&reason, MAX_LOG_LINE))
                );
            }
            other => break unexpected(&other),
        }
    };
    if live.alive.load(Ordering::Acquire) {
        tracing::warn!(plugin = &*relay.name, reason = %why, "plugin runner stopped");
    }
    live.stop();
    live.fail_all(&why);
}

impl Relayer {
    async fn perform(&self, egress: &Mutex<EgressHooks>, ask: HostRequest) -> HostReply {
        let too_late = match &ask {
            HostRequest::Http(_) => HostReply::Http(Err(HttpFailure::ConnectionReadTimeout)),
            _ => HostReply::Kv(Err(KvRefusal::Unavailable("the call's time is up".into()))),
        };
        let performed = async {
            match ask {
                HostRequest::Http(request) => egress::serve(egress, request).await,
                kv_request => {
                    kv::serve(&self.name, self.kv.clone(), self.kv_quota_kib, kv_request).await
                }
            }
        };
        tokio::time::timeout(self.timeout, performed)
            .await
            .unwrap_or(too_late)
    }
}

/// A runner's log allowance, renewed every minute.
#[derive(Default)]
struct LogBudget {
    since: Option<Instant>,
    used: usize,
    dropped: u64,
}

impl LogBudget {
    fn write(&mut self, plugin: &str, level: LogLevel, text: &str) {
        let now = Instant::now();
        if self
            .since
            .is_none_or(|since| now - since > Duration::from_secs(60))
        {
            if self.dropped > 0 {
                tracing::warn!(
                    plugin,
                    dropped_lines = self.dropped,
                    "plugin runner exceeded its log allowance; lines were dropped"
                );
            }
            *self = Self {
                since: Some(now),
                ..Self::default()
            };
        }
        let line = escape_controls(truncate(text, MAX_LOG_LINE));
        if self.used + line.len() > LOG_BYTES_PER_MINUTE {
            self.dropped += 1;
            return;
        }
        self.used += line.len();
        crate::host_api::write_log(plugin, level, &line);
    }
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

fn interrupted(name: &str) -> CallError {
    CallError::Interrupted {
        name: name.to_owned(),
    }
}

/// A runner's own account of a failed call, rebuilt under the daemon's name for the plugin and
/// cut to size: a runner is not trusted to report errors it cannot have (to dodge the breaker),
/// or to speak for another plugin.
fn from_runner(name: &str, error: CallError) -> CallError {
    let cut = |text: &str| escape_controls(truncate(text, MAX_DETAIL)).into_owned();
    let name = name.to_owned();
    match error {
        CallError::Timeout { limit_ms, .. } => CallError::Timeout { name, limit_ms },
        CallError::ResourceLimit { detail, .. } => CallError::ResourceLimit {
            name,
            detail: cut(&detail),
        },
        CallError::Trap { detail, .. } => CallError::Trap {
            name,
            detail: cut(&detail),
        },
        CallError::InvalidOutput { detail, .. } => CallError::InvalidOutput {
            name,
            detail: cut(&detail),
        },
        CallError::Plugin { failure, .. } => CallError::Plugin {
            name,
            failure: PluginFailure {
                kind: failure.kind,
                message: truncate(&failure.message, MAX_DETAIL).to_owned(),
            },
        },
        _ => CallError::InvalidOutput {
            name,
            detail: "the runner reported an error only the daemon can have".into(),
        },
    }
}

fn runner_error(name: &str, detail: String) -> CallError {
    CallError::Runner {
        name: name.to_owned(),
        detail,
    }
}

/// Resident memory of process `pid`, from `/proc`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_cannot_dodge_the_breaker_speak_for_another_plugin_or_flood_the_status() {
        let dodge = from_runner("dns", CallError::Busy);
        assert!(
            matches!(&dodge, CallError::InvalidOutput { name, .. } if name == "dns"),
            "{dodge:?}"
        );
        assert!(dodge.is_misbehaviour());
        let other = from_runner(
            "dns",
            CallError::Trap {
                name: "billing".into(),
                detail: "x\n".repeat(MAX_DETAIL),
            },
        );
        let CallError::Trap { name, detail } = other else {
            panic!("{other:?}");
        };
        assert_eq!(name, "dns");
        assert!(
            !detail.contains('\n') && detail.len() <= 2 * MAX_DETAIL,
            "{detail}"
        );
    }
}
