//! Measures the console relay (browser WebSocket → daemon → simulated node's `vncwebsocket` →
//! VNC server) beside the simulator's node side alone and beside websockify in front of the same
//! VNC server. Prints one JSON object; `cargo xtask bench console` turns it into a section of
//! docs/benchmarks.md.
//!
//! usage: porthole-bench-console WEBSOCKIFY-EXECUTABLE
//!        porthole-bench-console --only throughput WEBSOCKIFY-EXECUTABLE
//!            (the two throughput runs and their CPU per GB alone: a quick before/after check)
//!        porthole-bench-console serve VNC-SERVER-ADDR   (the child process; see `server`)

mod backend;
mod client;
mod server;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use client::{Link, Panel, Vm};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

/// Round trips per path for the latency percentiles, after a warm-up.
const LATENCY_WARM_UP: usize = 200;
const LATENCY_SAMPLES: usize = 3000;
/// Bytes moved per path and direction for throughput, after a warm-up.
const THROUGHPUT_BYTES: usize = 256 << 20;
const THROUGHPUT_WARM_UP: usize = 16 << 20;
/// 128×128 pixels at 4 bytes: a 64 KiB Raw rectangle per update.
const TILE: u16 = 128;
/// Update requests in flight, so no path is measured waiting on a round trip.
const WINDOW: usize = 4;
/// 64 KiB ClientCutText messages, each one WebSocket frame, for the browser → VM direction.
const UP_FRAME: usize = 64 * 1024;
const FIRST_BYTE_SAMPLES: usize = 100;
const IDLE_STEPS: [usize; 2] = [1000, 5000];
/// Sessions opened before the baseline RSS, so one-time allocations are not charged to sessions.
const IDLE_WARM_UP: usize = 10;
const OPEN_PARALLEL: usize = 32;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", backend] => server::run(backend).await,
        [websockify] => {
            let report = measure(websockify, Scope::All).await?;
            println!("{report}");
            Ok(())
        }
        ["--only", "throughput", websockify] => {
            let report = measure(websockify, Scope::Throughput).await?;
            println!("{report}");
            Ok(())
        }
        _ => bail!("usage: porthole-bench-console [--only throughput] WEBSOCKIFY | serve VNC-ADDR"),
    }
}

/// Lifts the soft open-files limit to the hard one: 5,000 sessions hold three descriptors each
/// in the child (browser socket, daemon → node socket, node's accepted socket).
pub fn raise_fd_limit() -> anyhow::Result<u64> {
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(hard, hard)?;
    Ok(hard)
}

/// What a run measures: everything, or the throughput runs alone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    Throughput,
}

async fn measure(websockify_bin: &str, scope: Scope) -> anyhow::Result<Value> {
    let fd_limit = raise_fd_limit()?;
    let vnc = backend::start().await?;
    let (websockify_process, websockify) = start_websockify(websockify_bin, vnc).await?;
    let websockify_pid = websockify_process.id().context("websockify has no pid")?;

    let (mut server, info) = spawn_server(vnc).await?;
    let server_pid = server.id().context("the daemon's process has no pid")?;
    let panel = Panel::from_json(&info)?;
    let fast = Vm::from_json(&info["fast"])?;
    let mut latency = json!({});
    if scope == Scope::All {
        eprintln!("bench: latency");
        latency["relay"] = round_trips(panel.open_relay(&fast).await?).await?;
        latency["direct"] = round_trips(panel.open_direct(&fast).await?).await?;
        latency["websockify"] = round_trips(client::open_websockify(websockify).await?).await?;
        latency["tcp"] = round_trips(client::open_tcp(vnc).await?).await?;
    }
    eprintln!("bench: throughput");
    let (mut down, mut up, mut down_cpu, mut up_cpu) = (json!({}), json!({}), json!({}), json!({}));
    let (rate, cpu) = costed(server_pid, async {
        stream_down(panel.open_relay(&fast).await?).await
    })
    .await?;
    (down["relay"], down_cpu["relay"]) = (json!(rate), json!(cpu));
    let (rate, cpu) = costed(server_pid, async {
        stream_down(panel.open_direct(&fast).await?).await
    })
    .await?;
    (down["direct"], down_cpu["direct"]) = (json!(rate), json!(cpu));
    let (rate, cpu) = costed(websockify_pid, async {
        stream_down(client::open_websockify(websockify).await?).await
    })
    .await?;
    (down["websockify"], down_cpu["websockify"]) = (json!(rate), json!(cpu));
    let (rate, cpu) = costed(server_pid, async {
        stream_up(panel.open_relay(&fast).await?).await
    })
    .await?;
    (up["relay"], up_cpu["relay"]) = (json!(rate), json!(cpu));
    let (rate, cpu) = costed(server_pid, async {
        stream_up(panel.open_direct(&fast).await?).await
    })
    .await?;
    (up["direct"], up_cpu["direct"]) = (json!(rate), json!(cpu));
    let (rate, cpu) = costed(websockify_pid, async {
        stream_up(client::open_websockify(websockify).await?).await
    })
    .await?;
    (up["websockify"], up_cpu["websockify"]) = (json!(rate), json!(cpu));
    if scope == Scope::Throughput {
        stop_server(&mut server).await;
        return Ok(json!({
            "throughput_down_mb_s": down,
            "throughput_up_mb_s": up,
            "cpu_s_per_gb_down": down_cpu,
            "cpu_s_per_gb_up": up_cpu,
        }));
    }
    eprintln!("bench: first framebuffer byte");
    let mut first = json!({});
    first["relay"] = first_bytes(|| panel.open_relay(&fast)).await?;
    first["direct"] = first_bytes(|| panel.open_direct(&fast)).await?;
    first["websockify"] = first_bytes(|| client::open_websockify(websockify)).await?;
    stop_server(&mut server).await;

    eprintln!("bench: idle sessions through the relay");
    let relay_idle = idle(vnc, true).await?;
    eprintln!("bench: idle sessions straight to the simulated node");
    let direct_idle = idle(vnc, false).await?;
    Ok(json!({
        "fd_limit": fd_limit,
        "latency_us": latency,
        "throughput_down_mb_s": down,
        "throughput_up_mb_s": up,
        "cpu_s_per_gb_down": down_cpu,
        "cpu_s_per_gb_up": up_cpu,
        "first_byte_ms": first,
        "idle_relay": relay_idle,
        "idle_direct": direct_idle,
        "websockify_version": websockify_version(websockify_bin).await,
    }))
}

