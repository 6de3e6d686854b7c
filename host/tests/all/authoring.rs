//! The plugin author's commands, run as the `porthole` binary: `plugin new` writes exactly the
//! examples that `cargo xtask examples` builds, checks and tests with their own commands;
//! `plugin wit` writes the contract; `plugin call` records and replays HTTP exchanges and shows
//! what the egress policy refused; `plugin test` fails on a failing case.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use axum::Router;
use axum::routing::patch;
use tempfile::TempDir;

use crate::first_party::component;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn porthole(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_porthole"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file under `dir` but what its builds leave (ignored by the project's `.gitignore`).
fn project_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    const BUILT: &[&str] = &["target", "node_modules", "dist", ".venv", "__pycache__"];
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !BUILT.contains(&name.as_str()) {
                    pending.push(path);
                }
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn plugin_new_writes_exactly_the_examples_that_are_built_and_tested() {
    let out = TempDir::new().unwrap();
    for (name, world, lang) in [
        ("rust-dns-powerdns", "dns-provider", "rust"),
        ("rust-billing-paddle", "billing-adapter", "rust"),
        ("js-dns-powerdns", "dns-provider", "js"),
        ("python-billing-paddle", "billing-adapter", "python"),
    ] {
        let dir = out.path().to_str().unwrap();
        let made = porthole(
            &[
                "plugin", "new", name, "--world", world, "--lang", lang, "--dir", dir,
            ],
            out.path(),
        );
        assert!(made.status.success(), "{}", text(&made));
        let written = project_files(&out.path().join(name));
        let example = project_files(&repo().join("examples/plugins").join(name));
        let names = |files: &BTreeMap<PathBuf, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&written), names(&example), "{name}: the files differ");
        for (path, bytes) in &written {
            assert!(
                example.get(path) == Some(bytes),
                "{name}/{}: the example is not what `plugin new` writes",
                path.display()
            );
        }
    }
    // What has no template is refused with the ones there are.
    let refused = porthole(
        &[
            "plugin",
            "new",
            "x",
            "--world",
            "tunnel-provider",
            "--lang",
            "js",
        ],
        out.path(),
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused).contains("--lang js --world dns-provider"),
        "{}",
        text(&refused)
    );
}

#[test]
fn plugin_wit_writes_the_contract_the_daemon_implements() {
    let out = TempDir::new().unwrap();
    let wrote = porthole(&["plugin", "wit", "--out", "contract"], out.path());
    assert!(wrote.status.success(), "{}", text(&wrote));
    assert_eq!(
        project_files(&out.path().join("contract")),
        project_files(&repo().join("wit"))
    );
}

/// A PowerDNS API that accepts every PATCH, on loopback.
async fn fake_powerdns() -> SocketAddr {
    let app = Router::new().route(
        "/api/v1/servers/localhost/zones/{zone}",
        patch(|| async { axum::http::StatusCode::NO_CONTENT }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

const UPSERT: &str = r#"{"zone": "lab.example.com", "entry": {"name": "vm1.lab.example.com", "kind": "A", "content": "192.0.2.10", "ttl": 300, "proxied": false}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn plugin_call_records_exchanges_and_replays_them_without_the_network() {
    let api = fake_powerdns().await;
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("plugin.toml"),
        format!(
            "allowed_hosts = [\"http://{api}\"]\nallowed_addresses = [\"127.0.0.1\"]\n\n\
             [settings]\napi_url = \"http://{api}\"\napi_key = \"k\"\n"
        ),
    )
    .unwrap();
    let (wasm, _) = component("dns-powerdns");
    let wasm = wasm.to_str().unwrap();
    let call = |extra: &[&str]| {
        let mut args = vec![
            "plugin",
            "call",
            wasm,
            "upsert-record",
            "--settings",
            "plugin.toml",
            "--input",
            UPSERT,
        ];
        args.extend_from_slice(extra);
        let dir = dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                porthole(&args, &dir)
            })
            .await
            .unwrap()
        }
    };
    let live = call(&["--record", "recorded.json"]).await;
    let report = text(&live);
    assert!(live.status.success(), "{report}");
    assert!(
        report.contains("result: \"vm1.lab.example.com./A\""),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "http PATCH http://{api}/api/v1/servers/localhost/zones/lab.example.com. -> 204 in"
        )) && report.contains("from the network"),
        "{report}"
    );
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("recorded.json")).unwrap()).unwrap();
    assert_eq!(recorded[0]["status"], 204, "{recorded}");

    // The same call, answered by the recording: the API's address now refuses connections.
    let replayed = call(&["--http-fixtures", "recorded.json", "--json"]).await;
    assert!(replayed.status.success(), "{}", text(&replayed));
    let report: serde_json::Value = serde_json::from_slice(&replayed.stdout).unwrap();
    assert_eq!(report["result"]["Ok"], "vm1.lab.example.com./A", "{report}");
    assert_eq!(report["http"][0]["answered_by"], "fixture", "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_call_shows_what_the_egress_policy_refused() {
    let dir = TempDir::new().unwrap();
    // The API is not in allowed_hosts: the daemon would refuse it, so the workbench does.
    std::fs::write(
        dir.path().join("plugin.toml"),
        "[settings]\napi_url = \"http://127.0.0.1:9\"\napi_key = \"k\"\n",
    )
    .unwrap();
    let (wasm, _) = component("dns-powerdns");
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            porthole(
                &[
                    "plugin",
                    "call",
                    wasm.to_str().unwrap(),
                    "upsert-record",
                    "--settings",
                    "plugin.toml",
                    "--input",
                    UPSERT,
                ],
                &dir,
            )
        }
    })
    .await
    .unwrap();
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("error (upstream)"), "{report}");
    assert!(
        report.contains("http PATCH http://127.0.0.1:9/") && report.contains("-> refused:"),
        "{report}"
    );
    assert!(
        report.contains("not in allowed_hosts") || report.contains("allowed"),
        "{report}"
    );
}

