//! The plugin examples in `examples/plugins/`: each is what `porthole plugin new` writes, built
//! with its own command and tested with `porthole plugin check` and `plugin test`, as an author
//! would in their own CI.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::run::step;

/// How a project `porthole plugin new` writes in `language` is built, as its README says.
pub fn build_steps(language: &str) -> &'static [&'static [&'static str]] {
    match language {
        "rust" => &[&[
            "cargo",
            "build",
            "--locked",
            "--release",
            "--target",
            "wasm32-wasip2",
        ]],
        "js" => &[
            &["npm", "ci", "--no-audit", "--no-fund"],
            &["npm", "run", "build"],
        ],
        _ => &[&["./build.sh"]],
    }
}

/// One example: its directory, language and built component.
struct Example {
    dir: &'static str,
    language: &'static str,
    /// Native tests of the plugin's logic, before the component's.
    native_tests: &'static [&'static str],
    component: &'static str,
}

const EXAMPLES: &[Example] = &[
    Example {
        dir: "rust-dns-powerdns",
        language: "rust",
        native_tests: &[],
        component: "target/wasm32-wasip2/release/rust_dns_powerdns.wasm",
    },
    Example {
        dir: "rust-billing-paddle",
        language: "rust",
        native_tests: &["cargo", "test", "--locked"],
        component: "target/wasm32-wasip2/release/rust_billing_paddle.wasm",
    },
    Example {
        dir: "js-dns-powerdns",
        language: "js",
        native_tests: &[],
        component: "dist/js-dns-powerdns.wasm",
    },
    Example {
        dir: "python-billing-paddle",
        language: "python",
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
        for command in build_steps(example.language) {
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
