//! Places 200 orders at once and waits until every service is `active`, on four setups in
//! turn: one daemon on SQLite, one on PostgreSQL, three on one PostgreSQL database, and, as a
//! control, one daemon on SQLite with as many job workers as the three have together. Each
//! setup gets a fresh simulator with its default task delays (a task 300 ms, a full clone
//! 1.5 s) and the bundled plugins (cloud-init, tunnel and DNS on the simulator's Cloudflare).
//! Prints one JSON object; `cargo xtask bench orders` turns it into a section of
//! docs/benchmarks.md.
//!
//! The daemons, the simulator and this program's HTTP client share this process; the plugin
//! runners are its children and PostgreSQL runs beside it. CPU time is read from `/proc` for
//! this process with its children and for the PostgreSQL server with its backends.
//!
//! usage: porthole-bench-orders PLUGINS-DIR

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use porthole::daemon::Daemon;
use porthole::demo::{Demo, DemoSetup};
use porthole_pg_fixture::TempPostgres;
use porthole_sim::SimConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const ORDERS: usize = 200;
/// Pause between two sweeps over the services not yet active; each sweep asks one at a time.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The plan `small` as the benchmark sets it.
const PLAN_CORES: u32 = 1;
const PLAN_MEMORY_MIB: u64 = 128;
const PLAN_DISK_GIB: u64 = 20;
const DEADLINE: Duration = Duration::from_secs(900);

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

/// One arrangement of daemons and database.
struct Setup {
    name: &'static str,
    postgres: bool,
    daemons: usize,
    workers: usize,
}

const SETUPS: [Setup; 4] = [
    Setup {
        name: "1 daemon, SQLite",
        postgres: false,
        daemons: 1,
        workers: WORKERS,
    },
    Setup {
        name: "1 daemon, PostgreSQL",
        postgres: true,
        daemons: 1,
        workers: WORKERS,
    },
    Setup {
        name: "3 daemons, one PostgreSQL",
        postgres: true,
        daemons: 3,
        workers: WORKERS,
    },
    Setup {
        name: "control: 1 daemon, SQLite, 3× the workers",
        postgres: false,
        daemons: 1,
        workers: 3 * WORKERS,
    },
];

/// Job workers per daemon: the default, as a fresh installation runs.
const WORKERS: usize = 4;

/// The simulator's own defaults: what a small Proxmox node takes for a task and a full clone.
fn realistic_sim() -> SimConfig {
    SimConfig {
        auth_failure_delay: Duration::from_millis(10),
        ..SimConfig::default()
    }
}

async fn measure(plugins: PathBuf) -> anyhow::Result<Value> {
    let postgres = tokio::task::spawn_blocking(TempPostgres::start)
        .await?
        .context("while starting PostgreSQL")?;
    let mut runs = Vec::new();
    for (n, setup) in SETUPS.iter().enumerate() {
        eprintln!("bench-orders: {}", setup.name);
        let database = match setup.postgres {
            true => Some(postgres.create_database(&format!("bench{n}"))?),
            false => None,
        };
        let run = run(setup, &plugins, database.as_deref(), &postgres)
            .await
            .with_context(|| format!("setup {:?}", setup.name))?;
        runs.push(run);
    }
    let sim = realistic_sim();
    Ok(json!({
        "orders": ORDERS,
        "tokio_workers": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "task_ms": sim.task_duration.as_millis() as u64,
        "clone_ms": sim.clone_duration.as_millis() as u64,
        "plan": { "cores": PLAN_CORES, "memory_mib": PLAN_MEMORY_MIB, "disk_gib": PLAN_DISK_GIB },
        "poll_interval_ms": POLL_INTERVAL.as_millis() as u64,
        "runs": runs,
    }))
}

