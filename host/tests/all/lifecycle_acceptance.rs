//! Issue 5's acceptance: billing webhooks provision, suspend, unsuspend and terminate VMs through
//! the real first-party plugins (billing-stripe, tunnel-cloudflare, dns-cloudflare,
//! cloudinit-lab) against the simulator's Proxmox and Cloudflare surfaces, with cloud-init
//! delivered as snippets; faults in every provisioning call; and a daemon killed mid-provision.

use crate::first_party::component;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use porthole::daemon::Daemon;
use porthole::store::services::{self, Service};
use porthole_sim::{Fault, FaultKind, SimConfig, SimHandle, Simulator, Times};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

pub(crate) const ZONE: &str = "lab.example.com";
const WEBHOOK_SECRET: &str = "whsec_acceptance";
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFbfeLpTI3BFgyc+ey3xuxyTBCsMQFmjO682+cyIDnYX ada@laptop";

/// Tasks end quickly and a failed step is retried within milliseconds, three attempts at most.
pub(crate) fn fast_sim() -> SimConfig {
    SimConfig {
        auth_failure_delay: Duration::from_millis(10),
        task_duration: Duration::from_millis(10),
        clone_duration: Duration::from_millis(40),
        backup_duration: Duration::from_millis(100),
        restore_duration: Duration::from_millis(300),
        ..SimConfig::default()
    }
}

/// The simulator with the provider's Cloudflare zone, its CA written to trust it by, and the
/// snippets directory cloud-init delivery writes to.
pub(crate) async fn simulator_with_cloudflare(dir: &Path) -> (SimHandle, PathBuf, PathBuf) {
    let sim = Simulator::start(fast_sim()).await.unwrap();
    sim.cloudflare_zone(ZONE);
    let ca_file = dir.join("sim-ca.pem");
    std::fs::write(&ca_file, sim.cert_pem()).unwrap();
    let snippets = dir.join("snippets");
    std::fs::create_dir(&snippets).unwrap();
    (sim, ca_file, snippets)
}

/// How the Cloudflare plugins reach the simulator: directly over HTTPS (trusting its
/// certificate), or through a [`FaultProxy`] that fails chosen calls.
pub(crate) enum CloudflareRoute<'a> {
    Direct { ca_file: &'a Path },
    Proxy(SocketAddr),
}

