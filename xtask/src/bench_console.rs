//! `cargo xtask bench console`: installs websockify (PyPI, pinned) into a venv under target/ if it
//! is missing, builds the measuring program `xtask/bench-console` (release), runs it, and appends the
//! numbers with the machine and date to docs/benchmarks.md.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::bench::{append, machine, today};

/// The goals from the issue, shown beside each run.
const GOAL_THROUGHPUT_RATIO: f64 = 3.0;
const GOAL_ADDED_P99_US: f64 = 1000.0;
const GOAL_KIB_PER_SESSION: f64 = 64.0;

/// `only_throughput`: the two throughput runs alone, printed as a table and not recorded (a
/// before/after check while working on the relay).
pub fn run(root: &Path, only_throughput: bool) -> anyhow::Result<()> {
    let websockify = crate::venv::tool(root, "bench-console", "websockify")?;
    eprintln!("xtask: building and running the console benchmark (several minutes)");
    let scope: &[&str] = if only_throughput {
        &["--only", "throughput"]
    } else {
        &[]
    };
    let output = Command::new("cargo")
        .args([
            "run",
            "--locked",
            "--release",
            "--quiet",
            "--manifest-path",
            "xtask/bench-console/Cargo.toml",
            // Shared with the plugin benchmark: the daemon's release build is done once.
            "--target-dir",
            "xtask/bench-plugins/target",
            "--",
        ])
        .args(scope)
        .arg(&websockify)
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("while starting the console benchmark")?;
    if !output.status.success() {
        bail!("the console benchmark failed ({})", output.status);
    }
    let report: Value = serde_json::from_slice(&output.stdout)
        .context("the console benchmark printed no JSON report")?;
    if only_throughput {
        println!("{}", throughput_table(&report));
        return Ok(());
    }
    let section = markdown(&report, &machine(), &today());
    println!("{section}");
    append(&root.join("docs/benchmarks.md"), &section)
}

