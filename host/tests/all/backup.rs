//! `porthole backup` while orders stream in, and `porthole restore` of what it took.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api::{demo_with_catalogue, send, token, url};

const ORDERS: usize = 200;

fn porthole(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_porthole"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "porthole {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_200_orders_restores_clean_with_every_order_acknowledged_before_it() {
    let demo = demo_with_catalogue().await;
    let admin = token(&demo, "admin").to_owned();
    let (_, whoami) = send(
        &demo,
        token(&demo, "alice"),
        Method::GET,
        "/api/v1/whoami",
        json!(null),
    )
    .await;
    let alice = whoami["user"]["id"].as_i64().unwrap();
    let quota = json!({
        "max_vms": 1000, "max_cores": 100_000, "max_memory_mib": 100_000_000u64,
        "max_disk_gib": 100_000_000u64
    });
    let path = format!("/api/v1/users/{alice}/quota");
    let (status, body) = send(&demo, &admin, Method::PUT, &path, quota).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Each acknowledged order, with the moment its acknowledgement arrived.
    let acknowledged = Arc::new(Mutex::new(Vec::<(i64, Instant)>::new()));
    let http = reqwest::Client::new();
    let orders = futures_util::future::join_all((0..ORDERS).map(|n| {
        let (http, admin, acknowledged) = (http.clone(), admin.clone(), acknowledged.clone());
        let endpoint = url(&demo, "/api/v1/orders");
        tokio::spawn(async move {
            // Spread out, so that orders keep arriving before, during and after the backup.
            tokio::time::sleep(Duration::from_millis(10 * n as u64)).await;
            let answer = http
                .post(endpoint)
                .bearer_auth(&admin)
                .header("Idempotency-Key", format!("backup-{n}"))
                .json(&json!({
                    "customer": alice, "plan": "small", "template": "debian-12",
                    "hostname": format!("backup-{n}"), "username": "debian"
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::ACCEPTED);
            let receipt: serde_json::Value = answer.json().await.unwrap();
            let id = receipt["service_id"].as_i64().unwrap();
            acknowledged.lock().unwrap().push((id, Instant::now()));
        })
    }));
    let orders = tokio::spawn(orders);
    while acknowledged.lock().unwrap().len() < ORDERS / 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let backup_file = dir.path().join("porthole-backup.db");
    let began = Instant::now();
    let config = demo.config_path().to_str().unwrap().to_owned();
    let target = backup_file.to_str().unwrap().to_owned();
    let report = tokio::task::spawn_blocking(move || {
        porthole(&["backup", "--config", &config, "--to", &target])
    })
    .await
    .unwrap();
    assert!(report.contains("schema version"), "{report}");
    let before: Vec<i64> = acknowledged
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        before.len() < ORDERS,
        "the backup should be taken while orders still arrive"
    );
    for outcome in orders.await.unwrap() {
        outcome.unwrap();
    }

    // Restored where another installation's configuration points.
    let demo_config = std::fs::read_to_string(demo.config_path()).unwrap();
    let restored = dir.path().join("restored.db");
    // Beside the demo's, whose relative paths (the data key, plugins) it shares.
    let other_config = demo.config_path().with_file_name("restored.toml");
    let text = demo_config
        .lines()
        .map(|line| {
            if line.starts_with("database = ") {
                format!("database = {:?}", restored.to_str().unwrap())
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&other_config, text).unwrap();
    let report = porthole(&[
        "restore",
        "--config",
        other_config.to_str().unwrap(),
        "--from",
        backup_file.to_str().unwrap(),
    ]);
    assert!(report.contains("restored"), "{report}");

    let db = rusqlite::Connection::open(&restored).unwrap();
    let verdict: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
    let mut query = db
        .prepare("SELECT count(*) FROM services s JOIN jobs j ON j.service_id = s.id WHERE s.id = ?1 AND j.kind = 'provision'")
        .unwrap();
    for id in &before {
        let found: i64 = query.query_row([id], |row| row.get(0)).unwrap();
        assert_eq!(
            found, 1,
            "service {id}, acknowledged before the backup, is missing"
        );
    }
    demo.stop().await.unwrap();
}