/// Small frames: a 10-byte update request for one pixel, a 20-byte update back.
async fn round_trips(mut link: Link) -> anyhow::Result<Value> {
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_WARM_UP + LATENCY_SAMPLES {
        let start = Instant::now();
        link.request(false, 1, 1).await?;
        link.read_update().await?;
        if i >= LATENCY_WARM_UP {
            samples.push(start.elapsed());
        }
    }
    link.close().await;
    Ok(percentiles(&mut samples, 1e6))
}

/// VM → browser: 64 KiB framebuffer updates, `WINDOW` requests in flight. MB/s (10^6 bytes), and
/// the bytes moved including the warm-up.
async fn stream_down(mut link: Link) -> anyhow::Result<(f64, usize)> {
    let update = usize::from(TILE) * usize::from(TILE) * 4;
    let (warm, total) = (THROUGHPUT_WARM_UP / update, THROUGHPUT_BYTES / update);
    for _ in 0..WINDOW {
        link.request(false, TILE, TILE).await?;
    }
    let mut start = Instant::now();
    let mut bytes = 0;
    for i in 0..warm + total {
        if i == warm {
            start = Instant::now();
            bytes = 0;
        }
        bytes += link.read_update().await?;
        if i + WINDOW < warm + total {
            link.request(false, TILE, TILE).await?;
        }
    }
    let rate = bytes as f64 / start.elapsed().as_secs_f64() / 1e6;
    link.close().await;
    Ok((rate, (warm + total) * update))
}

/// Browser → VM: 64 KiB frames of ClientCutText, then one small update request whose answer
/// proves the VNC server has read everything before it. MB/s (10^6 bytes), and the bytes moved
/// including the warm-up.
async fn stream_up(mut link: Link) -> anyhow::Result<(f64, usize)> {
    let mut message = vec![6u8, 0, 0, 0];
    message.extend_from_slice(&((UP_FRAME - 8) as u32).to_be_bytes());
    message.resize(UP_FRAME, b'x');
    let message = Bytes::from(message);
    for _ in 0..THROUGHPUT_WARM_UP / UP_FRAME {
        link.send(message.clone()).await?;
    }
    link.request(false, 1, 1).await?;
    link.read_update().await?;
    let start = Instant::now();
    for _ in 0..THROUGHPUT_BYTES / UP_FRAME {
        link.send(message.clone()).await?;
    }
    link.request(false, 1, 1).await?;
    link.read_update().await?;
    let rate = THROUGHPUT_BYTES as f64 / start.elapsed().as_secs_f64() / 1e6;
    link.close().await;
    let warm = THROUGHPUT_WARM_UP / UP_FRAME * UP_FRAME;
    Ok((rate, warm + THROUGHPUT_BYTES / UP_FRAME * UP_FRAME))
}

/// Runs one throughput measurement and returns its rate with the CPU seconds per GB (10^9 bytes)
/// that process `pid` spent on it. On a shared machine the rate depends on what else runs; the
/// CPU per byte much less so, and it separates the daemon's work from the node's.
async fn costed<F>(pid: u32, run: F) -> anyhow::Result<(f64, f64)>
where
    F: Future<Output = anyhow::Result<(f64, usize)>>,
{
    let before = cpu_seconds(pid)?;
    let (rate, bytes) = run.await?;
    // websockify forks per connection; its child's time counts once it has been reaped.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = cpu_seconds(pid)?;
    Ok((rate, (after - before) / (bytes as f64 / 1e9)))
}

