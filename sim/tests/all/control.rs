use crate::fixture::start;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn control_api_lists_requests_and_seeds_vms() {
    let sim = start().await;
    sim.ok(Method::GET, "/nodes/pve1/qemu", &[("full", "1")])
        .await;
    let control = sim.handle.control_url();
    let plain = reqwest::Client::new();
    let requests: Value = plain
        .get(control.join("requests").unwrap_or_else(|e| panic!("{e}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(
        requests[0],
        json!({ "method": "GET", "path": "/api2/json/nodes/pve1/qemu", "auth": "token", "status": 200,
                "params": { "full": "1", "node": "pve1" } })
    );
    let seed = json!({ "node": "pve2", "vmid": 300, "name": "seeded", "running": true });
    let created = plain
        .post(control.join("vms").unwrap_or_else(|e| panic!("{e}")))
        .json(&seed)
        .send()
        .await;
    assert_eq!(created.map(|r| r.status().as_u16()).ok(), Some(201));
    assert_eq!(sim.handle.vm_status(300).as_deref(), Some("running"));
    let fault = json!({ "path": "/version", "kind": { "status": { "code": 502, "message": "Bad Gateway" } }, "times": 1 });
    let injected = plain
        .post(control.join("faults").unwrap_or_else(|e| panic!("{e}")))
        .json(&fault)
        .send()
        .await;
    assert_eq!(injected.map(|r| r.status().as_u16()).ok(), Some(201));
    assert_eq!(
        sim.call(Method::GET, "/version", crate::fixture::Auth::Token, &[])
            .await
            .status(),
        502
    );
}
