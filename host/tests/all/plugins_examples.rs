//! The plugin examples (`examples/plugins/`, built by `cargo xtask examples`) loaded into the real
//! daemon: Paddle-signed webhooks handled by the Python billing adapter activate and suspend a
//! service, whose provisioning publishes its DNS record through the JavaScript DNS provider into
//! a real PowerDNS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use porthole::daemon::Daemon;
use porthole::store::services;
use porthole_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;

use crate::first_party::plugin_entry;
use crate::plugins_first_party::PowerDns;

const ZONE: &str = "lab.example.test";
const PADDLE_SECRET: &str = "pdl_ntfset_end_to_end";

/// An example's built component and its SHA-256.
fn example(dir: &str, file: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/plugins")
        .join(dir)
        .join(file);
    crate::first_party::built(path, "cargo xtask examples")
}

/// A Paddle Billing notification, signed as Paddle signs it.
fn paddle(event_id: &str, kind: &str, data: Value) -> (Vec<u8>, String) {
    use hmac::{Hmac, Mac};
    let body = json!({"event_id": event_id, "event_type": kind, "data": data})
        .to_string()
        .into_bytes();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(PADDLE_SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}:").as_bytes());
    mac.update(&body);
    let signature = format!("ts={ts};h1={}", hex::encode(mac.finalize().into_bytes()));
    (body, signature)
}

fn config(
    dir: &Path,
    addr: std::net::SocketAddr,
    sim: &porthole_sim::SimHandle,
    pdns: &PowerDns,
) -> String {
    let ca_file = dir.join("sim-ca.pem");
    std::fs::write(&ca_file, sim.cert_pem()).unwrap();
    let snippets = dir.join("snippets");
    std::fs::create_dir(&snippets).unwrap();
    let cloudflare = sim.cloudflare_url();
    let (js, js_sha) = example("js-dns-powerdns", "dist/js-dns-powerdns.wasm");
    let (py, py_sha) = example("python-billing-paddle", "dist/python-billing-paddle.wasm");
    let (tunnel, tunnel_sha) = crate::first_party::component("tunnel-cloudflare");
    let mut text = crate::first_party::simulator_config_head(dir, addr, sim);
    text += &format!(
        r#"
[lifecycle]
retry_initial_ms = 20
retry_max_ms = 100
max_attempts = 3
tunnel_plugin = "tunnel-cloudflare"
dns_plugin = "js-dns-powerdns"
dns_zone = "{ZONE}"

[lifecycle.cloud_init]
delivery = "snippets"
dir = "{snippets}"
storage = "local"

[[plugins]]
name = "js-dns-powerdns"
world = "dns-provider"
path = "{js}"
sha256 = "{js_sha}"
allowed_hosts = ["{pdns_api}"]
allowed_addresses = ["127.0.0.1"]
settings = {{ api_url = "{pdns_api}", api_key = "{pdns_key}" }}

[[plugins]]
name = "python-billing-paddle"
world = "billing-adapter"
path = "{py}"
sha256 = "{py_sha}"
settings = {{ webhook_secret = "{PADDLE_SECRET}" }}

[[plugins]]
name = "tunnel-cloudflare"
world = "tunnel-provider"
path = "{tunnel}"
sha256 = "{tunnel_sha}"
allowed_hosts = ["{cloudflare_origin}"]
allowed_addresses = ["127.0.0.1"]
tls = {{ ca_file = "{ca_file}" }}
settings = {{ api_token = "{cf_token}", api_base = "{cloudflare}", account_id = "{cf_account}" }}
"#,
        snippets = snippets.display(),
        js = js.display(),
        py = py.display(),
        pdns_api = pdns.api_url,
        pdns_key = pdns.api_key,
        tunnel = tunnel.display(),
        cloudflare_origin = cloudflare.origin().ascii_serialization(),
        ca_file = ca_file.display(),
        cf_token = sim.cloudflare_token(),
        cf_account = sim.cloudflare_account_id(),
    );
    text += &plugin_entry("cloudinit-lab", "cloud-init-template");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn paddle_webhooks_through_the_python_example_provision_with_dns_from_the_js_example() {
    let pdns = PowerDns::start().await;
    pdns.create_zone(ZONE).await;
    let sim = Simulator::start(SimConfig {
        task_duration: Duration::from_millis(10),
        clone_duration: Duration::from_millis(40),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    sim.cloudflare_zone(ZONE);
    let dir = TempDir::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let path = dir.path().join("porthole.toml");
    std::fs::write(&path, config(dir.path(), addr, &sim, &pdns)).unwrap();
    let daemon = Daemon::start_on(porthole::config::load(&path).unwrap(), listener)
        .await
        .unwrap();

    let http = reqwest::Client::new();
    let deliver = |(body, signature): (Vec<u8>, String)| {
        http.post(format!("http://{addr}/hooks/billing/python-billing-paddle"))
            .header("paddle-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let activated = paddle(
        "evt_01",
        "subscription.activated",
        json!({"id": "sub_01", "customer_id": "ctm_01", "custom_data": {
            "email": "ada@example.com", "name": "Ada", "plan": "small",
            "template": "debian-12", "hostname": "ada1"}}),
    );
    let answer = deliver(activated).await.unwrap();
    assert_eq!(
        answer.status(),
        200,
        "{}",
        answer.text().await.unwrap_or_default()
    );

    let state = |reference: &'static str| {
        let store = daemon.store().clone();
        async move {
            services::by_external_ref(&store, reference)
                .await
                .unwrap()
                .map(|s| (s.state, s.vmid))
        }
    };
    let reference = "python-billing-paddle:sub_01";
    let until = |wanted: &'static str| {
        let state = &state;
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let now = state(reference).await;
                if now.as_ref().is_some_and(|(s, _)| s.as_str() == wanted) {
                    return now;
                }
                assert!(Instant::now() < deadline, "never {wanted}: {now:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (_, vmid) = until("active").await.unwrap();
    let vmid = vmid.unwrap();
    assert_eq!(sim.vm_status(vmid).as_deref(), Some("running"));
    // The tunnel's CNAME, written by the JavaScript plugin, served by PowerDNS.
    let tunnel = sim
        .cloudflare_tunnels()
        .into_iter()
        .find(|t| !t.deleted)
        .unwrap();
    assert_eq!(
        pdns.dig(&format!("ada1.{ZONE}"), "CNAME"),
        format!("{}.cfargotunnel.com.", tunnel.id)
    );

    let answer = deliver(paddle(
        "evt_02",
        "subscription.paused",
        json!({"id": "sub_01"}),
    ))
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    until("suspended").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.vm_status(vmid).as_deref() != Some("stopped") {
        assert!(Instant::now() < deadline, "the suspended VM still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A forged notification changes nothing.
    let (body, _) = paddle("evt_03", "subscription.resumed", json!({"id": "sub_01"}));
    let forged = (body, format!("ts=1;h1={}", "0".repeat(64)));
    assert_eq!(deliver(forged).await.unwrap().status(), 400);
    daemon.stop().await.unwrap();
    sim.shutdown().await;
}