/// Everything the daemon under test is configured with, written as a real configuration file.
pub(crate) fn write_config(
    dir: &Path,
    addr: SocketAddr,
    sim: &SimHandle,
    route: &CloudflareRoute<'_>,
    snippets: &Path,
    lease_secs: u64,
) -> PathBuf {
    let cloudflare = sim.cloudflare_url();
    let (api_base, allowed_host, tls) = match route {
        CloudflareRoute::Direct { ca_file } => (
            cloudflare.to_string(),
            cloudflare.origin().ascii_serialization(),
            format!("tls = {{ ca_file = \"{}\" }}\n", ca_file.display()),
        ),
        CloudflareRoute::Proxy(proxy) => (
            format!("http://{proxy}{}", cloudflare.path()),
            format!("http://{proxy}"),
            String::new(),
        ),
    };
    let plugin = |package: &str, world: &str, extra: &str| {
        let (path, sha256) = component(package);
        format!(
            "\n[[plugins]]\nname = \"{package}\"\npath = \"{}\"\nsha256 = \"{sha256}\"\nworld = \"{world}\"\n{extra}",
            path.display()
        )
    };
    let cloudflare_plugin = |package: &str, world: &str| {
        plugin(
            package,
            world,
            &format!(
                "allowed_hosts = [\"{allowed_host}\"]\nallowed_addresses = [\"127.0.0.1\"]\n{tls}\
                 settings = {{ api_token = \"{}\", api_base = \"{api_base}\", account_id = \"{}\" }}\n",
                sim.cloudflare_token(),
                sim.cloudflare_account_id()
            ),
        )
    };
    let mut text = crate::first_party::simulator_config_head(dir, addr, sim);
    text += &format!(
        r#"
[lifecycle]
retry_initial_ms = 20
retry_max_ms = 100
max_attempts = 3
lease_secs = {lease_secs}
tunnel_plugin = "tunnel-cloudflare"
dns_plugin = "dns-cloudflare"
dns_zone = "{ZONE}"

[lifecycle.cloud_init]
delivery = "snippets"
dir = "{snippets}"
storage = "local"
"#,
        snippets = snippets.display(),
    );
    text += &plugin("cloudinit-lab", "cloud-init-template", "");
    text += &cloudflare_plugin("tunnel-cloudflare", "tunnel-provider");
    text += &cloudflare_plugin("dns-cloudflare", "dns-provider");
    text += &plugin(
        "billing-stripe",
        "billing-adapter",
        &format!(
            "settings = {{ webhook_secret = \"{WEBHOOK_SECRET}\", default_plan = \"small\", default_template = \"debian-12\" }}\n"
        ),
    );
    let path = dir.join("porthole.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A Stripe event as Stripe signs and sends it.
pub(crate) struct StripeEvent {
    body: Vec<u8>,
    signature: String,
}

impl StripeEvent {
    fn new(event: Value) -> Self {
        use hmac::{Hmac, Mac};
        let body = event.to_string().into_bytes();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&body);
        let signature = format!(
            "t={timestamp},v1={}",
            hex::encode(mac.finalize().into_bytes())
        );
        Self { body, signature }
    }

    /// A paid checkout for subscription `sub`, naming the VM `hostname`.
    pub(crate) fn checkout(event_id: &str, sub: &str, hostname: &str) -> Self {
        Self::new(json!({
            "id": event_id, "type": "checkout.session.completed",
            "data": { "object": {
                "id": format!("cs_{sub}"), "customer": format!("cus_{sub}"), "subscription": sub,
                "customer_details": { "email": format!("{sub}@example.com"), "name": "Ada" },
                "metadata": { "hostname": hostname, "ssh_keys": SSH_KEY }
            }}
        }))
    }

    fn invoice(event_id: &str, kind: &str, sub: &str) -> Self {
        Self::new(json!({
            "id": event_id, "type": kind,
            "data": { "object": { "id": format!("in_{event_id}"), "subscription": sub } }
        }))
    }

    fn subscription_deleted(event_id: &str, sub: &str) -> Self {
        Self::new(json!({
            "id": event_id, "type": "customer.subscription.deleted",
            "data": { "object": { "id": sub } }
        }))
    }

    pub(crate) async fn deliver(&self, http: &reqwest::Client, base: &str) -> StatusCode {
        http.post(format!("{base}/hooks/billing/billing-stripe"))
            .header("stripe-signature", &self.signature)
            .header("content-type", "application/json")
            .body(self.body.clone())
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// What is left of one service in the simulators.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Leftovers {
    vms: usize,
    tunnels: usize,
    dns_records: usize,
    snippets: usize,
}

impl Leftovers {
    const NONE: Leftovers = Leftovers {
        vms: 0,
        tunnels: 0,
        dns_records: 0,
        snippets: 0,
    };
    pub(crate) const ONE_OF_EACH: Leftovers = Leftovers {
        vms: 1,
        tunnels: 1,
        dns_records: 1,
        snippets: 1,
    };

    pub(crate) fn of(sim: &SimHandle, snippets: &Path, service_id: i64, hostname: &str) -> Self {
        Self {
            vms: vms_marked(sim, service_id).len(),
            tunnels: sim
                .cloudflare_tunnels()
                .iter()
                .filter(|t| !t.deleted && t.name.starts_with(&format!("porthole-{service_id}-")))
                .count(),
            dns_records: sim
                .cloudflare_dns_records(ZONE)
                .iter()
                .filter(|r| r.name == format!("{hostname}.{ZONE}"))
                .count(),
            snippets: usize::from(snippet_path(snippets, service_id).exists()),
        }
    }
}

fn snippet_path(snippets: &Path, service_id: i64) -> PathBuf {
    snippets.join(format!("porthole-service-{service_id}-user.yaml"))
}

/// The simulators hold exactly `services` live tunnels, DNS records and snippets, and made one
/// successful clone each: nothing orphaned, nothing made twice.
pub(crate) fn nothing_orphaned(sim: &SimHandle, snippets: &Path, services: usize, what: &str) {
    let live_tunnels = sim
        .cloudflare_tunnels()
        .iter()
        .filter(|t| !t.deleted)
        .count();
    assert_eq!(live_tunnels, services, "{what}: no orphan tunnel");
    assert_eq!(
        sim.cloudflare_dns_records(ZONE).len(),
        services,
        "{what}: no orphan DNS record"
    );
    assert_eq!(
        std::fs::read_dir(snippets).unwrap().count(),
        services,
        "{what}: no orphan snippet"
    );
    let clones = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/clone") && r.status == 200)
        .count();
    assert_eq!(clones, services, "{what}: one clone per service");
}

/// The VM ids in the simulator whose description carries the service's marker.
pub(crate) fn vms_marked(sim: &SimHandle, service_id: i64) -> Vec<u64> {
    let marker = format!("porthole-service:{service_id}");
    let state = sim.state_json();
    let mut found = Vec::new();
    collect_marked(&state, &marker, &mut found);
    found
}

fn collect_marked(value: &Value, marker: &str, found: &mut Vec<u64>) {
    match value {
        Value::Object(map) => {
            let described = map
                .get("config")
                .and_then(|c| c.get("description"))
                .and_then(Value::as_str)
                .is_some_and(|d| d.split_whitespace().any(|w| w == marker));
            if described && let Some(vmid) = map.get("vmid").and_then(Value::as_u64) {
                found.push(vmid);
            }
            map.values().for_each(|v| collect_marked(v, marker, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_marked(v, marker, found)),
        _ => {}
    }
}

/// A fault in the Cloudflare API, as the [`FaultProxy`] plays it.
struct CloudflareFault {
    method: Method,
    /// Matched against a part of the request path and query.
    part: &'static str,
    /// Matching calls let through before the fault starts firing.
    skip: u32,
    /// Firings left; `None`: always.
    remaining: Option<u32>,
    /// Forward the call, then answer 503 anyway: Cloudflare acted but the answer was lost.
    lost_answer: bool,
}

/// Plain HTTP in front of the simulator's Cloudflare API that answers chosen calls with a 503
/// (as Cloudflare's edge does now and then, before or after the call took effect) and forwards
/// everything else.
struct FaultProxy {
    addr: SocketAddr,
    faults: Arc<Mutex<Vec<CloudflareFault>>>,
    /// Calls failed since last asked.
    fired: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    faults: Arc<Mutex<Vec<CloudflareFault>>>,
    fired: Arc<AtomicUsize>,
}

impl FaultProxy {
    async fn start(sim: &SimHandle) -> Self {
        let certificate = reqwest::Certificate::from_pem(sim.cert_pem().as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(certificate)
            .build()
            .unwrap();
        let faults = Arc::new(Mutex::new(Vec::new()));
        let fired = Arc::new(AtomicUsize::new(0));
        let state = ProxyState {
            fired: fired.clone(),
            upstream: sim.cloudflare_url().origin().ascii_serialization(),
            client,
            faults: faults.clone(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            faults,
            fired,
        }
    }

    fn inject(&self, method: Method, part: &'static str, times: Option<u32>) {
        self.faults.lock().unwrap().push(CloudflareFault {
            method,
            part,
            skip: 0,
            remaining: times,
            lost_answer: false,
        });
    }

    /// Lets the first `skip` matching calls through, then answers every one with a 503.
    fn fail_after(&self, method: Method, part: &'static str, skip: u32) {
        self.faults.lock().unwrap().push(CloudflareFault {
            method,
            part,
            skip,
            remaining: None,
            lost_answer: false,
        });
    }

    /// Every matching call takes effect, and its caller gets a 503.
    fn lose_answers(&self, method: Method, part: &'static str) {
        self.faults.lock().unwrap().push(CloudflareFault {
            method,
            part,
            skip: 0,
            remaining: None,
            lost_answer: true,
        });
    }

    fn clear(&self) {
        self.faults.lock().unwrap().clear();
    }
}

async fn forward(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // `Some(lost_answer)` when a fault fires.
    let fire = {
        let mut faults = state.faults.lock().unwrap();
        let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let hit = faults
            .iter()
            .position(|f| f.method == method && target.contains(f.part));
        hit.and_then(|index| {
            if faults[index].skip > 0 {
                faults[index].skip -= 1;
                return None;
            }
            let lost_answer = faults[index].lost_answer;
            if let Some(left) = &mut faults[index].remaining {
                *left -= 1;
                if *left == 0 {
                    faults.remove(index);
                }
            }
            Some(lost_answer)
        })
    };
    let unavailable = || {
        state.fired.fetch_add(1, Ordering::SeqCst);
        let envelope = json!({ "success": false, "errors": [{ "code": 10001, "message": "service unavailable" }], "messages": [], "result": null });
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(envelope)).into_response()
    };
    if fire == Some(false) {
        return unavailable();
    }
    let target = format!(
        "{}{}",
        state.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut request = state.client.request(method, target).body(body);
    for name in ["authorization", "content-type"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(_) if fire == Some(true) => unavailable(),
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get("content-type").cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            if let Some(value) = content_type {
                response.headers_mut().insert("content-type", value);
            }
            response
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

/// The daemon in this process, on the simulator, configured like production.
struct Lab {
    daemon: Daemon,
    sim: SimHandle,
    proxy: Option<FaultProxy>,
    snippets: PathBuf,
    url: String,
    admin_token: String,
    http: reqwest::Client,
    _dir: TempDir,
}

impl Lab {
    async fn start(with_fault_proxy: bool) -> Self {
        let dir = TempDir::new().unwrap();
        let (sim, ca_file, snippets) = simulator_with_cloudflare(dir.path()).await;
        let proxy = match with_fault_proxy {
            true => Some(FaultProxy::start(&sim).await),
            false => None,
        };
        let route = match &proxy {
            Some(proxy) => CloudflareRoute::Proxy(proxy.addr),
            None => CloudflareRoute::Direct { ca_file: &ca_file },
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config_path = write_config(dir.path(), addr, &sim, &route, &snippets, 60);
        let config = porthole::config::load(&config_path).unwrap();
        let daemon = Daemon::start_on(config, listener).await.unwrap();
        porthole::admin::create_user(
            daemon.store(),
            "admin",
            "admin-password-1",
            porthole::store::users::Role::Admin,
        )
        .await
        .unwrap();
        let admin_token = porthole::admin::create_token(daemon.store(), "admin", "tests")
            .await
            .unwrap();
        Self {
            daemon,
            sim,
            proxy,
            snippets,
            url: format!("http://{addr}"),
            admin_token,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Delivers like Stripe: an answer of 503 (the plugin was busy or slow) is delivered again.
    async fn deliver(&self, event: &StripeEvent) {
        let mut status = event.deliver(&self.http, &self.url).await;
        for _ in 0..5 {
            if status != StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            status = event.deliver(&self.http, &self.url).await;
        }
        assert_eq!(status, StatusCode::OK, "the webhook was refused");
    }

    /// The service the billing system knows as `sub`.
    async fn service(&self, sub: &str) -> Service {
        // Billing references are kept scoped by the plugin that reported them.
        let reference = format!("billing-stripe:{sub}");
        let service = services::by_external_ref(self.daemon.store(), &reference)
            .await
            .unwrap();
        service.unwrap_or_else(|| panic!("no service for {sub}"))
    }

    async fn view(&self, service_id: i64) -> Value {
        self.http
            .get(format!("{}/api/v1/services/{service_id}", self.url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until every job of the service has finished, and returns the admin's view of it.
    async fn settled(&self, sub: &str) -> Value {
        let id = self.service(sub).await.id;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let view = self.view(id).await;
            let jobs = view["jobs"].as_array().cloned().unwrap_or_default();
            if !jobs.is_empty()
                && jobs
                    .iter()
                    .all(|j| !matches!(j["state"].as_str(), Some("pending" | "compensating")))
            {
                return view;
            }
            assert!(Instant::now() < deadline, "{sub} did not settle: {view}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn leftovers(&self, service_id: i64, hostname: &str) -> Leftovers {
        Leftovers::of(&self.sim, &self.snippets, service_id, hostname)
    }

    fn clones(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/clone"))
            .count()
    }

    async fn console(&self, service_id: i64) -> StatusCode {
        self.http
            .post(format!("{}/api/v1/vms/{service_id}/console", self.url))
            .bearer_auth(&self.admin_token)
            .json(&json!({ "kind": "vnc" }))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A terminal console on the service, open and working, watched for its close.
    async fn live_console(&self, service_id: i64) -> LiveConsole {
        let (terminal, closed) =
            crate::console::terminal_at(&self.url, &self.admin_token, service_id).await;
        LiveConsole::working(terminal, closed).await
    }

    /// Waits until the service's state is one of `states`; returns (about) when it changed.
    async fn turned(&self, service_id: i64, states: &[&str]) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = services::get(self.daemon.store(), service_id)
                .await
                .unwrap();
            if found.is_some_and(|s| states.contains(&s.state.as_str())) {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "service {service_id} never became {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn stop(self) {
        self.daemon.stop().await.unwrap();
        self.sim.shutdown().await;
    }
}

/// A console open in a browser, and when and how it was closed.
pub(crate) struct LiveConsole {
    _terminal: tokio::io::DuplexStream,
    closing: tokio::task::JoinHandle<(crate::console::Closed, Instant)>,
}

impl LiveConsole {
    /// Waits until the terminal echoes a line, then watches for its close.
    pub(crate) async fn working(
        mut terminal: tokio::io::DuplexStream,
        closed: tokio::sync::oneshot::Receiver<crate::console::Closed>,
    ) -> Self {
        let mut output = Vec::new();
        let echo = async {
            let line = "echo console-open\r";
            let message = format!("0:{}:{line}", line.len());
            terminal.write_all(message.as_bytes()).await.unwrap();
            let mut chunk = [0u8; 4096];
            while !String::from_utf8_lossy(&output).contains("\r\nconsole-open") {
                let n = terminal.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the terminal closed");
                output.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(20), echo)
            .await
            .expect("the console echoes a line");
        // Noted the moment it arrives, whatever the test is doing meanwhile.
        let closing = tokio::spawn(async move {
            let closed = closed.await.ok().flatten();
            (closed, Instant::now())
        });
        Self {
            _terminal: terminal,
            closing,
        }
    }

    /// The issue's requirement: a suspension or termination closes the VM's live consoles
    /// within 1 s of the state change, with the code and text that say which.
    pub(crate) async fn closed_within_a_second_of(
        self,
        changed_at: Instant,
        expected: (u16, &str),
    ) {
        let (closed, closed_at) = tokio::time::timeout(Duration::from_secs(20), self.closing)
            .await
            .expect("the console was not closed")
            .unwrap();
        let (code, reason) = closed.expect("the console ended without a close frame");
        assert_eq!((code, reason.as_str()), expected);
        let after = closed_at.saturating_duration_since(changed_at);
        assert!(
            after <= Duration::from_secs(1),
            "closed {after:?} after the change"
        );
    }
}

/// The connector token the simulator hands out for `tunnel`.
async fn connector_token(sim: &SimHandle, tunnel: &str) -> String {
    let certificate = reqwest::Certificate::from_pem(sim.cert_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(certificate)
        .build()
        .unwrap();
    let url = format!(
        "{}/accounts/{}/cfd_tunnel/{tunnel}/token",
        sim.cloudflare_url(),
        sim.cloudflare_account_id()
    );
    let answer: Value = client
        .get(url)
        .bearer_auth(sim.cloudflare_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["result"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_signed_checkout_delivered_three_times_becomes_one_running_vm_with_tunnel_dns_and_snippet()
 {
    let lab = Lab::start(false).await;
    let checkout = StripeEvent::checkout("evt_checkout_1", "sub_ada", "ada1");
    for _ in 0..3 {
        lab.deliver(&checkout).await;
    }
    let view = lab.settled("sub_ada").await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    assert_eq!(view["jobs"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(lab.clones(), 1, "three deliveries, one clone");

    let service = lab.service("sub_ada").await;
    let vmid = service.vmid.unwrap();
    assert_eq!(lab.sim.vm_status(vmid).as_deref(), Some("running"));
    assert_eq!(lab.leftovers(service.id, "ada1"), Leftovers::ONE_OF_EACH);

    // cicustom names the snippet, whose content is what cloudinit-lab rendered with the token.
    let config = lab.sim.vm_config("pve1", vmid).unwrap();
    let snippet = format!("porthole-service-{}-user.yaml", service.id);
    assert_eq!(config["cicustom"], format!("user=local:snippets/{snippet}"));
    // The snippet replaces what Proxmox would build from ciuser and sshkeys: neither is sent.
    assert!(
        !config.contains_key("ciuser") && !config.contains_key("sshkeys"),
        "{config:?}"
    );
    let user_data = std::fs::read_to_string(lab.snippets.join(&snippet)).unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    assert!(
        user_data.contains("cloudflared service install"),
        "{user_data}"
    );
    let tunnel = lab
        .sim
        .cloudflare_tunnels()
        .into_iter()
        .find(|t| !t.deleted)
        .unwrap();
    let token = connector_token(&lab.sim, &tunnel.id).await;
    assert!(user_data.contains(&token), "the tunnel token: {user_data}");

    // The tunnel routes the VM's hostname to its SSH, and DNS points that name at the tunnel.
    let ingress = &tunnel.config.as_ref().unwrap()["ingress"];
    assert_eq!(ingress[0]["hostname"], format!("ada1.{ZONE}"));
    let records = lab.sim.cloudflare_dns_records(ZONE);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].kind, "CNAME");
    assert_eq!(
        records[0].content,
        format!("{}.cfargotunnel.com", tunnel.id)
    );
    lab.stop().await;
}

#[tokio::test]
async fn a_paid_order_for_a_taken_hostname_gets_the_next_free_one() {
    let lab = Lab::start(false).await;
    for (event, sub) in [("evt_h1", "sub_h1"), ("evt_h2", "sub_h2")] {
        lab.deliver(&StripeEvent::checkout(event, sub, "shop"))
            .await;
    }
    for sub in ["sub_h1", "sub_h2"] {
        let view = lab.settled(sub).await;
        assert_eq!(view["service"]["state"], "active", "{view}");
    }
    let hostnames = [
        lab.service("sub_h1").await.hostname,
        lab.service("sub_h2").await.hostname,
    ];
    assert_eq!(hostnames, [Some("shop".into()), Some("shop-2".into())]);
    lab.stop().await;
}

#[tokio::test]
async fn payment_failure_suspends_payment_resumes_and_cancellation_removes_everything() {
    let lab = Lab::start(false).await;
    lab.deliver(&StripeEvent::checkout("evt_1", "sub_bo", "bo1"))
        .await;
    lab.settled("sub_bo").await;
    let service = lab.service("sub_bo").await;
    let vmid = service.vmid.unwrap();
    assert_eq!(lab.console(service.id).await, StatusCode::CREATED);

    let console = lab.live_console(service.id).await;
    lab.deliver(&StripeEvent::invoice(
        "evt_2",
        "invoice.payment_failed",
        "sub_bo",
    ))
    .await;
    let suspended_at = lab.turned(service.id, &["suspended"]).await;
    console
        .closed_within_a_second_of(suspended_at, (4003, "the VM is suspended"))
        .await;
    let view = lab.settled("sub_bo").await;
    assert_eq!(view["service"]["state"], "suspended", "{view}");
    assert_eq!(lab.sim.vm_status(vmid).as_deref(), Some("stopped"));
    assert_eq!(lab.console(service.id).await, StatusCode::CONFLICT);

    lab.deliver(&StripeEvent::invoice("evt_3", "invoice.paid", "sub_bo"))
        .await;
    let view = lab.settled("sub_bo").await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    assert_eq!(lab.sim.vm_status(vmid).as_deref(), Some("running"));
    assert_eq!(lab.console(service.id).await, StatusCode::CREATED);

    let console = lab.live_console(service.id).await;
    lab.deliver(&StripeEvent::subscription_deleted("evt_4", "sub_bo"))
        .await;
    // Terminating may pass before a poll sees it; terminated is later, so no earlier.
    let terminating_at = lab.turned(service.id, &["terminating", "terminated"]).await;
    console
        .closed_within_a_second_of(terminating_at, (4005, "the VM was terminated"))
        .await;
    let view = lab.settled("sub_bo").await;
    assert_eq!(view["service"]["state"], "terminated", "{view}");
    assert_eq!(lab.sim.vm_status(vmid), None, "the VM is destroyed");
    assert_eq!(lab.leftovers(service.id, "bo1"), Leftovers::NONE);
    assert!(lab.sim.cloudflare_dns_records(ZONE).is_empty());
    assert!(lab.sim.cloudflare_tunnels().iter().all(|t| t.deleted));
    lab.stop().await;
}

/// Where a fault is played.
#[derive(Clone)]
enum Target {
    Proxmox(&'static str, &'static str),
    Cloudflare(Method, &'static str),
}

/// One row of the fault matrix: the call that fails, and the step it fails.
struct Row {
    target: Target,
    step: &'static str,
}

fn matrix() -> Vec<Row> {
    use Target::{Cloudflare, Proxmox};
    let row = |target, step| Row { target, step };
    vec![
        row(Proxmox("POST", "/nodes/{node}/qemu/{vmid}/clone"), "clone"),
        row(
            Proxmox("PUT", "/nodes/{node}/qemu/{vmid}/config"),
            "configure",
        ),
        row(
            Proxmox("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
            "configure",
        ),
        row(Cloudflare(Method::POST, "/cfd_tunnel"), "tunnel"),
        row(Cloudflare(Method::PUT, "/configurations"), "tunnel"),
        row(Cloudflare(Method::POST, "/dns_records"), "dns"),
        row(Cloudflare(Method::GET, "/token"), "tunnel"),
        row(
            Proxmox("POST", "/nodes/{node}/qemu/{vmid}/status/start"),
            "start_vm",
        ),
        row(
            Proxmox("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
            "start_vm",
        ),
    ]
}

impl Lab {
    fn inject(&self, target: &Target, times: Times) {
        match target {
            Target::Proxmox(method, path) => self.sim.inject(Fault {
                method: Some((*method).into()),
                path: (*path).into(),
                kind: FaultKind::Status {
                    code: 503,
                    message: "service unavailable".into(),
                },
                times,
            }),
            Target::Cloudflare(method, suffix) => {
                let count = match times {
                    Times::ONCE => Some(1),
                    _ => None,
                };
                let proxy = self.proxy.as_ref().unwrap();
                proxy.inject(method.clone(), suffix, count);
            }
        }
    }

    /// How many calls the fault has failed so far.
    fn fired(&self, target: &Target) -> usize {
        match target {
            Target::Proxmox(method, path) => {
                let suffix = path.rsplit_once("{vmid}").map_or(*path, |(_, s)| s);
                self.sim
                    .requests()
                    .iter()
                    .filter(|r| r.method == *method && r.path.ends_with(suffix) && r.status == 503)
                    .count()
            }
            Target::Cloudflare(..) => {
                let proxy = self.proxy.as_ref().unwrap();
                proxy.fired.swap(0, Ordering::SeqCst)
            }
        }
    }

    fn clear_faults(&self) {
        self.sim.clear_requests();
        self.sim.clear_faults();
        if let Some(proxy) = &self.proxy {
            proxy.clear();
        }
    }
}

/// `(step, status)` of each entry of the job history.
fn history(view: &Value) -> Vec<(String, String)> {
    view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_provisioning_call_failing_once_is_retried_and_the_vm_still_comes_up() {
    let lab = Lab::start(true).await;
    for (n, row) in matrix().iter().enumerate() {
        let (sub, host) = (format!("sub_retry{n}"), format!("retry{n}"));
        lab.inject(&row.target, Times::ONCE);
        lab.deliver(&StripeEvent::checkout(&format!("evt_r{n}"), &sub, &host))
            .await;
        let view = lab.settled(&sub).await;
        assert_eq!(view["service"]["state"], "active", "{}: {view}", row.step);
        // The Proxmox client retries idempotent calls itself; the job retries the rest.
        assert_eq!(
            lab.fired(&row.target),
            1,
            "{}: the fault was played",
            row.step
        );
        let id = lab.service(&sub).await.id;
        assert_eq!(
            lab.leftovers(id, &host),
            Leftovers::ONE_OF_EACH,
            "{}",
            row.step
        );
        lab.clear_faults();
    }
    lab.stop().await;
}

#[tokio::test]
async fn a_step_failing_for_good_rolls_back_everything_created_before_it() {
    let lab = Lab::start(true).await;
    for (n, row) in matrix().into_iter().enumerate() {
        let (sub, host) = (format!("sub_doom{n}"), format!("doom{n}"));
        lab.inject(&row.target, Times::ALWAYS);
        lab.deliver(&StripeEvent::checkout(&format!("evt_d{n}"), &sub, &host))
            .await;
        let view = lab.settled(&sub).await;
        let step = row.step;
        assert_eq!(view["service"]["state"], "failed", "{step}: {view}");
        assert_eq!(view["jobs"][0]["state"], "rolled_back", "{step}: {view}");
        assert!(
            history(&view).contains(&(step.to_owned(), "failed".to_owned())),
            "{step}: {view}"
        );
        let id = lab.service(&sub).await.id;
        assert_eq!(lab.leftovers(id, &host), Leftovers::NONE, "{step}: {view}");
        lab.clear_faults();
    }
    assert!(lab.sim.cloudflare_dns_records(ZONE).is_empty());
    assert!(lab.sim.cloudflare_tunnels().iter().all(|t| t.deleted));
    lab.stop().await;
}

#[tokio::test]
async fn a_dns_record_whose_answer_was_lost_is_found_and_removed_by_the_rollback() {
    let lab = Lab::start(true).await;
    let proxy = lab.proxy.as_ref().unwrap();
    // The record is created but the engine never hears its id, and every later lookup of it by
    // name fails, so the provision rolls back with nothing recorded for the record.
    proxy.lose_answers(Method::POST, "/dns_records");
    proxy.fail_after(Method::GET, "/dns_records?type=", 1);
    lab.deliver(&StripeEvent::checkout("evt_lost", "sub_lost", "lost1"))
        .await;
    let view = lab.settled("sub_lost").await;
    assert_eq!(view["service"]["state"], "failed", "{view}");
    assert!(
        history(&view).contains(&("dns".to_owned(), "failed".to_owned())),
        "{view}"
    );
    let id = lab.service("sub_lost").await.id;
    assert_eq!(lab.leftovers(id, "lost1"), Leftovers::NONE, "{view}");
    assert!(lab.sim.cloudflare_dns_records(ZONE).is_empty());
    lab.stop().await;
}

/// The daemon as its own process (`porthole serve`), so it can be killed like a real one.
pub(crate) struct ChildDaemon {
    child: std::process::Child,
}

impl ChildDaemon {
    pub(crate) async fn spawn(config: &Path, log: &Path, url: &str) -> Self {
        Self::spawn_with(config, log, url, reqwest::Client::new()).await
    }

    /// Like [`ChildDaemon::spawn`], asking whether it is up with `http` (one that trusts the
    /// daemon's own certificate, say).
    pub(crate) async fn spawn_with(
        config: &Path,
        log: &Path,
        url: &str,
        http: reqwest::Client,
    ) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_porthole"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut daemon = Self { child };
        daemon.ready(url, http).await;
        daemon
    }

    /// Waits until the daemon answers (it is still loading plugins before that).
    async fn ready(&mut self, url: &str, http: reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(answer) = http.get(format!("{url}/healthz")).send().await
                && answer.status().is_success()
            {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the daemon exited"
            );
            assert!(Instant::now() < deadline, "the daemon did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    /// SIGKILL: no shutdown, no flushing, whatever step it was in.
    pub(crate) fn kill(self) {
        drop(self);
    }
}

/// A test that fails half-way must not leave its daemons running.
impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's SQLite database, opened beside it for reading.
pub(crate) fn read_only(database: &Path) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// `(unfinished, succeeded, other)` job counts, read from the daemon's database.
fn job_counts(database: &Path) -> (i64, i64, i64) {
    read_only(database)
        .query_row(
            "SELECT count(*) FILTER (WHERE state IN ('pending', 'compensating')),
                count(*) FILTER (WHERE state = 'succeeded' AND kind = 'provision'),
                count(*) FILTER (WHERE state NOT IN ('pending', 'compensating', 'succeeded'))
         FROM jobs",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap()
}

/// `(service id, hostname)` of every service, from the daemon's database.
fn services_in(database: &Path) -> Vec<(i64, String, String)> {
    let conn = read_only(database);
    let mut statement = conn
        .prepare("SELECT id, hostname, state FROM services ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Invariant 5: a daemon killed at any instant never creates a second VM and never orphans
/// anything. Each run orders two VMs, SIGKILLs the daemon at a random moment of their
/// provisioning, restarts it, and checks that every job finished exactly once.
/// `PORTHOLE_CRASH_RUNS` sets the number of runs (20).
#[tokio::test]
async fn a_daemon_killed_at_random_moments_while_provisioning_finishes_every_job_exactly_once() {
    let runs: usize = std::env::var("PORTHOLE_CRASH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let dir = TempDir::new().unwrap();
    let (sim, ca_file, snippets) = simulator_with_cloudflare(dir.path()).await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let route = CloudflareRoute::Direct { ca_file: &ca_file };
    // Leases far longer than the test: the restarted daemon must see that their holder died
    // on this host and take the jobs back at once, not wait for the leases to run out.
    let config = write_config(dir.path(), addr, &sim, &route, &snippets, 600);
    let (database, log) = (
        dir.path().join("porthole.db"),
        dir.path().join("daemon.log"),
    );
    let url = format!("http://{addr}");
    let http = reqwest::Client::new();
    let started = Instant::now();

    for run in 0..runs {
        let daemon = ChildDaemon::spawn(&config, &log, &url).await;
        for k in 0..2 {
            let event = StripeEvent::checkout(
                &format!("evt_crash_{run}_{k}"),
                &format!("sub_crash_{run}_{k}"),
                &format!("crash{run}x{k}"),
            );
            assert_eq!(event.deliver(&http, &url).await, StatusCode::OK);
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..400))).await;
        daemon.kill();

        let daemon = ChildDaemon::spawn(&config, &log, &url).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while job_counts(&database).0 > 0 {
            assert!(Instant::now() < deadline, "run {run}: jobs did not finish");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        daemon.kill();

        let services = services_in(&database);
        assert_eq!(
            services.len(),
            2 * (run + 1),
            "run {run}: one service per order"
        );
        assert_eq!(
            job_counts(&database),
            (0, services.len() as i64, 0),
            "run {run}: every provision succeeded"
        );
        for (id, hostname, state) in &services {
            assert_eq!(state, "active", "run {run}: service {id}");
            assert_eq!(
                Leftovers::of(&sim, &snippets, *id, hostname),
                Leftovers::ONE_OF_EACH,
                "run {run}: service {id}"
            );
        }
        nothing_orphaned(&sim, &snippets, services.len(), &format!("run {run}"));
    }
    eprintln!("{runs} crash runs took {:?}", started.elapsed());
    sim.shutdown().await;
}

/// A call on the simulator's Proxmox API made behind the daemon's back (an operator in the
/// Proxmox GUI); the task it starts is waited for.
pub(crate) async fn behind_our_back(sim: &SimHandle, method: Method, path: &str) {
    let certificate = reqwest::Certificate::from_pem(sim.cert_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(certificate)
        .build()
        .unwrap();
    let url = format!("{}api2/json{path}", sim.api_url());
    let auth = format!("PVEAPIToken={}={}", sim.token_id(), sim.token_secret());
    let answer = client
        .request(method, url)
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn the_reconciler_reports_drift_and_changes_nothing() {
    let lab = Lab::start(false).await;
    for (sub, host) in [
        ("sub_a", "drift-a"),
        ("sub_b", "drift-b"),
        ("sub_c", "drift-c"),
    ] {
        lab.deliver(&StripeEvent::checkout(&format!("evt_{sub}"), sub, host))
            .await;
        lab.settled(sub).await;
    }
    lab.deliver(&StripeEvent::invoice(
        "evt_c2",
        "invoice.payment_failed",
        "sub_c",
    ))
    .await;
    lab.settled("sub_c").await;
    let (a, b, c) = (
        lab.service("sub_a").await,
        lab.service("sub_b").await,
        lab.service("sub_c").await,
    );
    let vmid = |s: &Service| s.vmid.unwrap();
    let admin = |request: reqwest::RequestBuilder| request.bearer_auth(&lab.admin_token);

    // An operator stops A, destroys B, starts suspended C, and leaves a stray marked VM.
    let qemu = |id: u32, rest: &str| format!("/nodes/pve1/qemu/{id}{rest}");
    behind_our_back(&lab.sim, Method::POST, &qemu(vmid(&a), "/status/stop")).await;
    behind_our_back(&lab.sim, Method::POST, &qemu(vmid(&b), "/status/stop")).await;
    behind_our_back(&lab.sim, Method::DELETE, &qemu(vmid(&b), "")).await;
    behind_our_back(&lab.sim, Method::POST, &qemu(vmid(&c), "/status/start")).await;
    lab.sim
        .add_vm(porthole_sim::VmSeed {
            node: "pve2".into(),
            vmid: 950,
            name: "stray".into(),
            tags: Some("porthole".into()),
            description: Some("porthole-service:999".into()),
            ..porthole_sim::VmSeed::default()
        })
        .unwrap();
    lab.sim.clear_requests();

    let report: Value = admin(lab.http.post(format!("{}/api/v1/drift", lab.url)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let drift = report["drift"].as_array().unwrap();
    let has = |expected: Value| {
        drift.iter().any(|d| {
            expected
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| &d[k] == v)
        })
    };
    assert!(
        has(
            json!({"kind": "power_mismatch", "service_id": a.id, "expected": "running", "actual": "stopped"})
        ),
        "{report}"
    );
    assert!(
        has(json!({"kind": "missing_vm", "service_id": b.id})),
        "{report}"
    );
    assert!(
        has(
            json!({"kind": "power_mismatch", "service_id": c.id, "expected": "stopped", "actual": "running"})
        ),
        "{report}"
    );
    assert!(
        has(json!({"kind": "unknown_vm", "vmid": 950, "marker_service": 999})),
        "{report}"
    );
    assert_eq!(drift.len(), 4, "{report}");
    assert!(report["checked_at"].is_i64(), "{report}");

    let last: Value = admin(lab.http.get(format!("{}/api/v1/drift", lab.url)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last, report, "the last report is kept");
    let changes: Vec<_> = lab
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(changes.is_empty(), "the reconciler only reads: {changes:?}");
    assert_eq!(lab.sim.vm_status(950).as_deref(), Some("stopped"));
    lab.stop().await;
}
