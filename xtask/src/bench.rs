//! `cargo xtask bench plugins`: builds the first-party `cloudinit-basic` component, a DNS provider
//! in each language from `porthole plugin new`'s templates, and the measuring program
//! (`xtask/bench-plugins`, release mode), runs it, and appends the numbers with the machine and
//! date to docs/benchmarks.md.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// The goals from the issue, shown beside each run.
const GOAL_P50_US: f64 = 30.0;
const GOAL_P99_US: f64 = 100.0;
const GOAL_RUNNER_P50_US: f64 = 45.0;
const GOAL_RUNNER_P99_US: f64 = 150.0;

/// The languages of the DNS templates, where each one's component lands, and the goal for its
/// upsert's p50 in µs (none for Rust: its render above must stay as it was).
const DNS_TEMPLATES: &[(&str, &str, f64)] = &[
    (
        "rust",
        "target/wasm32-wasip2/release/bench_dns_rust.wasm",
        f64::NAN,
    ),
    ("js", "dist/bench-dns-js.wasm", 2_000.0),
    ("python", "dist/bench-dns-python.wasm", 5_000.0),
];

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["plugins"] => plugins(root),
        ["console"] => crate::bench_console::run(root, false),
        ["console", "--only", "throughput"] => crate::bench_console::run(root, true),
        ["orders"] => crate::bench_orders::run(root),
        _ => bail!("usage: cargo xtask bench plugins|console [--only throughput]|orders"),
    }
}

