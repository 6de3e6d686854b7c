//! Several daemons on one PostgreSQL database, behind nginx: orders spread over them, webhooks
//! delivered to all of them at once. Real parts throughout: `porthole serve` processes, Debian's
//! PostgreSQL and nginx, the first-party plugins, the simulator.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use porthole::config::Database;
use porthole::store::{Db as _, Store, params};
use porthole_pg_fixture::TestDatabase;
use porthole_sim::SimHandle;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::lifecycle_acceptance::{
    ChildDaemon, CloudflareRoute, Leftovers, StripeEvent, simulator_with_cloudflare, vms_marked,
    write_config,
};

/// nginx in front of the daemons, as a provider would run it: HTTP/1.1 to the upstreams with the
/// WebSocket upgrade passed on, no buffering (progress streams), long read timeouts (consoles).
struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Nginx {
    fn start(dir: &Path, upstreams: &[SocketAddr]) -> Self {
        let addr = free_addr();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("        server {a} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        // As root nginx would hand its workers to `nobody`, who cannot use the temp directories.
        let user = if nix::unistd::geteuid().is_root() {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            r#"{user}
worker_processes 1;
error_log stderr warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream porthole {{
{servers}    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://porthole;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout http_502;
        }}
    }}
}}
"#,
            prefix = prefix.display()
        );
        let file = prefix.join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(nginx())
            .args(["-p"])
            .arg(&prefix)
            .args(["-c"])
            .arg(&file)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: apt-get install -y nginx (as .ci/run does)")
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Three daemons on one PostgreSQL database behind nginx, with the lifecycle plugins.
struct Cluster {
    sim: SimHandle,
    snippets: PathBuf,
    nginx: Nginx,
    daemons: Vec<(ChildDaemon, String)>,
    store: Store,
    admin_token: String,
    http: reqwest::Client,
    _database: TestDatabase,
    _dir: TempDir,
}

