//! The first-party plugins (`plugins/`, built by `cargo xtask plugins`) run through the daemon's
//! own plugin runtime, against the simulator's Cloudflare surface and a real PowerDNS server.
//! Nothing is skipped: a missing component, `pdns_server` or `dig` fails with what to install.

use crate::first_party::component;
use porthole::config::{PluginLimits, PluginSpec, PluginWorld, Secret};
use porthole::plugins::{
    BillingEvent, CallError, DnsRecord, PluginRuntime, PtrRecord, RecordKind, RenderContext,
    TunnelSpec, WebhookRequest, check_file,
};
use porthole_sim::{SimConfig, SimHandle, Simulator};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What a plugin manifest says, minus the file: world, reachable origins and settings.
struct Manifest<'a> {
    package: &'a str,
    world: PluginWorld,
    allowed_hosts: Vec<url::Url>,
    ca_file: Option<PathBuf>,
    settings: Vec<(&'a str, String)>,
}

impl Manifest<'_> {
    fn resolve(self) -> PluginSpec {
        let (path, sha256) = component(self.package);
        // Only loopback is listed, and only because the test's servers live there.
        let allowed_addresses = if self.allowed_hosts.is_empty() {
            vec![]
        } else {
            vec![LOOPBACK]
        };
        PluginSpec {
            name: self.package.to_owned(),
            world: self.world,
            path,
            sha256,
            allowed_hosts: self.allowed_hosts,
            allowed_addresses,
            ca_file: self.ca_file,
            limits: PluginLimits::default(),
            settings: self
                .settings
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Secret::new(v)))
                .collect(),
        }
    }
}

/// A runtime with a database (for `kv`) holding exactly `plugins`.
async fn runtime(dir: &TempDir, plugins: Vec<Manifest<'_>>) -> PluginRuntime {
    let database = porthole::store::Store::open(&dir.path().join("porthole.db"))
        .await
        .unwrap();
    let options = crate::plugins_isolation::isolated(porthole::plugins::backed_by(&database));
    let runtime = PluginRuntime::new(options).unwrap();
    let resolved: Vec<PluginSpec> = plugins.into_iter().map(Manifest::resolve).collect();
    runtime.load_all(&resolved).await;
    for status in runtime.status() {
        assert_eq!(
            status.state,
            porthole::plugins::PluginState::Loaded,
            "{} was not loaded",
            status.name
        );
    }
    runtime
}

/// The simulator with its Cloudflare surface, and a CA file trusting its certificate.
async fn cloudflare_sim(dir: &TempDir) -> (SimHandle, PathBuf) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let ca = dir.path().join("sim-ca.pem");
    std::fs::write(&ca, sim.cert_pem()).unwrap();
    (sim, ca)
}

fn origin(url: &url::Url) -> url::Url {
    url::Url::parse(&url.origin().ascii_serialization()).unwrap()
}

fn cloudflare_manifest<'a>(
    package: &'a str,
    world: PluginWorld,
    sim: &SimHandle,
    ca: &Path,
) -> Manifest<'a> {
    Manifest {
        package,
        world,
        allowed_hosts: vec![origin(&sim.cloudflare_url())],
        ca_file: Some(ca.to_owned()),
        settings: vec![
            ("api_token", sim.cloudflare_token()),
            ("api_base", sim.cloudflare_url().to_string()),
            ("account_id", sim.cloudflare_account_id()),
        ],
    }
}

#[tokio::test]
async fn first_party_plugins_pass_plugin_check() {
    let expected = [
        ("cloudinit-basic", PluginWorld::CloudInitTemplate),
        ("cloudinit-lab", PluginWorld::CloudInitTemplate),
        ("dns-cloudflare", PluginWorld::DnsProvider),
        ("dns-powerdns", PluginWorld::DnsProvider),
        ("tunnel-cloudflare", PluginWorld::TunnelProvider),
        ("billing-stripe", PluginWorld::BillingAdapter),
    ];
    for (package, world) in expected {
        let (inspection, verdict) = check_file(&component(package).0, None).unwrap();
        assert_eq!(
            verdict.ok(),
            Some(world),
            "{package}: {:?}",
            inspection.imports
        );
        assert_eq!(inspection.world, Some(world), "{package}");
    }
}

