//! `cargo xtask deb`: the Debian package (with `cargo-deb`), then `lintian` on it.
//!
//! The package holds the release daemon, the built panel, the first-party plugins, the systemd
//! unit and a configuration under `/etc/porthole/`: `examples/porthole.toml` with the panel's
//! directory and the shipped plugins' real digests.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::plugins::{self, Component};
use crate::run::{panel_ui, step};

/// The configuration the package installs, written by [`packaged_config`].
const PACKAGED_CONFIG: &str = "target/deb/porthole.toml";
/// Where the package installs the plugins and the panel.
const PLUGINS_DIR: &str = "/usr/lib/porthole/plugins/";
const PANEL_DIR: &str = "/usr/share/porthole/panel";

pub fn build(root: &Path) -> anyhow::Result<()> {
    let components = plugins::build(root)?;
    panel_ui(root)?;
    let example = std::fs::read_to_string(root.join("examples/porthole.toml"))
        .context("while reading examples/porthole.toml")?;
    let config = root.join(PACKAGED_CONFIG);
    std::fs::create_dir_all(root.join("target/deb"))?;
    std::fs::write(&config, packaged_config(&example, &components)?)
        .with_context(|| format!("while writing {}", config.display()))?;
    step(
        root,
        "cargo",
        &[
            "deb",
            "--locked",
            "--package",
            "porthole",
            "--output",
            "target/deb/",
        ],
    )?;
    let package = built_package(&root.join("target/deb"))?;
    println!("xtask: built {}", package.display());
    check_contents(&package, &components)?;
    let package = package.to_string_lossy().into_owned();
    step(
        root,
        "lintian",
        &[
            "--fail-on",
            "error,warning",
            "--info",
            "--display-info",
            &package,
        ],
    )
}

/// What a provider's machine needs from the package, checked in its file list.
fn check_contents(package: &Path, components: &[Component]) -> anyhow::Result<()> {
    let listing = std::process::Command::new("dpkg-deb")
        .arg("--contents")
        .arg(package)
        .output()
        .context("while running dpkg-deb --contents")?;
    if !listing.status.success() {
        bail!("dpkg-deb --contents {} failed", package.display());
    }
    let listing = String::from_utf8_lossy(&listing.stdout);
    let mut wanted: Vec<String> = [
        "./usr/bin/porthole",
        "./etc/porthole/porthole.toml",
        "./usr/lib/systemd/system/porthole.service",
        "./usr/share/porthole/panel/index.html",
        "./usr/share/man/man1/porthole.1.gz",
        "./usr/share/doc/porthole/operating.md",
    ]
    .map(String::from)
    .to_vec();
    for component in components {
        let file = component
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        wanted.push(format!(".{PLUGINS_DIR}{file}"));
    }
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|path| !listing.lines().any(|line| line.ends_with(path.as_str())))
        .collect();
    if !missing.is_empty() {
        bail!("the package lacks {missing:?}");
    }
    Ok(())
}

/// The example configuration with `ui_dir` set to the packaged panel and every shipped
/// plugin's placeholder digest replaced by the component's own.
fn packaged_config(example: &str, components: &[Component]) -> anyhow::Result<String> {
    let mut plugin_file: Option<&str> = None;
    let mut out = String::new();
    for line in example.lines() {
        if let Some(path) = quoted_value(line, "path") {
            plugin_file = path.strip_prefix(PLUGINS_DIR);
        }
        if quoted_value(line, "sha256").is_some() {
            let file = plugin_file.context("a sha256 before any plugin path")?;
            let component = components
                .iter()
                .find(|c| c.path.file_name().is_some_and(|name| name == file))
                .with_context(|| format!("the example names {file}, which is not shipped"))?;
            out.push_str(&format!("sha256 = \"{}\"\n", component.sha256));
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("data_key = ") {
            out.push_str(&format!(
                "# The panel this package installs.\nui_dir = \"{PANEL_DIR}\"\n"
            ));
        }
    }
    if !out.contains("ui_dir = ") {
        bail!("examples/porthole.toml has no data_key line to put ui_dir after");
    }
    Ok(out)
}

/// `value` of a `key = "value"` line.
fn quoted_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    rest.strip_prefix('"')?.split('"').next()
}

fn built_package(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .max_by_key(|path| path.metadata().and_then(|m| m.modified()).ok())
        .with_context(|| format!("cargo deb left no .deb in {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_config_pins_the_shipped_plugins_and_names_the_panel() {
        let example = "data_key = { file = \"k\" }\n\n[[plugins]]\nname = \"a\"\n\
                       path = \"/usr/lib/porthole/plugins/cloudinit_basic.wasm\"\n\
                       sha256 = \"0000\"\n";
        let components = [Component {
            package: "cloudinit-basic",
            path: PathBuf::from("/x/cloudinit_basic.wasm"),
            size: 1,
            sha256: "ab".repeat(32),
        }];
        let config = packaged_config(example, &components).unwrap();
        assert!(
            config.contains(&format!("sha256 = \"{}\"", "ab".repeat(32))),
            "{config}"
        );
        assert!(
            config.contains("ui_dir = \"/usr/share/porthole/panel\""),
            "{config}"
        );
        let unknown = example.replace("cloudinit_basic", "mystery");
        assert!(packaged_config(&unknown, &components).is_err());
    }
}