/// User + system time of a process and of its children it has reaped, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat
        .rsplit_once(')')
        .context("no command in /proc/PID/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14-17 of stat(5), 12-15 after the name and state.
    let ticks: u64 = fields
        .get(11..15)
        .context("short /proc/PID/stat")?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    // /proc reports clock ticks of USER_HZ, which is 100 on every Linux architecture we run on.
    Ok(ticks as f64 / 100.0)
}

/// From asking for the console (a token, or `vncproxy`) to the first byte of the first
/// framebuffer update, one session after another.
async fn first_bytes<F, Fut>(open: F) -> anyhow::Result<Value>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<Link>>,
{
    let mut samples = Vec::new();
    for i in 0..FIRST_BYTE_SAMPLES + 5 {
        let start = Instant::now();
        let mut link = open().await?;
        link.request(false, TILE, TILE).await?;
        link.wait_for_data().await?;
        if i >= 5 {
            samples.push(start.elapsed());
        }
        link.read_update().await?;
        link.close().await;
    }
    Ok(percentiles(&mut samples, 1e3))
}

/// Opens idle sessions in a fresh child (through the relay, or straight to the simulated node)
/// and reads the child's RSS at each step. An idle session has done its handshake and waits
/// with an incremental update request pending, as noVNC does on a screen that does not change.
async fn idle(vnc: SocketAddr, relay: bool) -> anyhow::Result<Value> {
    let (mut server, info) = spawn_server(vnc).await?;
    let pid = server.id().context("the child has no pid")?;
    let panel = Panel::from_json(&info)?;
    let vms: Vec<Vm> = info["idle"]
        .as_array()
        .context("no idle VMs")?
        .iter()
        .map(Vm::from_json)
        .collect::<anyhow::Result<_>>()?;
    let mut open = Vec::new();
    let mut errors = Vec::new();
    let mut steps = Vec::new();
    let mut baseline = 0;
    for target in std::iter::once(IDLE_WARM_UP).chain(IDLE_STEPS) {
        let from = open.len() + errors.len();
        let opened: Vec<anyhow::Result<Link>> = futures_util::stream::iter(from..target)
            .map(|i| {
                let (panel, vm) = (&panel, &vms[i % vms.len()]);
                async move {
                    let mut link = if relay {
                        panel.open_relay(vm).await?
                    } else {
                        panel.open_direct(vm).await?
                    };
                    link.request(true, 800, 600).await?;
                    Ok(link)
                }
            })
            .buffer_unordered(OPEN_PARALLEL)
            .collect()
            .await;
        for result in opened {
            match result {
                Ok(link) => open.push(link),
                Err(err) => errors.push(format!("{err:#}")),
            }
        }
        // Lets the child finish the sessions' last writes before its memory is read.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = rss_kib(pid)?;
        if target == IDLE_WARM_UP {
            baseline = rss;
            continue;
        }
        let added = (open.len() - IDLE_WARM_UP.min(open.len())).max(1);
        steps.push(json!({
            "sessions": target,
            "open": open.len(),
            "errors": errors.len(),
            "rss_kib": rss,
            "kib_per_session": (rss.saturating_sub(baseline)) as f64 / added as f64,
        }));
        eprintln!(
            "bench: {} sessions open, {} errors, RSS {rss} KiB",
            open.len(),
            errors.len()
        );
    }
    errors.truncate(5);
    for link in open {
        drop(link);
    }
    stop_server(&mut server).await;
    Ok(json!({ "baseline_rss_kib": baseline, "steps": steps, "first_errors": errors }))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

fn percentiles(samples: &mut [Duration], scale: f64) -> Value {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples
            .get(index)
            .map_or(f64::NAN, |d| d.as_secs_f64() * scale)
    };
    json!({ "p50": at(0.50), "p99": at(0.99) })
}

/// The simulator and the daemon in a child process of this same program.
async fn spawn_server(vnc: SocketAddr) -> anyhow::Result<(Child, Value)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", &vnc.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("while starting the daemon's process")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .context("the daemon's process did not start within 120 s")??
        .context("the daemon's process exited before it was ready")?;
    Ok((child, serde_json::from_str(&line)?))
}

async fn stop_server(child: &mut Child) {
    drop(child.stdin.take());
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Runs websockify on a free port in front of the VNC server; the process dies with the handle.
async fn start_websockify(bin: &str, vnc: SocketAddr) -> anyhow::Result<(Child, SocketAddr)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(bin)
        .args([addr.to_string(), vnc.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("while starting {bin}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("websockify did not listen on {addr} within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, addr))
}

async fn websockify_version(bin: &str) -> String {
    let python = std::path::Path::new(bin).with_file_name("python");
    let output = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('websockify'))",
        ])
        .output()
        .await;
    output
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
