//! The plugin examples in `examples/plugins/`: each is what `porthole plugin new` writes, built
//! with its own command and tested with `porthole plugin check` and `plugin test`, as an author
//! would in their own CI.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::run::step;

/// One example: its directory, build steps and built component.
struct Example {
    dir: &'static str,
    build: &'static [&'static [&'static str]],
    /// Native tests of the plugin's logic, before the component's.
    native_tests: &'static [&'static str],
    component: &'static str,
}

const EXAMPLES: &[Example] = &[
    Example {
        dir: "rust-dns-powerdns",
        build: &[&[
            "cargo",
            "build",
            "--locked",
            "--release",
            "--target",
            "wasm32-wasip2",
        ]],
        native_tests: &[],
        component: "target/wasm32-wasip2/release/rust_dns_powerdns.wasm",
    },
    Example {
        dir: "js-dns-powerdns",
        build: &[
            &["npm", "ci", "--no-audit", "--no-fund"],
            &["npm", "run", "build"],
        ],
        native_tests: &[],
        component: "dist/js-dns-powerdns.wasm",
    },
    Example {
        dir: "python-billing-paddle",
        build: &[&["./build.sh"]],
        native_tests: &["python3", "tests/test_paddle.py"],
        component: "dist/python-billing-paddle.wasm",
    },
];

impl Example {
    fn path(&self, root: &Path) -> PathBuf {
        root.join("examples/plugins").join(self.dir)
    }
}

/// Builds every example with its own command.
pub fn build(root: &Path) -> anyhow::Result<()> {
    for example in EXAMPLES {
        let dir = example.path(root);
        for command in example.build {
            step(&dir, command[0], &command[1..])?;
        }
    }
    Ok(())
}

/// Tests every built example: natively where it has such tests, then `plugin check` and
/// `plugin test` with `porthole` (the daemon's debug build).
pub fn test(root: &Path) -> anyhow::Result<()> {
    let porthole = root.join("target/debug/porthole");
    let porthole = porthole
        .to_str()
        .context("the repository's path is not UTF-8")?;
    for example in EXAMPLES {
        let dir = example.path(root);
        if let [program, args @ ..] = example.native_tests {
            step(&dir, program, args)?;
        }
        step(&dir, porthole, &["plugin", "check", example.component])?;
        step(
            &dir,
            porthole,
            &["plugin", "test", "tests/plugin-test.toml"],
        )?;
    }
    Ok(())
}
