//! `porthole demo` as a newcomer runs it: the binary, its printed credentials, and curl-like calls.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct DemoProcess {
    child: Child,
    credentials: Value,
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> DemoProcess {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials.json");
    let child = Command::new(env!("CARGO_BIN_EXE_porthole"))
        .args(["demo", "--listen", "127.0.0.1:0", "--credentials-file"])
        .arg(&file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // From here on, `Drop` kills the demo whatever happens.
    let mut demo = DemoProcess {
        child,
        credentials: Value::Null,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if let Ok(credentials) = serde_json::from_str(&text) {
            demo.credentials = credentials;
            return demo;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not start within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn account<'a>(demo: &'a DemoProcess, username: &str) -> &'a Value {
    demo.credentials["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == username)
        .unwrap()
}

#[tokio::test]
async fn the_demo_serves_its_printed_accounts() {
    let demo = start_demo();
    let url = demo.credentials["url"].as_str().unwrap();
    let client = reqwest::Client::new();
    let get = |token: &str, path: &str| {
        client
            .get(format!("{url}{path}"))
            .bearer_auth(token.to_owned())
            .send()
    };
    let json = async |token: &str, path: &str| -> Value {
        get(token, path).await.unwrap().json().await.unwrap()
    };

    let admin = account(&demo, "admin")["api_token"].as_str().unwrap();
    let nodes = json(admin, "/api/v1/nodes").await;
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 2, "{nodes}");
    let vms = json(admin, "/api/v1/vms").await;
    assert!(vms["vms"].as_array().unwrap().len() >= 4, "{vms}");
    // The seeded services match the seeded VMs: a newcomer's first look shows no drift.
    let drift = json(admin, "/api/v1/drift").await;
    assert_eq!(drift["drift"], serde_json::json!([]), "{drift}");
    // The seeded VMs are on the demo's plans (small, medium), so they count in their quotas.
    let users = json(admin, "/api/v1/users").await;
    let alice_id = users
        .as_array()
        .and_then(|users| users.iter().find(|u| u["username"] == "alice"))
        .map(|u| u["id"].clone())
        .unwrap();
    let quota = json(admin, &format!("/api/v1/users/{alice_id}/quota")).await;
    assert_eq!(quota["usage"]["cores"], 6, "{quota}");

    let alice = account(&demo, "alice");
    let alice_token = alice["api_token"].as_str().unwrap();
    let own = json(alice_token, "/api/v1/vms").await;
    assert_eq!(own["vms"].as_array().unwrap().len(), 2, "{own}");
    let bobs_vm = account(&demo, "bob")["vms"][0].as_i64().unwrap();
    let other = get(alice_token, &format!("/api/v1/vms/{bobs_vm}"))
        .await
        .unwrap();
    assert_eq!(other.status(), reqwest::StatusCode::NOT_FOUND);

    // With the bundled plugins, an order provisions: tunnel, DNS and cloud-init included.
    let receipt: Value = client
        .post(format!("{url}/api/v1/orders"))
        .bearer_auth(alice_token)
        .header("idempotency-key", "demo-order")
        .json(&serde_json::json!({
            "plan": "small", "template": "lab", "hostname": "lab-1", "username": "alice"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let service = receipt["service_id"].as_i64().expect("an order receipt");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = json(admin, &format!("/api/v1/services/{service}")).await;
        match view["service"]["state"].as_str() {
            Some("active") => break,
            Some("provisioning") => {}
            other => panic!("the order ended {other:?}: {view}"),
        }
        assert!(
            Instant::now() < deadline,
            "the order did not provision: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The tunnel gave it a public name; the customer sees how to reach it, and nothing more.
    let vm = json(alice_token, &format!("/api/v1/vms/{service}")).await;
    let mut keys: Vec<&str> = vm.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "actions",
            "addresses",
            "cores",
            "disk_bytes",
            "id",
            "memory_bytes",
            "name",
            "plan",
            "power",
            "ssh",
            "state",
            "template"
        ]
    );
    // The demo's pools gave it one public address of each family.
    // Its owner may point their reverse DNS (the demo keeps both reverse zones).
    assert_eq!(
        vm["addresses"],
        serde_json::json!([
            {"address": "192.0.2.10", "family": "ipv4", "reverse_dns": null,
             "reverse_dns_settable": true},
            {"address": "2001:db8:100::2", "family": "ipv6", "reverse_dns": null,
             "reverse_dns_settable": true},
        ]),
        "{vm}"
    );
    assert_eq!(
        vm["ssh"],
        serde_json::json!({
            "user": "alice",
            "host": "lab-1.demo.porthole.test",
            "proxy_command": "cloudflared access ssh --hostname %h"
        }),
        "{vm}"
    );
}