fn render_context(tunnel_token: Option<&str>) -> RenderContext {
    RenderContext {
        hostname: "vm42".into(),
        fqdn: "vm42.lab.example.com".into(),
        username: "alice".into(),
        ssh_keys: vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyDataForTests alice@laptop".into(),
        ],
        password_hash: Some("$6$saltsalt$0123456789abcdefghijABCDEFGHIJ./0123456789".into()),
        tunnel_token: tunnel_token.map(str::to_owned),
        plan: porthole::plugins::PlanSize {
            cores: 2,
            memory_mib: 2048,
            disk_gib: 20,
        },
        os: "debian-12".into(),
        extra: vec![("packages".into(), "htop".into())],
    }
}

#[tokio::test]
async fn cloud_init_templates_render_through_the_runtime() {
    let dir = TempDir::new().unwrap();
    let template = |package| Manifest {
        package,
        world: PluginWorld::CloudInitTemplate,
        allowed_hosts: vec![],
        ca_file: None,
        settings: vec![("packages", "curl".into())],
    };
    let runtime = runtime(
        &dir,
        vec![template("cloudinit-basic"), template("cloudinit-lab")],
    )
    .await;
    let basic = runtime
        .cloud_init_template("cloudinit-basic")
        .render(&render_context(None))
        .await
        .unwrap();
    assert!(
        basic.user_data.starts_with("#cloud-config\n"),
        "{}",
        basic.user_data
    );
    assert!(
        basic.user_data.contains("- \"htop\""),
        "{}",
        basic.user_data
    );
    let lab = runtime
        .cloud_init_template("cloudinit-lab")
        .render(&render_context(Some("eyJhIjoiYSJ9")))
        .await
        .unwrap();
    assert!(lab.user_data.contains("cloudflared service install"));
    for user_data in [&basic.user_data, &lab.user_data] {
        cloud_init_schema(dir.path(), user_data);
    }
    let refused = runtime
        .cloud_init_template("cloudinit-lab")
        .render(&render_context(None))
        .await;
    assert!(refused.is_err(), "the lab template needs a tunnel token");
}

/// `cloud-init schema --config-file`, which Debian's `cloud-init` package provides.
fn cloud_init_schema(dir: &Path, user_data: &str) {
    let file = dir.join("user-data.yaml");
    std::fs::write(&file, user_data).unwrap();
    let output = Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&file)
        .output()
        .unwrap_or_else(|err| {
            panic!("cloud-init is not installed ({err}): apt-get install -y cloud-init")
        });
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn a_record(name: &str, content: &str) -> DnsRecord {
    DnsRecord {
        name: name.into(),
        kind: RecordKind::A,
        content: content.into(),
        ttl: 300,
        proxied: false,
    }
}

