use crate::fixture::{Auth, body, start};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn unknown_parameter_gets_pveproxy_400() {
    let sim = start().await;
    let response = sim
        .call(
            Method::PUT,
            "/nodes/pve1/qemu/9000/config",
            Auth::Token,
            &[("colour", "red")],
        )
        .await;
    let (status, body) = body(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "data": null,
            "errors": { "colour": "property is not defined in schema and the schema does not allow additional properties" },
            "message": "Parameter verification failed.\n",
        })
    );
}

#[tokio::test]
async fn mistyped_parameter_is_rejected_and_nothing_changes() {
    let sim = start().await;
    let response = sim
        .call(
            Method::PUT,
            "/nodes/pve1/qemu/9000/config",
            Auth::Token,
            &[("cores", "four")],
        )
        .await;
    let (status, body) = body(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["cores"],
        "type check ('integer') failed - got 'four'"
    );
    assert_eq!(
        sim.handle
            .vm_config("pve1", 9000)
            .and_then(|c| c.get("cores").cloned())
            .as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn json_bodies_are_validated_too() {
    let sim = start().await;
    let response = sim
        .client
        .put(sim.url("/nodes/pve1/qemu/9000/config"))
        .header(
            "Authorization",
            format!(
                "PVEAPIToken={}={}",
                sim.handle.token_id(),
                sim.handle.token_secret()
            ),
        )
        .json(&json!({ "cores": 4, "onboot": true, "cpulimit": 500 }))
        .send()
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let (status, body) = body(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"],
        json!({ "cpulimit": "value must have a maximum value of 128" })
    );
}

#[tokio::test]
async fn unknown_path_is_501_and_missing_vm_is_500() {
    let sim = start().await;
    let (status, body_501) = body(sim.call(Method::GET, "/foo", Auth::Token, &[]).await).await;
    assert_eq!(status, 501);
    assert_eq!(
        body_501["message"],
        "Method 'GET /api2/json/foo' not implemented\n"
    );
    let (status, body_500) = body(
        sim.call(Method::GET, "/nodes/pve1/qemu/123/config", Auth::Token, &[])
            .await,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        body_500["message"],
        "Configuration file 'nodes/pve1/qemu-server/123.conf' does not exist\n"
    );
    let (status, _) = body(
        sim.call(Method::GET, "/nodes/nowhere/qemu", Auth::Token, &[])
            .await,
    )
    .await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn config_update_applies_and_digest_guards_it() {
    let sim = start().await;
    let config = sim
        .ok(Method::GET, "/nodes/pve2/qemu/9001/config", &[])
        .await;
    assert_eq!(config["cores"], 2);
    let digest = config["digest"].as_str().unwrap_or_default().to_owned();
    let keys = "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIK%20me%40example";
    let form = [
        ("memory", "4096"),
        ("sshkeys", keys),
        ("digest", &digest),
        ("delete", "vmgenid"),
    ];
    sim.ok(Method::PUT, "/nodes/pve2/qemu/9001/config", &form)
        .await;
    let stored = sim.handle.vm_config("pve2", 9001).unwrap_or_default();
    assert_eq!(stored.get("memory").map(String::as_str), Some("4096"));
    assert_eq!(stored.get("sshkeys").map(String::as_str), Some(keys));
    assert!(!stored.contains_key("vmgenid"));
    let stale = sim
        .call(
            Method::PUT,
            "/nodes/pve2/qemu/9001/config",
            Auth::Token,
            &[("cores", "3"), ("digest", &digest)],
        )
        .await;
    assert_eq!(stale.status(), 500);
}

#[tokio::test]
async fn nextid_refuses_a_taken_vmid() {
    let sim = start().await;
    assert_eq!(
        sim.ok(Method::GET, "/cluster/nextid", &[]).await,
        json!("100")
    );
    let (status, body) = body(
        sim.call(
            Method::GET,
            "/cluster/nextid",
            Auth::Token,
            &[("vmid", "9000")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"], json!({ "vmid": "VM 9000 already exists" }));
}

#[tokio::test]
async fn cluster_resources_have_pve_fields() {
    let sim = start().await;
    let vms = sim
        .ok(Method::GET, "/cluster/resources", &[("type", "vm")])
        .await;
    let template = vms
        .as_array()
        .and_then(|v| v.iter().find(|r| r["vmid"] == 9000))
        .cloned()
        .unwrap_or_default();
    assert_eq!(template["id"], "qemu/9000");
    assert_eq!(template["template"], 1);
    assert_eq!(template["node"], "pve1");
    let storage = sim
        .ok(Method::GET, "/cluster/resources", &[("type", "storage")])
        .await;
    assert!(
        storage
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r["id"] == "storage/pve2/local-lvm"))
    );
}

#[tokio::test]
async fn a_path_parameter_repeated_with_another_value_is_refused() {
    let sim = start().await;
    let path = "/nodes/pve1/qemu/9000/config";
    let response = sim
        .call(
            Method::PUT,
            path,
            Auth::Token,
            &[("vmid", "101"), ("cores", "4")],
        )
        .await;
    let (status, body) = body(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["vmid"],
        "duplicate parameter (already defined in URI) with conflicting values!"
    );
    // The same value again is no conflict.
    let response = sim
        .call(
            Method::PUT,
            path,
            Auth::Token,
            &[("vmid", "9000"), ("cores", "4")],
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn dual_stack_ipconfig_is_kept_and_a_bad_one_refused() {
    let sim = start().await;
    let ipconfig = "ip=192.0.2.10/24,gw=192.0.2.1,ip6=2001:db8::10/64,gw6=2001:db8::1";
    sim.ok(
        Method::PUT,
        "/nodes/pve1/qemu/9000/config",
        &[("ipconfig0", ipconfig)],
    )
    .await;
    let config = sim.handle.vm_config("pve1", 9000).unwrap_or_default();
    assert_eq!(config.get("ipconfig0").map(String::as_str), Some(ipconfig));
    let response = sim
        .call(
            Method::PUT,
            "/nodes/pve1/qemu/9000/config",
            Auth::Token,
            &[("ipconfig0", "ip=192.0.2.10,gw=192.0.2.1")],
        )
        .await;
    let (status, body) = body(response).await;
    assert_eq!(status, 400);
    assert!(
        body["errors"]["ipconfig0"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid format - ")),
        "{body}"
    );
}
