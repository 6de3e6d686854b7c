//! `cargo xtask plugins`: builds the first-party plugins (their own workspace in `plugins/`) as
//! release `wasm32-wasip2` components, and reports each one's path, size and SHA-256 — the
//! digest an operator pins in the plugin's manifest.

use crate::run::step;
use anyhow::Context;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// The plugin packages, in the order they are reported.
pub const FIRST_PARTY: [&str; 6] = [
    "cloudinit-basic",
    "cloudinit-lab",
    "dns-cloudflare",
    "dns-powerdns",
    "tunnel-cloudflare",
    "billing-stripe",
];

/// A built component.
pub struct Component {
    pub package: &'static str,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// Where `cargo build --release --target wasm32-wasip2` leaves `package`'s component.
pub fn component_path(root: &Path, package: &str) -> PathBuf {
    root.join("plugins/target/wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// Adds the target, builds every plugin, prints `path  size  sha256` for each.
pub fn build(root: &Path) -> anyhow::Result<Vec<Component>> {
    step(root, "rustup", &["target", "add", "wasm32-wasip2"])?;
    let mut args = vec![
        "build",
        "--locked",
        "--manifest-path",
        "plugins/Cargo.toml",
        "--release",
        "--target",
        "wasm32-wasip2",
    ];
    for package in FIRST_PARTY {
        args.extend(["--package", package]);
    }
    step(root, "cargo", &args)?;
    let components = FIRST_PARTY
        .iter()
        .map(|package| describe(root, package))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for component in &components {
        println!(
            "{}: {}  {} bytes  sha256:{}",
            component.package,
            component.path.display(),
            component.size,
            component.sha256
        );
    }
    Ok(components)
}

fn describe(root: &Path, package: &'static str) -> anyhow::Result<Component> {
    let path = component_path(root, package);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("while reading the component {}", path.display()))?;
    Ok(Component {
        package,
        size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        sha256: hex(&Sha256::digest(&bytes)),
        path,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The plugins workspace's own checks: formatting, clippy (native and wasm32, so the binding
/// layers are linted too) and the logic's native unit tests.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let manifest = ["--manifest-path", "plugins/Cargo.toml"];
    step(
        root,
        "cargo",
        &["fmt", manifest[0], manifest[1], "--all", "--check"],
    )?;
    let clippy = |target: Option<&'static str>| {
        let mut args = vec![
            "clippy",
            "--locked",
            manifest[0],
            manifest[1],
            "--workspace",
            "--all-targets",
        ];
        if let Some(target) = target {
            args = vec![
                "clippy",
                "--locked",
                manifest[0],
                manifest[1],
                "--workspace",
                "--lib",
                "--release",
                "--target",
                target,
            ];
        }
        args.extend(["--", "-D", "warnings"]);
        step(root, "cargo", &args)
    };
    clippy(None)?;
    clippy(Some("wasm32-wasip2"))?;
    step(
        root,
        "cargo",
        &["test", "--locked", manifest[0], manifest[1], "--workspace"],
    )
}
