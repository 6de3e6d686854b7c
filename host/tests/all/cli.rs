//! `porthole admin …` against a real database file named by a configuration.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::config::Fixture;

fn porthole(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_porthole"))
        .args(args)
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn admin_commands_create_an_account_and_a_token_that_the_store_knows() {
    let fixture = Fixture::new();
    let config = fixture.write(&Fixture::valid());
    let config = config.to_str().unwrap();
    let created = porthole(
        &[
            "admin",
            "--config",
            config,
            "create-user",
            "--username",
            "ops",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "a long enough password\n",
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).contains("created admin ops"));

    let token = porthole(
        &[
            "admin",
            "--config",
            config,
            "create-token",
            "--username",
            "ops",
        ],
        "",
    );
    assert!(token.status.success());
    assert!(
        String::from_utf8_lossy(&token.stdout)
            .trim()
            .starts_with("pht_")
    );

    let again = porthole(
        &[
            "admin",
            "--config",
            config,
            "create-user",
            "--username",
            "ops",
            "--role",
            "customer",
        ],
        "",
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("taken"));

    let weak = porthole(
        &[
            "admin",
            "--config",
            config,
            "create-user",
            "--username",
            "eve",
            "--role",
            "customer",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least"));

    let bad_role = porthole(
        &[
            "admin",
            "--config",
            config,
            "create-user",
            "--username",
            "x",
            "--role",
            "root",
        ],
        "",
    );
    assert_eq!(bad_role.status.code(), Some(2), "bad usage");
}
