//! Places 200 orders at once against the demo (daemon + Proxmox simulator, task delays zero,
//! bundled plugins: cloud-init, tunnel and DNS on the simulator's Cloudflare) and waits until every
//! service is `active`. Prints one JSON object; `cargo xtask bench orders` turns it into a section
//! of docs/benchmarks.md.
//!
//! The daemon and the simulator run in this process, so the CPU time measured (getrusage,
//! RUSAGE_SELF) covers both, plus this program's HTTP client: an upper bound for the daemon.
//!
//! usage: porthole-bench-orders PLUGINS-DIR

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use porthole::config::LifecycleConfig;
use porthole::demo::{Demo, DemoSetup};
use porthole_sim::SimConfig;
use serde_json::{Value, json};

const ORDERS: usize = 200;
/// Pause between two sweeps over the services not yet active; each sweep asks one at a time.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The plan `small` as the benchmark sets it.
const PLAN_CORES: u32 = 1;
const PLAN_MEMORY_MIB: u64 = 128;
const PLAN_DISK_GIB: u64 = 20;
const DEADLINE: Duration = Duration::from_secs(600);

fn main() -> anyhow::Result<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The daemon starts its plugin runners by running this program again.
    if let [command, address_space] = &args[..]
        && command == "plugin-runner"
    {
        let address_space = address_space.parse().context("the runner's address space")?;
        return Ok(porthole::plugins::isolation::runner::main(address_space));
    }
    tokio::runtime::Runtime::new()?.block_on(bench(args))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn bench(args: Vec<String>) -> anyhow::Result<()> {
    let [plugins] = &args[..] else {
        bail!("usage: porthole-bench-orders PLUGINS-DIR");
    };
    // The generated configuration names the components by path, relative to its own directory.
    let plugins =
        std::fs::canonicalize(plugins).with_context(|| format!("while resolving {plugins}"))?;
    let report = measure(plugins).await?;
    println!("{report}");
    Ok(())
}

async fn measure(plugins: PathBuf) -> anyhow::Result<Value> {
    let sim = SimConfig {
        task_duration: Duration::ZERO,
        clone_duration: Duration::ZERO,
        auth_failure_delay: Duration::from_millis(10),
        ..SimConfig::default()
    };
    // The job engine runs with its default workers, as a fresh installation would.
    let demo = Demo::start_with(DemoSetup {
        listen: "127.0.0.1:0".parse()?,
        data_dir: None,
        sim,
        extra_config: String::new(),
        plugins_dir: Some(plugins),
        // This program, which serves as the runner too (see `main`).
        plugin_runner: None,
    })
    .await
    .context("while starting the simulator and the daemon")?;
    let result = orders(&demo).await;
    demo.stop().await?;
    result
}

async fn orders(demo: &Demo) -> anyhow::Result<Value> {
    let url = demo.credentials().url.clone();
    let admin = demo
        .account("admin")
        .context("the demo has no admin")?
        .api_token
        .clone();
    let alice = &demo
        .account("alice")
        .context("the demo has no alice")?
        .api_token;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(ORDERS)
        .build()?;

    let whoami: Value = client
        .get(format!("{url}/api/v1/whoami"))
        .bearer_auth(alice)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let customer = whoami["user"]["id"]
        .as_i64()
        .with_context(|| format!("whoami has no user id: {whoami}"))?;
    client
        .put(format!("{url}/api/v1/users/{customer}/quota"))
        .bearer_auth(&admin)
        .json(&json!({
            "max_vms": 1000, "max_cores": 100_000,
            "max_memory_mib": 100_000_000u64, "max_disk_gib": 100_000_000u64
        }))
        .send()
        .await?
        .error_for_status()
        .context("while raising alice's quota")?;

    // The simulator's nodes have 64 GiB and `debian-12` lives on pve1 only: at the demo's 2 GiB
    // the plan fits some 30 VMs there. The benchmark shrinks `small` so that 200 fit.
    client
        .put(format!("{url}/api/v1/plans/small"))
        .bearer_auth(&admin)
        .json(&json!({
            "name": "small", "cores": PLAN_CORES, "memory_mib": PLAN_MEMORY_MIB,
            "disk_gib": PLAN_DISK_GIB, "templates": ["debian-12", "lab"]
        }))
        .send()
        .await?
        .error_for_status()
        .context("while resizing the plan `small`")?;

    let cpu_before = cpu_time()?;
    let started = Instant::now();
    let placed = futures_util::future::join_all((0..ORDERS).map(|n| {
        let (client, url, admin) = (client.clone(), url.clone(), admin.clone());
        tokio::spawn(async move {
            let response = client
                .post(format!("{url}/api/v1/orders"))
                .bearer_auth(&admin)
                .header("idempotency-key", format!("bench-{n}"))
                .json(&json!({
                    "customer": customer, "plan": "small", "template": "debian-12",
                    "hostname": format!("bench-{n}"), "username": "bench"
                }))
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("order {n} answered {status}: {body}");
            }
            body["service_id"]
                .as_i64()
                .with_context(|| format!("order {n}: no service_id in {body}"))
        })
    }))
    .await;
    let accepted = started.elapsed();
    let mut pending = BTreeSet::new();
    for result in placed {
        pending.insert(result??);
    }
    if pending.len() != ORDERS {
        bail!("{} distinct services for {ORDERS} orders", pending.len());
    }

    let mut polls = 0usize;
    while !pending.is_empty() {
        if started.elapsed() > DEADLINE {
            bail!(
                "{} of {ORDERS} services not active after {DEADLINE:?}: {pending:?}",
                pending.len()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        for id in pending.clone() {
            polls += 1;
            let view: Value = client
                .get(format!("{url}/api/v1/services/{id}"))
                .bearer_auth(&admin)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            match view["service"]["state"].as_str() {
                Some("active") => {
                    pending.remove(&id);
                }
                Some("provisioning") => {}
                other => bail!("service {id} ended {other:?}: {view}"),
            }
        }
    }
    let wall = started.elapsed();
    let cpu = cpu_time()? - cpu_before;

    Ok(json!({
        "orders": ORDERS,
        "lifecycle_workers": LifecycleConfig::default().workers,
        "tokio_workers": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "accept_all_s": accepted.as_secs_f64(),
        "wall_s": wall.as_secs_f64(),
        "orders_per_minute": ORDERS as f64 / wall.as_secs_f64() * 60.0,
        "cpu_s": cpu.as_secs_f64(),
        "cpu_ms_per_order": cpu.as_secs_f64() * 1000.0 / ORDERS as f64,
        "plan": { "cores": PLAN_CORES, "memory_mib": PLAN_MEMORY_MIB, "disk_gib": PLAN_DISK_GIB },
        "status_polls": polls,
        "poll_interval_ms": POLL_INTERVAL.as_millis() as u64,
    }))
}

/// User plus system CPU time of this process, all threads.
fn cpu_time() -> anyhow::Result<Duration> {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Err(std::io::Error::last_os_error()).context("getrusage");
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}
