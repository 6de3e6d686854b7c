//! `porthole plugin new`: a ready project from a template this binary carries, with the
//! contract under `wit/`, a small working plugin, a settings file and a `plugin test` file.

use std::path::Path;

use anyhow::{Context as _, bail};

use super::contract;
use crate::plugins::{PluginWorld, worlds};

/// A plugin's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    Js,
    Python,
}

/// One template: its files, with `{{name}}` and `{{crate}}` (the name in snake case) to fill.
struct Template {
    language: Language,
    world: PluginWorld,
    /// How to build it, shown when the project is written.
    build: &'static str,
    files: &'static [(&'static str, &'static str)],
}

macro_rules! files {
    ($dir:literal: $($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../../templates/", $dir, "/", $file)))),*]
    };
}

const TEMPLATES: &[Template] = &[
    Template {
        language: Language::Rust,
        world: PluginWorld::DnsProvider,
        build: "cargo build --release --target wasm32-wasip2",
        files: files!("rust-dns-provider":
        "Cargo.toml", "Cargo.lock", ".gitignore", "README.md", "plugin.toml", "src/lib.rs", "src/http.rs",
        "tests/plugin-test.toml"),
    },
    Template {
        language: Language::Rust,
        world: PluginWorld::BillingAdapter,
        build: "cargo build --release --target wasm32-wasip2",
        files: files!("rust-billing-adapter":
        "Cargo.toml", "Cargo.lock", ".gitignore", "README.md", "plugin.toml", "src/lib.rs",
        "src/paddle.rs", "src/component.rs", "tests/plugin-test.toml"),
    },
    Template {
        language: Language::Js,
        world: PluginWorld::DnsProvider,
        build: "npm ci && npm run build",
        files: files!("js-dns-provider":
        "package.json", "package-lock.json", ".gitignore", "README.md", "plugin.toml",
        "src/plugin.js", "tests/plugin-test.toml"),
    },
    Template {
        language: Language::Python,
        world: PluginWorld::DnsProvider,
        build: "./build.sh",
        files: files!("python-dns-provider":
        "requirements.txt", "build.sh", ".gitignore", "README.md", "plugin.toml", "src/app.py",
        "src/httpclient.py", "tests/plugin-test.toml"),
    },
    Template {
        language: Language::Python,
        world: PluginWorld::BillingAdapter,
        build: "./build.sh",
        files: files!("python-billing-adapter":
        "requirements.txt", "build.sh", ".gitignore", "README.md", "plugin.toml", "src/app.py",
        "src/paddle.py", "tests/test_paddle.py", "tests/plugin-test.toml"),
    },
];

/// The language and world pairs there are templates for, as `plugin new` lists them.
pub fn available() -> String {
    TEMPLATES
        .iter()
        .map(|t| {
            format!(
                "--lang {:?} --world {}",
                t.language,
                worlds::world_name(t.world)
            )
            .to_lowercase()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes project `name` into `dir/name`; returns the directory and the build command.
pub fn create(
    dir: &Path,
    name: &str,
    world: PluginWorld,
    language: Language,
) -> anyhow::Result<(std::path::PathBuf, &'static str)> {
    check_name(name)?;
    let Some(template) = TEMPLATES
        .iter()
        .find(|t| t.language == language && t.world == world)
    else {
        bail!(
            "there is no {language:?} template for the {} world; templates: {}",
            worlds::world_name(world),
            available()
        );
    };
    let root = dir.join(name);
    if root.exists() {
        bail!(
            "{} already exists; choose another name or directory",
            root.display()
        );
    }
    let crate_name = name.replace('-', "_");
    for (path, text) in template.files {
        let text = text
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name);
        write(&root.join(path), &text)?;
    }
    contract::write(&root.join("wit"))?;
    Ok((root, template.build))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "sh") {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

/// A name every toolchain accepts as a package name and Porthole as a plugin name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let fits = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if fits {
        Ok(())
    } else {
        bail!(
            "{name:?}: a plugin name is lower-case letters, digits and dashes, starting with a letter"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_suit_cargo_npm_python_and_porthole() {
        assert!(check_name("my-dns2").is_ok());
        for bad in ["My", "2dns", "dns-", "dns_x", ""] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_project_is_written_with_its_contract_and_names_filled() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (root, _) = create(
            dir.path(),
            "my-dns",
            PluginWorld::DnsProvider,
            Language::Rust,
        )?;
        let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
        assert!(manifest.contains("name = \"my-dns\""));
        let spec = std::fs::read_to_string(root.join("tests/plugin-test.toml"))?;
        assert!(spec.contains("release/my_dns.wasm"));
        assert!(root.join("wit/porthole.wit").exists());
        let again = create(
            dir.path(),
            "my-dns",
            PluginWorld::DnsProvider,
            Language::Rust,
        );
        assert!(again.is_err(), "an existing project is never overwritten");
        Ok(())
    }
}
