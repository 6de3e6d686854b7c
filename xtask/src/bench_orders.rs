//! `cargo xtask bench orders`: builds the first-party plugins and the measuring program
//! `xtask/bench-orders` (release), runs it (200 concurrent orders against the simulator with task
//! delays zero), and appends the numbers with the machine and date to docs/benchmarks.md.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bench::{append, machine, today};

const HEADING: &str = "## Lifecycle: 200 concurrent orders";

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
         `cargo xtask bench orders` starts the demo in one process: the Proxmox simulator with task \
         and clone durations zero, and the daemon with the bundled plugins (cloud-init, tunnel and \
         DNS on the simulator's Cloudflare, cloud-init delivered as snippets). It raises alice's \
         quota, shrinks the plan `small` to {cores} core / {memory} MiB / {disk} GiB (the \
         simulator's nodes have 64 GiB and the `debian-12` template is on one node: at 2 GiB only \
         some 30 VMs would fit), then posts {orders} orders at once as admin (plan `small`, \
         template `debian-12`, one `Idempotency-Key` each) and polls each service not yet \
         `active` one request at a time, sweeps {poll} ms apart; any service that ends `failed` \
         fails the run. The job engine runs with its default {workers} workers (the demo's \
         `[lifecycle]` table already holds the plugin settings, so the benchmark cannot add to \
         it).\n\n\
         Orders per minute: {orders} over the wall time from the first post to the last service \
         `active`. CPU per order: user + system time of the process (getrusage) over the same \
         span, divided by {orders}. The simulator, the plugins' Wasm and the benchmark's HTTP \
         client (posts and status polls) share the process, so this is an upper bound for the \
         daemon.\n",
        cores = n(&["plan", "cores"]),
        memory = n(&["plan", "memory_mib"]),
        disk = n(&["plan", "disk_gib"]),
        orders = n(&["orders"]),
        poll = n(&["poll_interval_ms"]),
        workers = n(&["lifecycle_workers"]),
    )
}

fn results(report: &Value, machine: &str, date: &str) -> String {
    let n = |path: &[&str]| number(report, path);
    format!(
        "\n### Lifecycle: 200 concurrent orders, {date}\n\n\
         Machine: {machine}. {tokio} tokio workers, {workers} job workers.\n\n\
         | measure | value |\n|---|---|\n\
         | orders placed and accepted (all {orders} answered) | {accept:.2} s |\n\
         | first order → last service `active` | {wall:.2} s |\n\
         | orders per minute | {per_minute:.0} |\n\
         | process CPU (user + system), whole run | {cpu:.2} s |\n\
         | process CPU per order (upper bound for the daemon) | {cpu_per:.1} ms |\n\
         | status polls during the run | {polls} |\n",
        tokio = n(&["tokio_workers"]),
        workers = n(&["lifecycle_workers"]),
        orders = n(&["orders"]),
        accept = n(&["accept_all_s"]),
        wall = n(&["wall_s"]),
        per_minute = n(&["orders_per_minute"]),
        cpu = n(&["cpu_s"]),
        cpu_per = n(&["cpu_ms_per_order"]),
        polls = n(&["status_polls"]),
    )
}
