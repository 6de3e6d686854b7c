//! Measures a cloud-init render through the plugin runtime (fresh instance per call), in the
//! daemon's process and through a plugin runner, against the same template logic compiled
//! natively; and the same DNS upsert through each language's DNS provider template, its HTTP
//! answered by a server on loopback. Prints one JSON object; `cargo xtask bench plugins`
//! turns it into rows of docs/benchmarks.md.
//!
//! usage: porthole-bench-plugins COMPONENT.wasm [LANGUAGE=DNS-COMPONENT.wasm…]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use porthole_plugin_host::isolation::{Isolation, RunnerCommand};
use porthole_plugin_host::{
    DnsRecord, PlanSize, PluginLimits, PluginRuntime, PluginSpec, PluginWorld, RecordKind,
    RenderContext, RuntimeOptions, Secret,
};
use sha2::Digest;

const WARM_UP: usize = 500;
const SAMPLES: usize = 10_000;
const THROUGHPUT_CALLS: usize = 20_000;
const WORKERS: usize = 2;
/// Upserts measured per language: a JavaScript or Python call takes milliseconds.
const DNS_WARM_UP: usize = 20;
const DNS_SAMPLES: usize = 300;

fn context() -> RenderContext {
    RenderContext {
        hostname: "vm42".into(),
        fqdn: "vm42.lab.example.com".into(),
        username: "alice".into(),
        ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB alice@laptop".into()],
        password_hash: Some(
            "$6$rounds=5000$porthole$0Xq1y0e5i8Y1bDkq3cZb9vG2h7s5Qw1Lr4nT6uV8wX0yZ2aB4cD6eF8gH0iJ2kL4mN6oP8qR0sT2uV4wX6yZ8a".into(),
        ),
        tunnel_token: Some("eyJhIjoiYWNjb3VudCJ9".into()),
        plan: PlanSize {
            cores: 2,
            memory_mib: 2048,
            disk_gib: 20,
        },
        os: "debian-12".into(),
        extra: vec![("packages".into(), "htop,git".into())],
    }
}

fn native_context() -> cloudinit_basic::Context {
    let c = context();
    cloudinit_basic::Context {
        hostname: c.hostname,
        fqdn: c.fqdn,
        username: c.username,
        ssh_keys: c.ssh_keys,
        password_hash: c.password_hash,
        tunnel_token: c.tunnel_token,
        os: c.os,
        extra: c.extra,
    }
}

fn percentiles(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    serde_json::json!({
        "p50_us": at(0.50).as_secs_f64() * 1e6,
        "p99_us": at(0.99).as_secs_f64() * 1e6,
        "samples": samples.len(),
    })
}

async fn timed<F: Future<Output = ()>>(mut f: impl FnMut() -> F, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f().await;
        samples.push(start.elapsed());
    }
    samples
}

/// Renders through `plugins`, one at a time after a warm-up: the samples.
async fn renders(plugins: &PluginRuntime) -> Vec<Duration> {
    let template = plugins.cloud_init_template("cloudinit-basic");
    let ctx = context();
    timed(|| async { drop(template.render(&ctx).await) }, WARM_UP).await;
    timed(|| async { drop(template.render(&ctx).await) }, SAMPLES).await
}

fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The runtime starts its plugin runners by running this program again.
    if let [command, address_space] = &args[..]
        && command == "plugin-runner"
    {
        let address_space = address_space.parse()?;
        return Ok(porthole_plugin_host::isolation::runner::main(address_space));
    }
    if args.first().map(String::as_str) == Some("echo") {
        return Ok(echo()?);
    }
    let wasm = PathBuf::from(
        args.first()
            .ok_or("usage: porthole-bench-plugins COMPONENT.wasm")?,
    );
    let bytes = std::fs::read(&wasm)?;
    let plugin = PluginSpec {
        name: "cloudinit-basic".into(),
        world: PluginWorld::CloudInitTemplate,
        path: wasm,
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        allowed_hosts: Vec::new(),
        allowed_addresses: Vec::new(),
        ca_file: None,
        limits: PluginLimits::default(),
        settings: BTreeMap::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let plugins = PluginRuntime::new(RuntimeOptions::default())?;
        plugins.load_all(std::slice::from_ref(&plugin)).await;
        let template = plugins.cloud_init_template("cloudinit-basic");
        let ctx = context();
        template.render(&ctx).await?;

        let render = renders(&plugins).await;
        let instantiate = timed(
            || async { drop(plugins.instantiate_only("cloudinit-basic").await) },
            SAMPLES,
        )
        .await;

        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..WORKERS {
            let template = template.clone();
            let ctx = ctx.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..THROUGHPUT_CALLS / WORKERS {
                    drop(template.render(&ctx).await);
                }
            }));
        }
        for task in tasks {
            task.await?;
        }
        let calls_per_s = THROUGHPUT_CALLS as f64 / start.elapsed().as_secs_f64();

        let native_ctx = native_context();
        let native: Vec<Duration> = (0..SAMPLES)
            .map(|_| {
                let start = Instant::now();
                let rendered = cloudinit_basic::render(std::hint::black_box(&native_ctx));
                std::hint::black_box(rendered.is_ok());
                start.elapsed()
            })
            .collect();

        // What the facade's checks of untrusted output (YAML parse, header, sizes) cost alone.
        let doc = template.render(&ctx).await?;
        let validation: Vec<Duration> = (0..SAMPLES)
            .map(|_| {
                let start = Instant::now();
                let checked = porthole_plugin_host::validate::rendered(std::hint::black_box(&doc));
                std::hint::black_box(checked.is_ok());
                start.elapsed()
            })
            .collect();

        // The same renders with the plugin in a runner process, measured in the same run.
        let isolated = PluginRuntime::new(RuntimeOptions {
            isolation: Isolation::Process(RunnerCommand {
                program: std::env::current_exe()?,
                args: vec!["plugin-runner".into()],
            }),
            ..RuntimeOptions::default()
        })?;
        isolated.load_all(std::slice::from_ref(&plugin)).await;
        let through_runner = renders(&isolated).await;
        let runner_rss_kib = isolated.status()[0]
            .runner
            .as_ref()
            .and_then(|runner| runner.rss_kib);

        let mut dns = serde_json::Map::new();
        for (language, component) in dns_components(&args[1..])? {
            dns.insert(language, upserts(&component).await?);
        }

        let report = serde_json::json!({
            "dns_upsert": dns,
            "process_round_trip": percentiles(round_trips()?),
            "render_through_runner": percentiles(through_runner),
            "runner_rss_kib": runner_rss_kib,
            "validation_only": percentiles(validation),
            "component_bytes": bytes.len(),
            "render_fresh_instance": percentiles(render),
            "instantiate_only": percentiles(instantiate),
            "render_calls_per_s": calls_per_s,
            "workers": WORKERS,
            "native_render": percentiles(native),
        });
        println!("{report}");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// `LANGUAGE=PATH` arguments.