fn plugins(root: &Path) -> anyhow::Result<()> {
    crate::plugins::build(root)?;
    let component = crate::plugins::component_path(root, "cloudinit-basic");
    let dns = dns_templates(root)?;
    eprintln!("xtask: measuring {}", component.display());
    let output = Command::new("cargo")
        .args([
            "run",
            "--locked",
            "--release",
            "--quiet",
            "--manifest-path",
            "xtask/bench-plugins/Cargo.toml",
            "--",
        ])
        .arg(&component)
        .args(&dns)
        .current_dir(root)
        .output()
        .context("while starting the plugin benchmark")?;
    if !output.status.success() {
        bail!(
            "the plugin benchmark failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("the plugin benchmark printed no JSON report")?;
    let section = markdown(&report, &machine(), &today());
    println!("{section}");
    append(&root.join("docs/benchmarks.md"), &section)
}

/// Writes each language's DNS template with `porthole plugin new` (under target/bench-dns) and
/// builds it with its own command: `LANGUAGE=COMPONENT` arguments for the measuring program.
fn dns_templates(root: &Path) -> anyhow::Result<Vec<String>> {
    crate::run::step(
        root,
        "cargo",
        &["build", "--locked", "--package", "porthole"],
    )?;
    let porthole = root.join("target/debug/porthole");
    let porthole = porthole
        .to_str()
        .context("the repository's path is not UTF-8")?;
    let dir = root.join("target/bench-dns");
    std::fs::create_dir_all(&dir)?;
    let mut components = Vec::new();
    for (language, component, _) in DNS_TEMPLATES {
        let name = format!("bench-dns-{language}");
        let project = dir.join(&name);
        if !project.exists() {
            let args = [
                "plugin",
                "new",
                &name,
                "--world",
                "dns-provider",
                "--lang",
                language,
            ];
            crate::run::step(&dir, porthole, &args)?;
        }
        for command in crate::examples::build_steps(language) {
            crate::run::step(&project, command[0], &command[1..])?;
        }
        components.push(format!("{language}={}", project.join(component).display()));
    }
    Ok(components)
}

fn number(report: &serde_json::Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(report, |value, key| &value[*key])
        .as_f64()
        .unwrap_or(f64::NAN)
}

fn markdown(report: &serde_json::Value, machine: &str, date: &str) -> String {
    let render_p50 = number(report, &["render_fresh_instance", "p50_us"]);
    let render_p99 = number(report, &["render_fresh_instance", "p99_us"]);
    let runner_p50 = number(report, &["render_through_runner", "p50_us"]);
    let runner_p99 = number(report, &["render_through_runner", "p99_us"]);
    let verdict = |value: f64, goal: f64| if value <= goal { "met" } else { "missed" };
    format!(
        "\n### Plugins: cloud-init render, {date}\n\n\
         Machine: {machine}. Component: `cloudinit-basic`, {bytes} bytes. Fresh store and instance \
         per call; {workers} tokio workers.\n\n\
         | measure | p50 | p99 |\n|---|---|---|\n\
         | render, fresh instance per call | {render_p50:.1} µs ({p50_verdict} ≤ {GOAL_P50_US} µs) | {render_p99:.1} µs ({p99_verdict} ≤ {GOAL_P99_US} µs) |\n\
         | the same through a plugin runner process | {runner_p50:.1} µs ({runner_p50_verdict} ≤ {GOAL_RUNNER_P50_US} µs) | {runner_p99:.1} µs ({runner_p99_verdict} ≤ {GOAL_RUNNER_P99_US} µs) |\n\
         | 64 bytes to another process and back, blocking (the floor under a runner's call) | {trip_p50:.1} µs | {trip_p99:.1} µs |\n\
         | instantiate only | {inst_p50:.1} µs | {inst_p99:.1} µs |\n\
         | output validation only (YAML parse, sizes) | {valid_p50:.1} µs | {valid_p99:.1} µs |\n\
         | same template, native Rust | {native_p50:.2} µs | {native_p99:.2} µs |\n\n\
         Throughput: {calls:.0} renders/s on {workers} workers. Through a runner: {ratio:.2}× the \
         in-process p50; the runner's resident memory {runner_rss:.0} KiB.\n\n\
         The same DNS upsert (one PATCH, answered 204 on loopback) through each language's \
         `plugin new` template, fresh instance per call, in the daemon's process:\n\n\
         | language | component | p50 | p99 |\n|---|---|---|---|\n{dns_rows}",
        dns_rows = dns_rows(report),
        ratio = runner_p50 / render_p50,
        trip_p50 = number(report, &["process_round_trip", "p50_us"]),
        trip_p99 = number(report, &["process_round_trip", "p99_us"]),
        runner_rss = number(report, &["runner_rss_kib"]),
        runner_p50_verdict = verdict(runner_p50, GOAL_RUNNER_P50_US),
        runner_p99_verdict = verdict(runner_p99, GOAL_RUNNER_P99_US),
        bytes = number(report, &["component_bytes"]),
        workers = number(report, &["workers"]),
        p50_verdict = verdict(render_p50, GOAL_P50_US),
        p99_verdict = verdict(render_p99, GOAL_P99_US),
        inst_p50 = number(report, &["instantiate_only", "p50_us"]),
        inst_p99 = number(report, &["instantiate_only", "p99_us"]),
        valid_p50 = number(report, &["validation_only", "p50_us"]),
        valid_p99 = number(report, &["validation_only", "p99_us"]),
        native_p50 = number(report, &["native_render", "p50_us"]),
        native_p99 = number(report, &["native_render", "p99_us"]),
        calls = number(report, &["render_calls_per_s"]),
    )
}

/// One row per DNS template, with its goal; Rust's is that the render above stays as it was.
fn dns_rows(report: &serde_json::Value) -> String {
    DNS_TEMPLATES
        .iter()
        .map(|(language, _, goal)| {
            let p50 = number(report, &["dns_upsert", language, "p50_us"]);
            let p99 = number(report, &["dns_upsert", language, "p99_us"]);
            let bytes = number(report, &["dns_upsert", language, "component_bytes"]);
            let goal = match goal.is_nan() {
                true => "no goal of its own: the render above is unchanged".to_owned(),
                false if p50 <= *goal => format!("met ≤ {:.0} ms", goal / 1000.0),
                false => format!("missed ≤ {:.0} ms", goal / 1000.0),
            };
            format!(
                "| {language} | {:.1} MB | {:.2} ms ({goal}) | {:.2} ms |\n",
                bytes / 1e6,
                p50 / 1000.0,
                p99 / 1000.0
            )
        })
        .collect()
}

pub(crate) fn append(file: &Path, section: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("while opening {}", file.display()))?;
    out.write_all(section.as_bytes())?;
    eprintln!("xtask: appended to {}", file.display());
    Ok(())
}

/// CPU model and core count, from /proc/cpuinfo where there is one.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores, {}", std::env::consts::ARCH)
}

pub(crate) fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "unknown date".into())
}