impl Cluster {
    async fn start(daemons: usize) -> Self {
        let dir = TempDir::new().unwrap();
        let database = tokio::task::spawn_blocking(TestDatabase::create)
            .await
            .unwrap()
            .unwrap();
        let (sim, ca_file, snippets) = simulator_with_cloudflare(dir.path()).await;
        let addrs: Vec<SocketAddr> = (0..daemons).map(|_| free_addr()).collect();
        let nginx = Nginx::start(dir.path(), &addrs);
        let route = CloudflareRoute::Direct { ca_file: &ca_file };
        // One configuration, as a provider would deploy it on every machine; each daemon gets
        // its own address and state directory.
        let base = write_config(dir.path(), addrs[0], &sim, &route, &snippets, 5);
        let text = std::fs::read_to_string(&base).unwrap().replace(
            "database = \"porthole.db\"",
            &format!("database = \"{}\"", database.url()),
        );
        let configs: Vec<PathBuf> = addrs
            .iter()
            .enumerate()
            .map(|(n, addr)| {
                let path = dir.path().join(format!("porthole-{n}.toml"));
                let own = text
                    .replace(
                        &format!("listen = \"{}\"", addrs[0]),
                        &format!("listen = \"{addr}\""),
                    )
                    .replace(
                        &format!("public_url = \"http://{}\"", addrs[0]),
                        &format!(
                            "public_url = \"http://{}\"\nstate_dir = \"state-{n}\"",
                            nginx.addr
                        ),
                    );
                std::fs::write(&path, own).unwrap();
                path
            })
            .collect();
        let admin_token = admin_token(&configs[0]);
        let mut running = Vec::new();
        for (n, (config, addr)) in configs.iter().zip(&addrs).enumerate() {
            let log = dir.path().join(format!("daemon-{n}.log"));
            let url = format!("http://{addr}");
            running.push((ChildDaemon::spawn(config, &log, &url).await, url));
        }
        let store = Store::connect(
            &Database::resolve(database.url(), &Default::default(), Path::new("/")).unwrap(),
        )
        .await
        .unwrap();
        Self {
            sim,
            snippets,
            nginx,
            daemons: running,
            store,
            admin_token,
            http: reqwest::Client::new(),
            _database: database,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.nginx.addr)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let answer = self
            .http
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(&self.admin_token)
            .header("Idempotency-Key", format!("key-{}", rand::random::<u64>()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// A customer allowed `vms` VMs of the small plan; their id.
    async fn customer(&self, name: &str, vms: u64) -> i64 {
        let (status, user) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/users",
                json!({ "username": name, "password": "a-long-password-1", "role": "customer" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let id = user["id"].as_i64().unwrap();
        let quota = json!({
            "max_vms": vms, "max_cores": 2 * vms, "max_memory_mib": 1024 * vms, "max_disk_gib": 20 * vms,
        });
        let (status, body) = self
            .send(
                reqwest::Method::PUT,
                &format!("/api/v1/users/{id}/quota"),
                quota,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }

    async fn count(&self, sql: &str) -> i64 {
        self.store
            .query_one(sql, params![])
            .await
            .unwrap()
            .get(0)
            .unwrap()
    }

    /// `(id, hostname)` of every active service.
    async fn active_services(&self) -> Vec<(i64, String)> {
        self.store
            .query(
                "SELECT id, hostname FROM services WHERE state = 'active' ORDER BY id",
                params![],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0).unwrap(), row.get(1).unwrap()))
            .collect()
    }

    async fn stop(self) {
        for (daemon, _) in self.daemons {
            daemon.kill();
        }
        self.sim.shutdown().await;
    }
}

/// The first operator and their API token, made with the CLI before any daemon runs.
fn admin_token(config: &Path) -> String {
    let config = config.to_str().unwrap();
    let run = |args: &[&str], input: &str| {
        let output = crate::cli::porthole(&[&["admin", "--config", config], args].concat(), input);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    run(
        &[
            "create-user",
            "--username",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "an-admin-password-1\n",
    );
    run(&["create-token", "--username", "admin"], "")
        .trim()
        .to_owned()
}

/// 200 orders at once through nginx, spread over three daemons (40 customers ordering five VMs
/// each): every one becomes one active service with exactly one VM, tunnel, DNS record and
/// snippet.
#[tokio::test]
async fn two_hundred_concurrent_orders_over_three_daemons_each_become_one_vm() {
    const ORDERS: usize = 200;
    const CUSTOMERS: usize = 40;
    let cluster = Cluster::start(3).await;
    let mut customers = Vec::new();
    for n in 0..CUSTOMERS {
        customers.push(cluster.customer(&format!("bulk{n}"), 5).await);
    }
    let started = Instant::now();
    let orders = (0..ORDERS).map(|n| {
        let body = json!({
            "customer": customers[n % CUSTOMERS], "plan": "small", "template": "debian-12",
            "hostname": format!("bulk{n}"), "username": "ada",
        });
        let cluster = &cluster;
        async move {
            cluster
                .send(reqwest::Method::POST, "/api/v1/orders", body)
                .await
        }
    });
    for (status, receipt) in futures_util::future::join_all(orders).await {
        assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let unfinished = cluster
            .count("SELECT count(*) FROM jobs WHERE state IN ('pending', 'compensating')")
            .await;
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} jobs still unfinished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{ORDERS} orders over 3 daemons took {:?}",
        started.elapsed()
    );
    let active = cluster.active_services().await;
    assert_eq!(active.len(), ORDERS);
    for (id, hostname) in &active {
        assert_eq!(vms_marked(&cluster.sim, *id).len(), 1, "service {id}");
        assert_eq!(
            Leftovers::of(&cluster.sim, &cluster.snippets, *id, hostname),
            Leftovers::ONE_OF_EACH,
            "service {id}"
        );
    }
    cluster.stop().await;
}

/// Stripe retries a webhook it thinks was lost; here the same delivery reaches every daemon at
/// the same moment. One service results.
#[tokio::test]
async fn the_same_webhook_delivered_to_three_daemons_at_once_creates_one_service() {
    let cluster = Cluster::start(3).await;
    for round in 0..5 {
        let event = StripeEvent::checkout(
            &format!("evt_race_{round}"),
            &format!("sub_race_{round}"),
            &format!("race{round}"),
        );
        let deliveries = cluster
            .daemons
            .iter()
            .map(|(_, url)| event.deliver(&cluster.http, url));
        for status in futures_util::future::join_all(deliveries).await {
            assert_eq!(status, StatusCode::OK, "round {round}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.active_services().await.len() < 5 {
        assert!(Instant::now() < deadline, "the services did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cluster.count("SELECT count(*) FROM services").await, 5);
    assert_eq!(cluster.count("SELECT count(*) FROM jobs").await, 5);
    for (id, _) in cluster.active_services().await {
        assert_eq!(vms_marked(&cluster.sim, id).len(), 1, "service {id}");
    }
    cluster.stop().await;
}