#[tokio::test]
async fn dns_cloudflare_manages_records_in_the_simulator() {
    let dir = TempDir::new().unwrap();
    let (sim, ca) = cloudflare_sim(&dir).await;
    sim.cloudflare_zone("lab.example.com");
    let manifest = cloudflare_manifest("dns-cloudflare", PluginWorld::DnsProvider, &sim, &ca);
    let runtime = runtime(&dir, vec![manifest]).await;
    let dns = runtime.dns_provider("dns-cloudflare");

    let id = dns
        .upsert_record(
            "lab.example.com",
            &a_record("vm1.lab.example.com", "192.0.2.1"),
        )
        .await
        .unwrap();
    let again = dns
        .upsert_record(
            "lab.example.com",
            &a_record("vm1.lab.example.com", "192.0.2.1"),
        )
        .await
        .unwrap();
    let moved = dns
        .upsert_record(
            "lab.example.com",
            &a_record("vm1.lab.example.com", "192.0.2.2"),
        )
        .await
        .unwrap();
    assert_eq!(
        (&again, &moved),
        (&id, &id),
        "an upsert updates the record in place"
    );
    let stored = sim.cloudflare_dns_records("lab.example.com");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (stored[0].id.as_str(), stored[0].content.as_str()),
        (id.as_str(), "192.0.2.2")
    );

    let listed = dns.list_records("lab.example.com").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    dns.delete_record("lab.example.com", &id).await.unwrap();
    dns.delete_record("lab.example.com", &id).await.unwrap();
    assert!(sim.cloudflare_dns_records("lab.example.com").is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn tunnel_cloudflare_creates_and_deletes_tunnels_in_the_simulator() {
    let dir = TempDir::new().unwrap();
    let (sim, ca) = cloudflare_sim(&dir).await;
    let manifest = cloudflare_manifest("tunnel-cloudflare", PluginWorld::TunnelProvider, &sim, &ca);
    let runtime = runtime(&dir, vec![manifest]).await;
    let tunnels = runtime.tunnel_provider("tunnel-cloudflare");
    let spec = TunnelSpec {
        idempotency_key: "svc-42".into(),
        name: "porthole-svc-42".into(),
        hostnames: vec!["ssh-vm42.lab.example.com".into()],
        http_service: None,
    };

    let info = tunnels.create_tunnel(&spec).await.unwrap();
    let again = tunnels.create_tunnel(&spec).await.unwrap();
    assert_eq!(
        again.id, info.id,
        "the same idempotency key reuses the tunnel"
    );
    assert!(!info.connector_token.is_empty());
    assert_eq!(info.dns_records.len(), 1);
    assert_eq!(info.dns_records[0].kind, RecordKind::Cname);
    assert_eq!(
        info.dns_records[0].content,
        format!("{}.cfargotunnel.com", info.id)
    );
    assert!(info.dns_records[0].proxied);
    let live: Vec<_> = sim
        .cloudflare_tunnels()
        .into_iter()
        .filter(|t| !t.deleted)
        .collect();
    assert_eq!(live.len(), 1);
    let ingress = &live[0].config.as_ref().unwrap()["ingress"];
    assert_eq!(ingress[0]["service"], "ssh://localhost:22");
    assert_eq!(ingress[1]["service"], "http_status:404");

    // A running connector: deleting must clean up its connections first.
    assert!(sim.cloudflare_connect_tunnel(&info.id));
    tunnels.delete_tunnel(&info.id).await.unwrap();
    tunnels.delete_tunnel(&info.id).await.unwrap();
    assert!(sim.cloudflare_tunnels().iter().all(|t| t.deleted));
    sim.shutdown().await;
}

/// `t=…,v1=…` as Stripe signs a payload.
fn stripe_signature(payload: &[u8], secret: &str, timestamp: u64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn billing_stripe_accepts_signed_webhooks_and_rejects_tampered_ones() {
    let dir = TempDir::new().unwrap();
    let secret = "whsec_first_party_test";
    let manifest = Manifest {
        package: "billing-stripe",
        world: PluginWorld::BillingAdapter,
        allowed_hosts: vec![],
        ca_file: None,
        settings: vec![("webhook_secret", secret.into())],
    };
    let runtime = runtime(&dir, vec![manifest]).await;
    let billing = runtime.billing_adapter("billing-stripe");
    let body = br#"{"id":"evt_1","type":"customer.subscription.deleted","data":{"object":{"id":"sub_1"}}}"#;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = |body: &[u8], signature: String| WebhookRequest {
        method: "POST".into(),
        path: "/".into(),
        headers: vec![
            ("stripe-signature".into(), signature),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.to_vec(),
    };

    let accepted = billing
        .handle_webhook(&request(body, stripe_signature(body, secret, now)))
        .await
        .unwrap();
    assert_eq!(accepted.response.status, 200);
    assert_eq!(accepted.response.body, br#"{"received":true}"#);
    assert!(
        matches!(&accepted.events[..], [BillingEvent::Terminate(r)] if r.external_ref == "sub_1" && r.event_id == "evt_1")
    );

    let tampered = body
        .iter()
        .copied()
        .map(|b| if b == b'1' { b'2' } else { b })
        .collect::<Vec<_>>();
    let rejected = billing
        .handle_webhook(&request(&tampered, stripe_signature(body, secret, now)))
        .await
        .unwrap();
    assert_eq!(rejected.response.status, 400);
    assert!(rejected.events.is_empty());
    let stale = billing
        .handle_webhook(&request(body, stripe_signature(body, secret, now - 3600)))
        .await
        .unwrap();
    assert_eq!(stale.response.status, 400);
}

/// A `pdns_server` with the gsqlite3 backend on loopback, killed on drop.
pub(crate) struct PowerDns {
    child: Child,
    dns_port: u16,
    pub api_url: String,
    pub api_key: String,
    _dir: TempDir,
}

impl Drop for PowerDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PDNS_SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";

/// A port free for both UDP and TCP on loopback (DNS listens on both).
fn free_dns_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind((LOOPBACK, port)).is_ok() {
            return port;
        }
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind((LOOPBACK, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PowerDns {
    pub async fn start() -> Self {
        let binary = which("pdns_server").unwrap_or_else(|| {
            panic!(
                "pdns_server is not installed: apt-get install -y pdns-server pdns-backend-sqlite3"
            )
        });
        let schema = std::fs::read_to_string(PDNS_SCHEMA).unwrap_or_else(|err| {
            panic!("{PDNS_SCHEMA}: {err}: apt-get install -y pdns-backend-sqlite3")
        });
        let dir = TempDir::new().unwrap();
        let database = dir.path().join("pdns.sqlite3");
        rusqlite::Connection::open(&database)
            .unwrap()
            .execute_batch(&schema)
            .unwrap();
        let (dns_port, api_port) = (free_dns_port(), free_tcp_port());
        let api_key = format!("key-{}", rand::random::<u64>());
        let config = format!(
            "launch=gsqlite3\ngsqlite3-database={}\nlocal-address=127.0.0.1\nlocal-port={dns_port}\n\
             api=yes\napi-key={api_key}\nwebserver=yes\nwebserver-address=127.0.0.1\n\
             webserver-port={api_port}\nwebserver-allow-from=127.0.0.0/8\nsocket-dir={}\n\
             guardian=no\ndaemon=no\ndisable-syslog=yes\nloglevel=4\n\
             cache-ttl=0\nquery-cache-ttl=0\nnegquery-cache-ttl=0\n",
            database.display(),
            dir.path().display()
        );
        std::fs::write(dir.path().join("pdns.conf"), config).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config-dir={}", dir.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut server = PowerDns {
            child,
            dns_port,
            api_url: format!("http://127.0.0.1:{api_port}"),
            api_key,
            _dir: dir,
        };
        server.wait_for_api().await;
        server
    }

    async fn wait_for_api(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                panic!("pdns_server exited ({status}): {stderr}");
            }
            let answer = client
                .get(format!("{}/api/v1/servers/localhost", self.api_url))
                .header("X-API-Key", &self.api_key)
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the PowerDNS API did not come up on {}", self.api_url);
    }

    pub async fn create_zone(&self, zone: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/servers/localhost/zones", self.api_url))
            .header("X-API-Key", &self.api_key)
            .json(&serde_json::json!({"name": format!("{zone}."), "kind": "Native", "nameservers": ["ns1.example.net."]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            201,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Where it answers DNS queries.
    pub fn dns_addr(&self) -> std::net::SocketAddr {
        (LOOPBACK, self.dns_port).into()
    }

    /// Makes `name` (in `zone`) an A or AAAA record of `address`, through the API.
    pub async fn put_address(&self, zone: &str, name: &str, address: IpAddr) {
        let kind = if address.is_ipv4() { "A" } else { "AAAA" };
        let rrset = serde_json::json!({"rrsets": [{
            "name": format!("{name}."), "type": kind, "ttl": 60, "changetype": "REPLACE",
            "records": [{"content": address.to_string(), "disabled": false}],
        }]});
        let response = reqwest::Client::new()
            .patch(format!(
                "{}/api/v1/servers/localhost/zones/{zone}.",
                self.api_url
            ))
            .header("X-API-Key", &self.api_key)
            .json(&rrset)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
    }

    /// `dig +short` against this server.
    pub fn dig(&self, name: &str, kind: &str) -> String {
        let output = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.dns_port.to_string(),
                "+short",
                "+norecurse",
                "+time=2",
                "+tries=2",
                name,
                kind,
            ])
            .output()
            .unwrap_or_else(|err| {
                panic!("dig is not installed ({err}): apt-get install -y dnsutils")
            });
        assert!(
            output.status.success(),
            "dig: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

/// A program on `PATH`, or in the `sbin` directories where Debian puts daemons.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// dns-powerdns, pointed at `pdns`'s API.
fn powerdns_manifest(pdns: &PowerDns) -> Manifest<'static> {
    Manifest {
        package: "dns-powerdns",
        world: PluginWorld::DnsProvider,
        allowed_hosts: vec![url::Url::parse(&pdns.api_url).unwrap()],
        ca_file: None,
        settings: vec![
            ("api_url", pdns.api_url.clone()),
            ("api_key", pdns.api_key.clone()),
        ],
    }
}

#[tokio::test]
async fn dns_powerdns_writes_records_a_real_powerdns_serves() {
    let pdns = PowerDns::start().await;
    let zone = "lab.example.test";
    pdns.create_zone(zone).await;
    let dir = TempDir::new().unwrap();
    let runtime = runtime(&dir, vec![powerdns_manifest(&pdns)]).await;
    let dns = runtime.dns_provider("dns-powerdns");

    let id = dns
        .upsert_record(zone, &a_record("vm1.lab.example.test", "192.0.2.44"))
        .await
        .unwrap();
    assert_eq!(pdns.dig("vm1.lab.example.test", "A"), "192.0.2.44");
    let cname = DnsRecord {
        name: "ssh-vm1.lab.example.test".into(),
        kind: RecordKind::Cname,
        content: "abc.cfargotunnel.com".into(),
        ttl: 1,
        proxied: true,
    };
    dns.upsert_record(zone, &cname).await.unwrap();
    assert_eq!(
        pdns.dig("ssh-vm1.lab.example.test", "CNAME"),
        "abc.cfargotunnel.com."
    );
    let txt = DnsRecord {
        name: "_porthole.lab.example.test".into(),
        kind: RecordKind::Txt,
        content: "say \"hi\"".into(),
        ttl: 60,
        proxied: false,
    };
    dns.upsert_record(zone, &txt).await.unwrap();
    assert_eq!(
        pdns.dig("_porthole.lab.example.test", "TXT"),
        "\"say \\\"hi\\\"\""
    );

    let moved = dns
        .upsert_record(zone, &a_record("vm1.lab.example.test", "192.0.2.45"))
        .await
        .unwrap();
    assert_eq!(moved, id);
    assert_eq!(pdns.dig("vm1.lab.example.test", "A"), "192.0.2.45");
    let listed = dns.list_records(zone).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r.id == id && r.record.content == "192.0.2.45"),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|r| r.record.kind == RecordKind::Txt && r.record.content == "say \"hi\""),
        "{listed:?}"
    );

    dns.delete_record(zone, &id).await.unwrap();
    dns.delete_record(zone, &id).await.unwrap();
    assert_eq!(pdns.dig("vm1.lab.example.test", "A"), "");
}

fn ptr(name: &str, target: &str) -> PtrRecord {
    PtrRecord {
        name: name.into(),
        target: target.into(),
        ttl: 1,
    }
}

#[tokio::test]
async fn dns_powerdns_keeps_reverse_dns_a_real_powerdns_serves() {
    let pdns = PowerDns::start().await;
    let (v4, v6) = ("2.0.192.in-addr.arpa", "0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    pdns.create_zone(v4).await;
    pdns.create_zone(v6).await;
    let dir = TempDir::new().unwrap();
    let runtime = runtime(&dir, vec![powerdns_manifest(&pdns)]).await;
    assert!(runtime.keeps_reverse_dns("dns-powerdns"));
    let dns = runtime.dns_provider("dns-powerdns");

    let name = "10.2.0.192.in-addr.arpa";
    dns.set_ptr(v4, &ptr(name, "Mail.Example.NET"))
        .await
        .unwrap();
    assert_eq!(pdns.dig(name, "PTR"), "mail.example.net.");
    dns.set_ptr(v4, &ptr(name, "smtp.example.net"))
        .await
        .unwrap();
    dns.set_ptr(v4, &ptr(name, "smtp.example.net"))
        .await
        .unwrap();
    assert_eq!(
        pdns.dig(name, "PTR"),
        "smtp.example.net.",
        "a PTR is replaced, never doubled"
    );
    let six = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
    dns.set_ptr(v6, &ptr(six, "v6.example.net")).await.unwrap();
    assert_eq!(pdns.dig(six, "PTR"), "v6.example.net.");

    // Outside the zone, or into a forward zone: refused before the plugin runs.
    let outside = ptr("10.3.0.192.in-addr.arpa", "a.example.net");
    let outside = dns.set_ptr(v4, &outside).await;
    assert!(
        matches!(outside, Err(CallError::Plugin { .. })),
        "{outside:?}"
    );
    let forward = ptr("10.example.net", "a.example.net");
    let forward = dns.set_ptr("example.net", &forward).await;
    assert!(
        matches!(forward, Err(CallError::Plugin { .. })),
        "{forward:?}"
    );

    dns.remove_ptr(v4, name).await.unwrap();
    dns.remove_ptr(v4, name).await.unwrap();
    assert_eq!(pdns.dig(name, "PTR"), "");
    assert_eq!(pdns.dig(six, "PTR"), "v6.example.net.");
}

#[tokio::test]
async fn dns_cloudflare_keeps_reverse_dns_in_the_simulator() {
    let dir = TempDir::new().unwrap();
    let (sim, ca) = cloudflare_sim(&dir).await;
    let zone = "2.0.192.in-addr.arpa";
    sim.cloudflare_zone(zone);
    sim.cloudflare_zone("lab.example.com");
    let mut manifest = cloudflare_manifest("dns-cloudflare", PluginWorld::DnsProvider, &sim, &ca);
    // A fixed forward zone id must not send PTRs to the forward zone.
    manifest
        .settings
        .push(("zone_id", sim.cloudflare_zone("lab.example.com")));
    let runtime = runtime(&dir, vec![manifest]).await;
    let dns = runtime.dns_provider("dns-cloudflare");

    let name = "10.2.0.192.in-addr.arpa";
    dns.set_ptr(zone, &ptr(name, "mail.example.net"))
        .await
        .unwrap();
    dns.set_ptr(zone, &ptr(name, "smtp.example.net"))
        .await
        .unwrap();
    dns.set_ptr(zone, &ptr(name, "smtp.example.net"))
        .await
        .unwrap();
    let stored = sim.cloudflare_dns_records(zone);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (
            stored[0].kind.as_str(),
            stored[0].name.as_str(),
            stored[0].content.as_str()
        ),
        ("PTR", name, "smtp.example.net")
    );
    assert!(sim.cloudflare_dns_records("lab.example.com").is_empty());
    dns.remove_ptr(zone, name).await.unwrap();
    dns.remove_ptr(zone, name).await.unwrap();
    assert!(sim.cloudflare_dns_records(zone).is_empty());
    sim.shutdown().await;
}