fn number(report: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(report, |value, key| &value[*key])
        .as_f64()
        .unwrap_or(f64::NAN)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

fn markdown(report: &Value, machine: &str, date: &str) -> String {
    let n = |path: &[&str]| number(report, path);
    let mut out = format!(
        "\n### Console relay, {date}\n\n\
         Machine: {machine}. websockify {version} (with numpy). Open-files limit {fds}.\n\n",
        version = report["websockify_version"].as_str().unwrap_or("unknown"),
        fds = n(&["fd_limit"]),
    );
    out.push_str(&throughput_table(report));
    for q in ["p50", "p99"] {
        let (relay, direct, wsk) = (
            n(&["latency_us", "relay", q]),
            n(&["latency_us", "direct", q]),
            n(&["latency_us", "websockify", q]),
        );
        out.push_str(&format!(
            "| round trip, 10-byte request / 20-byte update, {q} (µs) | {relay:.0} | {direct:.0} | {wsk:.0} | {:.2}× |\n",
            relay / wsk
        ));
    }
    for q in ["p50", "p99"] {
        let (relay, direct, wsk) = (
            n(&["first_byte_ms", "relay", q]),
            n(&["first_byte_ms", "direct", q]),
            n(&["first_byte_ms", "websockify", q]),
        );
        out.push_str(&format!(
            "| console request → first framebuffer byte, {q} (ms) | {relay:.2} | {direct:.2} | {wsk:.2} | {:.2}× |\n",
            relay / wsk
        ));
    }
    let daemon_cpu = |key| n(&[key, "relay"]) - n(&[key, "direct"]);
    let (down, up) = (
        daemon_cpu("cpu_s_per_gb_down"),
        daemon_cpu("cpu_s_per_gb_up"),
    );
    out.push_str(&format!(
        "\nCPU the daemon spends per GB (relay − node alone): {down:.2} s VM → browser, {up:.2} s \
         browser → VM; websockify spends {:.2}× and {:.2}× that.\n",
        n(&["cpu_s_per_gb_down", "websockify"]) / down,
        n(&["cpu_s_per_gb_up", "websockify"]) / up,
    ));
    let added = |q| n(&["latency_us", "relay", q]) - n(&["latency_us", "direct", q]);
    let wsk_added = |q| n(&["latency_us", "websockify", q]) - n(&["latency_us", "tcp", q]);
    out.push_str(&format!(
        "\nLatency the daemon adds (relay − node alone): p50 {:.0} µs, p99 {:.0} µs ({} p99 ≤ {GOAL_ADDED_P99_US:.0} µs). \
         websockify adds (websockify − plain TCP to the VNC server, p50 {:.0} µs / p99 {:.0} µs): p50 {:.0} µs, p99 {:.0} µs.\n\n",
        added("p50"),
        added("p99"),
        verdict(added("p99") <= GOAL_ADDED_P99_US),
        n(&["latency_us", "tcp", "p50"]),
        n(&["latency_us", "tcp", "p99"]),
        wsk_added("p50"),
        wsk_added("p99"),
    ));
    out.push_str(
        "| idle sessions | open | errors | RSS, daemon + node | KiB/session, daemon + node | KiB/session, node alone | KiB/session, daemon |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let steps = |key: &str| report[key]["steps"].as_array().cloned().unwrap_or_default();
    for (relay, direct) in steps("idle_relay").iter().zip(steps("idle_direct").iter()) {
        let per = |v: &Value| v["kib_per_session"].as_f64().unwrap_or(f64::NAN);
        let daemon = per(relay) - per(direct);
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} MiB | {:.1} | {:.1} | {daemon:.1} ({} ≤ {GOAL_KIB_PER_SESSION:.0}) |\n",
            relay["sessions"],
            relay["open"],
            relay["errors"],
            relay["rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
            per(relay),
            per(direct),
            verdict(daemon <= GOAL_KIB_PER_SESSION),
        ));
    }
    for key in ["idle_relay", "idle_direct"] {
        if let Some(errors) = report[key]["first_errors"]
            .as_array()
            .filter(|e| !e.is_empty())
        {
            out.push_str(&format!("\nFirst errors ({key}): {errors:?}\n"));
        }
    }
    out
}

/// The header of the results table, with its throughput and CPU-per-GB rows.
fn throughput_table(report: &Value) -> String {
    let n = |path: &[&str]| number(report, path);
    let mut out = String::new();
    out.push_str(
        "| measure | relay (daemon + node) | node alone (direct) | websockify | relay / websockify |\n\
         |---|---|---|---|---|\n",
    );
    for (label, key) in [
        (
            "throughput VM → browser, 64 KiB updates (MB/s)",
            "throughput_down_mb_s",
        ),
        (
            "throughput browser → VM, 64 KiB frames (MB/s)",
            "throughput_up_mb_s",
        ),
    ] {
        let (relay, direct, wsk) = (
            n(&[key, "relay"]),
            n(&[key, "direct"]),
            n(&[key, "websockify"]),
        );
        let ratio = relay / wsk;
        out.push_str(&format!(
            "| {label} | {relay:.0} | {direct:.0} | {wsk:.0} | {ratio:.2}× ({} ≥ {GOAL_THROUGHPUT_RATIO}×) |\n",
            verdict(ratio >= GOAL_THROUGHPUT_RATIO)
        ));
    }
    for (label, key) in [
        (
            "CPU per GB VM → browser, process of the path (s)",
            "cpu_s_per_gb_down",
        ),
        (
            "CPU per GB browser → VM, process of the path (s)",
            "cpu_s_per_gb_up",
        ),
    ] {
        let (relay, direct, wsk) = (
            n(&[key, "relay"]),
            n(&[key, "direct"]),
            n(&[key, "websockify"]),
        );
        out.push_str(&format!(
            "| {label} | {relay:.2} | {direct:.2} | {wsk:.2} | {:.2}× |\n",
            relay / wsk
        ));
    }
    out
}
