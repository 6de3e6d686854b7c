//! `cargo xtask bench orders`: builds the first-party plugins and the measuring program
//! `xtask/bench-orders` (release), runs it (200 concurrent orders on one daemon with SQLite, one
//! with PostgreSQL, three on one PostgreSQL database, and a control), and appends the numbers
//! with the machine and date to docs/benchmarks.md.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bench::{append, machine, today};

const HEADING: &str = "## Lifecycle: 200 concurrent orders, one daemon or three";

pub fn run(root: &Path) -> anyhow::Result<()> {
    crate::plugins::build(root)?;
    let plugins = crate::plugins::component_path(root, "cloudinit-basic");
    let plugins = plugins
        .parent()
        .context("the plugin component has no directory")?;
    eprintln!("xtask: building and running the orders benchmark");
    let output = Command::new("cargo")
        .args([
            "run",
            "--locked",
            "--release",
            "--quiet",
            "--manifest-path",
            "xtask/bench-orders/Cargo.toml",
            // Shared with the other benchmarks: the daemon's release build is done once.
            "--target-dir",
            "xtask/bench-plugins/target",
            "--",
        ])
        .arg(plugins)
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("while starting the orders benchmark")?;
    if !output.status.success() {
        bail!("the orders benchmark failed ({})", output.status);
    }
    let report: Value = serde_json::from_slice(&output.stdout)
        .context("the orders benchmark printed no JSON report")?;
    let file = root.join("docs/benchmarks.md");
    let existing = std::fs::read_to_string(&file).unwrap_or_default();
    let mut section = String::new();
    if !existing.lines().any(|line| line == HEADING) {
        section.push_str(&method(&report));
    }
    section.push_str(&results(&report, &machine(), &today()));
    println!("{section}");
    append(&file, &section)
}

fn number(report: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(report, |value, key| &value[*key])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// The heading and how the numbers are taken, written once.
fn method(report: &Value) -> String {
    let n = |path: &[&str]| number(report, path);
    format!(
        "\n{HEADING}\n\n\
         `cargo xtask bench orders` runs {orders} orders at once on four setups in turn, each with \
         a fresh Proxmox simulator at its default task delays (every task {task} ms, a full \
         clone {clone} ms: a small node cloning a cloud image) and the bundled plugins \
         (cloud-init delivered as snippets, tunnel and DNS on the simulator's Cloudflare): one \
         daemon on SQLite; one on PostgreSQL; three on one PostgreSQL database; and a control, \
         one daemon on SQLite with as many job workers as the three have together. PostgreSQL \
         from Debian's packages runs on the same machine. The benchmark raises alice's quota, shrinks \
         the plan `small` to {cores} core / {memory} MiB / {disk} GiB so that 200 VMs fit the \
         simulator's nodes, posts the orders at once as admin (one `Idempotency-Key` each), \
         round-robin over the daemons as a load balancer would, and polls each service not yet \
         `active` one request at a time, sweeps {poll} ms apart, round-robin too; a service that \
         ends `failed` fails the run.\n\n\
         Orders per minute: {orders} over the wall time from the first post to the last service \
         `active`. CPU per order: user + system time, read from `/proc`, over the same span, \
         divided by {orders}; once for the benchmark's process (the daemons, the simulator, the \
         HTTP client) with its children (the plugin runners), an upper bound for the daemons, \
         and once for the PostgreSQL server with its backends.\n",
        orders = n(&["orders"]),
        task = n(&["task_ms"]),
        clone = n(&["clone_ms"]),
        cores = n(&["plan", "cores"]),
        memory = n(&["plan", "memory_mib"]),
        disk = n(&["plan", "disk_gib"]),
        poll = n(&["poll_interval_ms"]),
    )
}

fn results(report: &Value, machine: &str, date: &str) -> String {
    let n = |path: &[&str]| number(report, path);
    let runs = report["runs"].as_array().cloned().unwrap_or_default();
    let baseline = runs
        .first()
        .map_or(f64::NAN, |run| number(run, &["wall_s"]));
    let mut table = format!(
        "\n### Lifecycle: {orders} concurrent orders, one daemon or three, {date}\n\n\
         Machine: {machine}. {tokio} tokio workers. Simulator: task {task} ms, full clone {clone} \
         ms.\n\n\
         | setup | job workers | all accepted | last active | orders per minute | speed-up vs 1 × SQLite | CPU per order, process + runners | CPU per order, PostgreSQL |\n\
         |---|---|---|---|---|---|---|---|\n",
        orders = n(&["orders"]),
        tokio = n(&["tokio_workers"]),
        task = n(&["task_ms"]),
        clone = n(&["clone_ms"]),
    );
    for run in &runs {
        let r = |key: &str| number(run, &[key]);
        table.push_str(&format!(
            "| {setup} | {daemons} × {workers} | {accept:.2} s | {wall:.1} s | {per_minute:.0} | {speedup:.2}× | {cpu:.1} ms | {pg:.1} ms |\n",
            setup = run["setup"].as_str().unwrap_or("?"),
            daemons = r("daemons"),
            workers = r("workers_per_daemon"),
            accept = r("accept_all_s"),
            wall = r("wall_s"),
            per_minute = r("orders_per_minute"),
            speedup = baseline / r("wall_s"),
            cpu = r("cpu_ms_per_order"),
            pg = r("postgres_cpu_ms_per_order"),
        ));
    }
    table
}
