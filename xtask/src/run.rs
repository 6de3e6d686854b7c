//! Running the project's own tools: `cargo xtask test` and `cargo xtask demo`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Runs `program args…` in `dir`, failing with the command line when it fails.
pub fn step(dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    let line = format!("{program} {}", args.join(" "));
    eprintln!("xtask: {line}");
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("while starting `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// The toolchain file lists the target, but with `RUSTUP_AUTO_INSTALL=0` nothing installs it.
fn wasm_target(root: &Path) -> anyhow::Result<()> {
    step(root, "rustup", &["target", "add", "wasm32-wasip2"])
}

/// Builds the web panel (`panel-ui/dist`) when it is missing or older than its sources.
pub fn panel_ui(root: &Path) -> anyhow::Result<()> {
    let ui = root.join("panel-ui");
    let lock = newest(&ui.join("package-lock.json"));
    if newest(&ui.join("node_modules/.package-lock.json")) < lock {
        // Exactly what the lock records: `npm ci` refuses a lock that no longer matches
        // `package.json` rather than rewriting it, so a checkout stays clean.
        step(&ui, "npm", &["ci", "--no-audit", "--no-fund"])?;
    }
    let inputs = ["src", "index.html", "package.json", "vite.config.ts"];
    // The panel's API types are generated from the daemon's OpenAPI document.
    let document = newest(&root.join("docs/openapi.json"));
    let sources = inputs
        .iter()
        .filter_map(|p| newest(&ui.join(p)))
        .chain(lock)
        .chain(document);
    if newest(&ui.join("dist/index.html")) < sources.max() {
        step(&ui, "npm", &["run", "build"])?;
    }
    Ok(())
}

/// The newest modification time under `path` (the file itself, or a directory's files).
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| newest(&entry.path()))
        .max()
}

/// Everything CI checks: formatting, lints, and every test.
pub fn test(root: &Path) -> anyhow::Result<()> {
    wasm_target(root)?;
    step(root, "cargo", &["fmt", "--all", "--check"])?;
    step(
        root,
        "cargo",
        &[
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The daemon's tests run the first-party plugins' components, so they are built first.
    crate::plugins::build(root)?;
    crate::plugins::check(root)?;
    // The daemon's end-to-end tests load the examples' components too, and one cluster test
    // drives the built panel in Chromium.
    examples(root)?;
    panel_ui(root)?;
    // The OpenAPI test hands the document to an independent validator from PyPI.
    let validator = crate::venv::tool(root, "openapi-validator", "openapi-spec-validator")?;
    // One PostgreSQL server for the whole run: each PostgreSQL test makes its own database on
    // it instead of starting a server of its own.
    let postgres = porthole_pg_fixture::TempPostgres::start()?;
    eprintln!("xtask: cargo nextest run --locked --workspace --no-fail-fast");
    let status = Command::new("cargo")
        .args([
            "nextest",
            "run",
            "--locked",
            "--workspace",
            "--no-fail-fast",
        ])
        .env(porthole_pg_fixture::SERVER_ENV, postgres.url("postgres"))
        .env("PORTHOLE_OPENAPI_VALIDATOR", &validator)
        .current_dir(root)
        .status()
        .context("while starting the test suites")?;
    drop(postgres);
    if !status.success() {
        bail!("the test suites failed ({status})");
    }
    // The plugin suites ran their plugins in runner processes, as the daemon does by default;
    // they run again inside the test's process, the daemon's `mode = "in-process"`.
    eprintln!("xtask: the plugin suites again, with plugins in-process");
    let status = Command::new("cargo")
        .args(["nextest", "run", "--locked", "--package", "porthole"])
        .args([
            "--no-fail-fast",
            "-E",
            "test(/^plugins_(sandbox|first_party)::/)",
        ])
        .env("PORTHOLE_TEST_PLUGINS", "in-process")
        .current_dir(root)
        .status()
        .context("while starting the in-process plugin suites")?;
    if !status.success() {
        bail!("the plugin suites failed with plugins in-process ({status})");
    }
    // nextest does not run doctests.
    step(root, "cargo", &["test", "--locked", "--workspace", "--doc"])?;
    // The web panel's browser tests drive Chromium against the demo built above.
    step(
        root,
        "cargo",
        &["build", "--locked", "--package", "porthole"],
    )?;
    step(&root.join("panel-ui"), "npm", &["test"])
}

/// Builds the plugin examples with their own commands and tests them with `porthole`.
pub fn examples(root: &Path) -> anyhow::Result<()> {
    step(
        root,
        "cargo",
        &["build", "--locked", "--package", "porthole"],
    )?;
    crate::examples::build(root)?;
    crate::examples::test(root)
}

/// Builds and starts `porthole demo`, passing any extra arguments on.
pub fn demo(root: &Path, extra: &[String]) -> anyhow::Result<()> {
    wasm_target(root)?;
    panel_ui(root)?;
    // The demo provisions with the first-party plugins.
    crate::plugins::build(root)?;
    let mut args = vec!["run", "--locked", "--package", "porthole", "--", "demo"];
    args.extend(extra.iter().map(String::as_str));
    step(root, "cargo", &args)
}
