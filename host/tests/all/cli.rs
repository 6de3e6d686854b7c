//! The `porthole` binary itself: `admin …` against a real database file named by a
//! configuration, and `plugin check` against real components.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::config::Fixture;

pub(crate) fn porthole(args: &[&str], stdin: &str) -> Output {
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn plugin_check_describes_a_fit_first_party_component() {
    for (package, world, import, exports) in [
        (
            "cloudinit-basic",
            "cloud-init-template",
            "porthole:plugin/host@0.1.1",
            &["porthole:plugin/cloud-init@0.1.1"][..],
        ),
        (
            "dns-cloudflare",
            "dns-provider",
            "wasi:http/outgoing-handler@0.2.12",
            &[
                "porthole:plugin/dns@0.1.1",
                "porthole:plugin/reverse-dns@0.1.1",
            ][..],
        ),
    ] {
        let (path, sha256) = crate::first_party::component(package);
        let size = std::fs::metadata(&path).unwrap().len();
        let path = path.to_str().unwrap();
        // With the world named, and without: the component's own exports say which it is.
        for args in [
            &["plugin", "check", path, "--world", world][..],
            &["plugin", "check", path][..],
        ] {
            let checked = porthole(args, "");
            let stdout = text(&checked.stdout);
            assert_eq!(
                checked.status.code(),
                Some(0),
                "{args:?}: {stdout}{}",
                text(&checked.stderr)
            );
            let lines: Vec<&str> = stdout.lines().collect();
            for expected in [
                format!("world: {world}"),
                format!("size: {size} bytes"),
                format!("sha256: {sha256}"),
                "contract: porthole:plugin@0.1.1".to_owned(),
                format!("import: {import}"),
            ]
            .into_iter()
            .chain(exports.iter().map(|export| format!("export: {export}")))
            {
                assert!(lines.contains(&expected.as_str()), "{expected}: {stdout}");
            }
            assert_eq!(lines.last(), Some(&"verdict: fit"), "{stdout}");
        }
    }
}

#[test]
fn plugin_check_refuses_a_component_for_another_world_and_names_it() {
    let (path, _) = crate::first_party::component("cloudinit-basic");
    let checked = porthole(
        &[
            "plugin",
            "check",
            path.to_str().unwrap(),
            "--world",
            "dns-provider",
        ],
        "",
    );
    assert_eq!(checked.status.code(), Some(1));
    let (stdout, stderr) = (text(&checked.stdout), text(&checked.stderr));
    assert!(
        stderr.contains("world dns-provider") && stderr.contains("cloud-init-template"),
        "{stderr}"
    );
    assert!(stdout.contains("verdict: unfit"), "{stdout}");
    assert!(!stdout.contains("verdict: fit"), "{stdout}");
}

#[test]
fn plugin_check_refuses_a_file_that_is_no_component_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("notes.wasm");
    std::fs::write(&text_file, "not wasm at all\n").unwrap();
    // A core module: the right magic, but not yet a component.
    let core_module = dir.path().join("core.wasm");
    std::fs::write(&core_module, b"\0asm\x01\x00\x00\x00").unwrap();
    for (file, reason) in [
        (&text_file, "not a WebAssembly file"),
        (&core_module, "core WebAssembly module"),
    ] {
        let checked = porthole(&["plugin", "check", file.to_str().unwrap()], "");
        let (stdout, stderr) = (text(&checked.stdout), text(&checked.stderr));
        assert_eq!(checked.status.code(), Some(1), "{file:?}: {stderr}");
        assert!(
            stderr.contains("not a usable WebAssembly component") && stderr.contains(reason),
            "{file:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!stdout.contains("verdict: fit"), "{stdout}");
    }
    let missing = porthole(
        &[
            "plugin",
            "check",
            dir.path().join("missing.wasm").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot read"));
}

/// `porthole admin adopt-vm` run beside a live demo, on its configuration and database.
async fn adopt(config: &std::path::Path, vmid: u32, extra: &[&str]) -> Output {
    let config = config.to_owned();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let vmid = vmid.to_string();
        let config = config.to_str().unwrap();
        let mut args = vec![
            "admin",
            "--config",
            config,
            "adopt-vm",
            "--username",
            "bob",
            "--cluster",
            "sim",
            "--node",
            "pve2",
            "--vmid",
            &vmid,
        ];
        args.extend(extra.iter().map(String::as_str));
        porthole(&args, "")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn adopting_a_vm_marks_it_as_the_new_service_and_a_second_adoption_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let demo = porthole::demo::Demo::start(
        "127.0.0.1:0".parse().unwrap(),
        Some(dir.path().to_owned()),
        porthole_sim::SimConfig::default(),
    )
    .await
    .unwrap();
    let legacy = porthole_sim::VmSeed {
        node: "pve2".into(),
        vmid: 130,
        name: "legacy".into(),
        description: Some("moved from the old panel".into()),
        ..porthole_sim::VmSeed::default()
    };
    demo.sim().add_vm(legacy).unwrap();
    let config = dir.path().join("porthole.toml");

    let unknown_plan = adopt(&config, 130, &["--plan", "gold"]).await;
    let stderr = String::from_utf8_lossy(&unknown_plan.stderr);
    assert!(stderr.contains("no plan named \"gold\""), "{stderr}");
    let adopted = adopt(&config, 130, &[]).await;
    let stdout = String::from_utf8_lossy(&adopted.stdout);
    assert!(
        adopted.status.success(),
        "{}",
        String::from_utf8_lossy(&adopted.stderr)
    );
    let service: i64 = stdout
        .split("as service ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no service id in {stdout:?}"));
    let vm = demo.sim().vm_config("pve2", 130).unwrap();
    assert_eq!(
        vm["description"],
        format!("moved from the old panel\nporthole-service:{service}")
    );
    assert_eq!(vm["tags"], "porthole");

    let again = adopt(&config, 130, &[]).await;
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(&format!("already marked as service {service}'s")),
        "{stderr}"
    );
    let missing = adopt(&config, 131, &[]).await;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no VM 131 on node \"pve2\""));
    demo.stop().await.unwrap();
}