fn dns_components(args: &[String]) -> Result<Vec<(String, PathBuf)>, Box<dyn std::error::Error>> {
    args.iter()
        .map(|arg| {
            let (language, path) = arg
                .split_once('=')
                .ok_or_else(|| format!("{arg}: expected LANGUAGE=DNS-COMPONENT.wasm"))?;
            Ok((language.to_owned(), PathBuf::from(path)))
        })
        .collect()
}

/// The same upsert through the DNS provider at `wasm`, in a fresh instance per call, against a
/// PowerDNS stand-in on loopback: its size and the call's percentiles.
async fn upserts(wasm: &std::path::Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let api = answer_204s().await?;
    let bytes = std::fs::read(wasm)?;
    let url = format!("http://{api}");
    let plugin = PluginSpec {
        name: "dns".into(),
        world: PluginWorld::DnsProvider,
        path: wasm.to_path_buf(),
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        allowed_hosts: vec![url.parse()?],
        allowed_addresses: vec![api.ip()],
        ca_file: None,
        limits: PluginLimits::default(),
        settings: BTreeMap::from([
            ("api_url".to_owned(), Secret::new(url)),
            ("api_key".to_owned(), Secret::new("bench".to_owned())),
        ]),
    };
    let plugins = PluginRuntime::new(RuntimeOptions::default())?;
    plugins.load_all(std::slice::from_ref(&plugin)).await;
    let dns = plugins.dns_provider("dns");
    let record = DnsRecord {
        name: "vm42.lab.example.com".into(),
        kind: RecordKind::A,
        content: "192.0.2.42".into(),
        ttl: 300,
        proxied: false,
    };
    // Every call must succeed: a failing one would be timed as fast.
    let upsert = || async {
        if let Err(err) = dns.upsert_record("lab.example.com", &record).await {
            panic!("{}: the upsert failed: {err}", wasm.display());
        }
    };
    timed(upsert, DNS_WARM_UP).await;
    let mut report = percentiles(timed(upsert, DNS_SAMPLES).await);
    report["component_bytes"] = bytes.len().into();
    Ok(report)
}

/// An HTTP server on loopback that answers every request `204 No Content`, as PowerDNS answers
/// a PATCH, and keeps the connection until the client closes it.
async fn answer_204s() -> std::io::Result<std::net::SocketAddr> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Headers, then as much body as Content-Length says.
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                if socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.is_ok() {
                    // Until the client closes: closing first would cut its connection short.
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Echoes what arrives on standard input (a socket) back on it: the far end of [`round_trips`].
fn echo() -> std::io::Result<std::process::ExitCode> {
    use std::io::{Read, Write};
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut buffer = [0u8; 64];
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            return Ok(std::process::ExitCode::SUCCESS);
        }
        output.write_all(&buffer[..n])?;
        output.flush()?;
    }
}

/// The floor a runner's call stands on: 64 bytes to another process over a socket pair and back,
/// blocking on both ends.
fn round_trips() -> std::io::Result<Vec<Duration>> {
    use std::io::{Read, Write};
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("echo")
        .stdin(std::os::fd::OwnedFd::from(theirs.try_clone()?))
        .stdout(std::os::fd::OwnedFd::from(theirs))
        .spawn()?;
    let mut buffer = [7u8; 64];
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..WARM_UP + SAMPLES {
        let start = Instant::now();
        ours.write_all(&buffer)?;
        ours.read_exact(&mut buffer)?;
        samples.push(start.elapsed());
    }
    drop(ours);
    child.wait()?;
    Ok(samples.split_off(WARM_UP))
}
