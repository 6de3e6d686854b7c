//! The first-party plugin components, as `cargo xtask plugins` builds them.

use std::path::{Path, PathBuf};

/// A component's path and SHA-256; a missing component fails the test with what to run.
pub fn component(package: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let bytes = std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; build the plugins with `cargo xtask plugins`",
            path.display()
        )
    });
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    (path, sha256)
}

/// A `[[plugins]]` entry for a component with no settings.
pub fn plugin_entry(package: &str, world: &str) -> String {
    let (path, sha256) = component(package);
    format!(
        "\n[[plugins]]\nname = \"{package}\"\npath = \"{}\"\nsha256 = \"{sha256}\"\nworld = \"{world}\"\n",
        path.display()
    )
}
