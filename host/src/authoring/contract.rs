//! The plugin contract as this binary carries it: the WIT files a component is built against,
//! written out by `porthole plugin wit` and into every new project by `plugin new`.

use std::path::Path;

use anyhow::Context as _;

/// The contract's version: what `package porthole:plugin@…` says.
pub const VERSION: &str = "0.1.1";

/// Every file, by its path under a `wit/` directory.
pub const FILES: &[(&str, &str)] = &[
    ("porthole.wit", include_str!("../../../wit/porthole.wit")),
    ("deps/cli.wit", include_str!("../../../wit/deps/cli.wit")),
    (
        "deps/clocks.wit",
        include_str!("../../../wit/deps/clocks.wit"),
    ),
    (
        "deps/filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    ("deps/http.wit", include_str!("../../../wit/deps/http.wit")),
    ("deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    (
        "deps/random.wit",
        include_str!("../../../wit/deps/random.wit"),
    ),
    (
        "deps/sockets.wit",
        include_str!("../../../wit/deps/sockets.wit"),
    ),
];

/// Writes the contract under `dir` (created if needed), replacing files of the same names.
pub fn write(dir: &Path) -> anyhow::Result<()> {
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_one_the_contract_declares() {
        let declared = format!("package porthole:plugin@{VERSION};");
        assert!(FILES[0].1.contains(&declared));
    }

    #[test]
    fn every_file_of_the_contract_is_carried() -> anyhow::Result<()> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk = Vec::new();
        for dir in [root.clone(), root.join("deps")] {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "wit") {
                    on_disk.push(path.strip_prefix(&root)?.display().to_string());
                }
            }
        }
        on_disk.sort();
        let mut carried: Vec<_> = FILES.iter().map(|(name, _)| name.to_string()).collect();
        carried.sort();
        assert_eq!(carried, on_disk);
        Ok(())
    }
}