/// One setup: the demo (simulator, first daemon, accounts), the other daemons on its
/// configuration, the orders spread over them.
async fn run(
    setup: &Setup,
    plugins: &Path,
    database: Option<&str>,
    postgres: &TempPostgres,
) -> anyhow::Result<Value> {
    // Top-level keys first: after a table header they would belong to the table.
    let mut extra = String::new();
    if let Some(url) = database {
        extra.push_str(&format!("database = \"{url}\"\n"));
    }
    extra.push_str(&format!("[lifecycle]\nworkers = {}\n", setup.workers));
    let demo = Demo::start_with(DemoSetup {
        listen: "127.0.0.1:0".parse()?,
        data_dir: None,
        sim: realistic_sim(),
        extra_config: extra,
        plugins_dir: Some(plugins.to_owned()),
        // This program, which serves as the runner too (see `main`).
        plugin_runner: None,
    })
    .await
    .context("while starting the simulator and the first daemon")?;
    let mut others = Vec::new();
    let mut urls = vec![demo.credentials().url.clone()];
    for n in 1..setup.daemons {
        let mut config = porthole::config::load(demo.config_path())
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        config.listen = listener.local_addr()?;
        config.state_dir = config.state_dir.join(format!("daemon-{n}"));
        urls.push(format!("http://{}", config.listen));
        others.push(Daemon::start_on(config, listener).await?);
    }
    let server = setup.postgres.then(|| postgres.server_pid()).transpose()?;
    let result = orders(&demo, &urls, server).await;
    for daemon in others {
        daemon.stop().await?;
    }
    demo.stop().await?;
    let mut report = result?;
    report["setup"] = json!(setup.name);
    report["daemons"] = json!(setup.daemons);
    report["workers_per_daemon"] = json!(setup.workers);
    Ok(report)
}

/// Places the orders round-robin over `urls` and polls the services the same way until each is
/// `active`; `postgres` is the server's pid when the daemons use it.
async fn orders(demo: &Demo, urls: &[String], postgres: Option<u32>) -> anyhow::Result<Value> {
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
    let url = &urls[0];

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

    let cpu_before = (tree_cpu(std::process::id())?, server_cpu(postgres)?);
    let started = Instant::now();
    let placed = futures_util::future::join_all((0..ORDERS).map(|n| {
        let (client, url, admin) = (client.clone(), urls[n % urls.len()].clone(), admin.clone());
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
            let url = &urls[polls % urls.len()];
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
    let process = tree_cpu(std::process::id())? - cpu_before.0;
    let server = server_cpu(postgres)? - cpu_before.1;
    let per_order = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / ORDERS as f64;

    Ok(json!({
        "accept_all_s": accepted.as_secs_f64(),
        "wall_s": wall.as_secs_f64(),
        "orders_per_minute": ORDERS as f64 / wall.as_secs_f64() * 60.0,
        "cpu_ms_per_order": per_order(process),
        "postgres_cpu_ms_per_order": per_order(server),
        "status_polls": polls,
    }))
}

/// CPU time of the PostgreSQL server with its backends, or none without one.
fn server_cpu(server: Option<u32>) -> anyhow::Result<Duration> {
    server.map_or(Ok(Duration::ZERO), tree_cpu)
}

/// User plus system CPU time of process `root` (all threads) and its descendants, those still
/// running and those it has reaped.
fn tree_cpu(root: u32) -> anyhow::Result<Duration> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A process may end between the listing and the read.
        if let Some(stat) = stat(pid) {
            processes.push((pid, stat));
        }
    }
    let mut tree = vec![root];
    let mut ticks = 0;
    while let Some(pid) = tree.pop() {
        for (child, stat) in &processes {
            if *child == pid {
                ticks += stat.ticks;
            } else if stat.parent == pid {
                tree.push(*child);
            }
        }
    }
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second <= 0 {
        bail!("the clock tick rate is unknown");
    }
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

struct Stat {
    parent: u32,
    /// utime + stime + cutime + cstime.
    ticks: u64,
}

/// `/proc/<pid>/stat`'s parent and CPU times; the fields after the command, which is in
/// parentheses and may hold spaces.
fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    // Field 3 of the man page is fields[0] here: state, ppid, …, utime is field 14.
    let number = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        parent: u32::try_from(number(4)?).ok()?,
        ticks: number(14)? + number(15)? + number(16)? + number(17)?,
    })
}
