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

/// Everything CI checks: formatting, lints, and every test.
pub fn test(root: &Path) -> anyhow::Result<()> {
    wasm_target(root)?;
    step(root, "cargo", &["fmt", "--all", "--check"])?;
    step(
        root,
        "cargo",
        &[
            "clippy",
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
    step(
        root,
        "cargo",
        &["nextest", "run", "--workspace", "--no-fail-fast"],
    )?;
    // nextest does not run doctests.
    step(root, "cargo", &["test", "--workspace", "--doc"])
}

/// Builds and starts `porthole demo`, passing any extra arguments on.
pub fn demo(root: &Path, extra: &[String]) -> anyhow::Result<()> {
    wasm_target(root)?;
    let mut args = vec!["run", "--package", "porthole", "--", "demo"];
    args.extend(extra.iter().map(String::as_str));
    step(root, "cargo", &args)
}
