//! `cargo xtask <command>`: repository chores that are easier in Rust than in shell.

mod bench;
mod bench_console;
mod bench_orders;
mod deb;
mod examples;
mod plugins;
mod run;
mod trim_schema;
mod venv;

use anyhow::{Context, bail};
use std::path::PathBuf;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  bench plugins               measure plugin calls (fresh instance per call) against native; append to docs/benchmarks.md
  bench console               measure the console relay beside websockify; append to docs/benchmarks.md
  bench console --only throughput
                              the console's throughput runs alone, printed and not recorded
  bench orders                200 concurrent orders on the simulator: orders/minute, CPU per order; append to docs/benchmarks.md
  deb                         the Debian package (cargo-deb) in target/deb/, checked by lintian
  demo [ARGS…]                build and run `porthole demo` (the panel on the Proxmox simulator)
  examples                    build the plugin examples in examples/plugins with their own commands; check and test them
  plugins                     build the first-party plugins as wasm32-wasip2 components; print path, size, sha256
  test                        everything CI checks: rustfmt, clippy -D warnings, every test
  trim-schema <apidoc.json>   write sim/schema/pve-api.json, the part of the PVE API schema the simulator serves";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("trim-schema") => {
            let input = args.get(1).context(USAGE)?;
            trim_schema::run(
                &PathBuf::from(input),
                &workspace_root().join("sim/schema/pve-api.json"),
            )
        }
        Some("test") => run::test(&workspace_root()),
        Some("bench") => bench::run(&workspace_root(), &args[1..]),
        Some("plugins") => plugins::build(&workspace_root()).map(drop),
        Some("examples") => run::examples(&workspace_root()),
        Some("deb") => deb::build(&workspace_root()),
        Some("demo") => run::demo(&workspace_root(), &args[1..]),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command '{other}'\n\n{USAGE}"),
    }
}

/// The workspace root, so commands work from any directory inside the repository.
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}