#[test]
fn plugin_test_fails_a_case_whose_expectation_is_not_met() {
    let dir = TempDir::new().unwrap();
    let (wasm, _) = component("dns-powerdns");
    std::fs::write(
        dir.path().join("spec.toml"),
        format!(
            r#"component = "{}"

[[case]]
name = "listed"
function = "list-records"
input = {{ zone = "lab.example.com" }}
settings = {{ api_url = "http://127.0.0.1:8081", api_key = "k" }}
expect = {{ result = [] }}

[[case.http]]
method = "GET"
url = "http://127.0.0.1:8081/api/v1/servers/localhost/zones/lab.example.com."
status = 200
body = '{{"rrsets": []}}'

[[case]]
name = "expects the wrong error"
function = "delete-record"
input = {{ zone = "lab.example.com", id = "vm1.lab.example.com./A" }}
settings = {{ api_url = "http://127.0.0.1:8081", api_key = "k" }}
expect = {{ error = "not-found" }}

[[case.http]]
method = "PATCH"
url = "http://127.0.0.1:8081/api/v1/servers/localhost/zones/lab.example.com."
status = 401
"#,
            wasm.display()
        ),
    )
    .unwrap();
    // No allowed_hosts: the policy refuses before any fixture answers, as the daemon would.
    let output = porthole(&["plugin", "test", "spec.toml"], dir.path());
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL listed"), "{report}");
    assert!(report.contains("refused"), "{report}");

    std::fs::write(
        dir.path().join("plugin.toml"),
        "allowed_hosts = [\"http://127.0.0.1:8081\"]\n",
    )
    .unwrap();
    let spec = std::fs::read_to_string(dir.path().join("spec.toml")).unwrap();
    let spec = spec.replacen(
        "\n\n[[case]]",
        "\nsettings = \"plugin.toml\"\n\n[[case]]",
        1,
    );
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    // The origin allowed, but not its loopback address: refused as the daemon would refuse it,
    // though a fixture, not a connection, would answer.
    let output = porthole(&["plugin", "test", "spec.toml"], dir.path());
    let report = text(&output);
    assert!(report.contains("FAIL listed"), "{report}");
    assert!(
        report.contains(
            "-> refused: 127.0.0.1 is Loopback and not in the plugin's allowed_addresses"
        ),
        "{report}"
    );

    std::fs::write(
        dir.path().join("plugin.toml"),
        "allowed_hosts = [\"http://127.0.0.1:8081\"]\nallowed_addresses = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let output = porthole(&["plugin", "test", "spec.toml"], dir.path());
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("PASS listed"), "{report}");
    assert!(
        report
            .contains("FAIL expects the wrong error: failed with unauthorized, expected not-found"),
        "{report}"
    );
    assert!(report.contains("1 passed, 1 failed"), "{report}");
}
