//! Python tools from PyPI, each in a venv of its own under `target/`, installed from a
//! requirements file that pins every package (`pip install --no-deps`), and installed again
//! whenever that file changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// `target/<name>/venv/bin/<bin>`, installed from `xtask/<name>/requirements.txt`.
pub fn tool(root: &Path, name: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let requirements_file = root.join(format!("xtask/{name}/requirements.txt"));
    let requirements = std::fs::read(&requirements_file)
        .with_context(|| format!("while reading {}", requirements_file.display()))?;
    let venv = root.join(format!("target/{name}/venv"));
    let path = venv.join("bin").join(bin);
    // The requirements the venv was last installed from, compared to decide whether it is current.
    let installed = venv.join("porthole-requirements.txt");
    if path.exists() && std::fs::read(&installed).ok().as_deref() == Some(&requirements[..]) {
        return Ok(path);
    }
    eprintln!("xtask: installing {bin} into {}", venv.display());
    let status = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .context("while running python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv failed");
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--no-deps", "--requirement"])
        .arg(&requirements_file)
        .status()
        .context("while running pip")?;
    if !status.success() || !path.exists() {
        bail!("pip install of {name} failed");
    }
    std::fs::write(&installed, &requirements)
        .with_context(|| format!("while writing {}", installed.display()))?;
    Ok(path)
}
