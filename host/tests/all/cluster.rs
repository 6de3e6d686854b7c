//! Several daemons on one PostgreSQL database, behind nginx: orders spread over them, webhooks
//! delivered to all of them at once. Real parts throughout: `porthole serve` processes, Debian's
//! PostgreSQL and nginx, the first-party plugins, the simulator.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use porthole::config::Database;
use porthole::store::{Db as _, Store, params};
use porthole_pg_fixture::TestDatabase;
use porthole_sim::SimHandle;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::deploy::Nginx;
use crate::lifecycle_acceptance::{
    ChildDaemon, CloudflareRoute, Leftovers, LiveConsole, StripeEvent, nothing_orphaned,
    simulator_with_cloudflare, vms_marked, write_config,
};

/// nginx in front of the daemons, as a provider would run it: HTTP/1.1 to the upstreams with the
/// WebSocket upgrade passed on, no buffering (progress streams), long read timeouts (consoles).
/// Plain HTTP, unlike the shipped site (`front_door` tests that one), so that the tests here can
/// reach each daemon as nginx does.
fn load_balancer(dir: &Path, upstreams: &[SocketAddr]) -> Nginx {
    let addr = free_addr();
    let servers: String = upstreams
        .iter()
        .map(|a| format!("    server {a} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    let site = format!(
        r#"upstream porthole {{
{servers}}}
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
"#
    );
    Nginx::serve(&dir.join("nginx"), &site, addr)
}

pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One of the cluster's daemons: its process while it runs, and what restarts it.
struct Member {
    process: Option<ChildDaemon>,
    url: String,
    config: PathBuf,
    log: PathBuf,
}

/// Three daemons on one PostgreSQL database behind nginx, with the lifecycle plugins.
struct Cluster {
    sim: SimHandle,
    snippets: PathBuf,
    nginx: Nginx,
    members: Vec<Member>,
    store: Store,
    admin_token: String,
    http: reqwest::Client,
    _database: TestDatabase,
    _dir: TempDir,
}

impl Cluster {
    /// `daemons` daemons whose job leases last `lease_secs`.
    async fn start(daemons: usize, lease_secs: u64) -> Self {
        let dir = TempDir::new().unwrap();
        let database = tokio::task::spawn_blocking(TestDatabase::create)
            .await
            .unwrap()
            .unwrap();
        let (sim, ca_file, snippets) = simulator_with_cloudflare(dir.path()).await;
        let addrs: Vec<SocketAddr> = (0..daemons).map(|_| free_addr()).collect();
        let nginx = load_balancer(dir.path(), &addrs);
        let route = CloudflareRoute::Direct { ca_file: &ca_file };
        // One configuration, as a provider would deploy it on every machine; each daemon gets
        // its own address and state directory.
        let base = write_config(dir.path(), addrs[0], &sim, &route, &snippets, lease_secs);
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
        let mut members = Vec::new();
        for (n, (config, addr)) in configs.into_iter().zip(&addrs).enumerate() {
            let log = dir.path().join(format!("daemon-{n}.log"));
            let url = format!("http://{addr}");
            let process = Some(ChildDaemon::spawn(&config, &log, &url).await);
            members.push(Member {
                process,
                url,
                config,
                log,
            });
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
            members,
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

    /// The daemons' own addresses, bypassing nginx.
    fn direct_urls(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|member| member.url.as_str())
    }

    /// SIGKILLs daemon `n`: no shutdown, its leases and connections left as they were.
    fn kill(&mut self, n: usize) {
        if let Some(process) = self.members[n].process.take() {
            process.kill();
        }
    }

    /// The daemons holding a lease on an unfinished job now, in random order. A lease owner
    /// names its process (`boot/namespace/pid/start/worker`).
    async fn lease_holders(&self) -> Vec<usize> {
        let owners: Vec<String> = self
            .store
            .query_as(
                "SELECT lease_owner FROM jobs
                 WHERE state IN ('pending', 'compensating') AND lease_owner IS NOT NULL
                   AND lease_until > unixepoch()",
                params![],
                |row| row.get(0),
            )
            .await
            .unwrap();
        let mut holders: Vec<usize> = (0..self.members.len())
            .filter(|&n| {
                let Some(process) = &self.members[n].process else {
                    return false;
                };
                let pid = format!("/{}/", process.pid());
                owners.iter().any(|owner| owner.contains(&pid))
            })
            .collect();
        holders.sort_by_key(|_| rand::random::<u32>());
        holders
    }

    async fn restart(&mut self, n: usize) {
        let member = &mut self.members[n];
        member.process = Some(ChildDaemon::spawn(&member.config, &member.log, &member.url).await);
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
            .query_as(
                "SELECT id, hostname FROM services WHERE state = 'active' ORDER BY id",
                params![],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .await
            .unwrap()
    }

    /// An active service of a customer of its own, ready for consoles.
    async fn active_service(&self, hostname: &str) -> i64 {
        let customer = self.customer(hostname, 1).await;
        let order = json!({
            "customer": customer, "plan": "small", "template": "debian-12",
            "hostname": hostname, "username": "ada",
        });
        let (status, receipt) = self
            .send(reqwest::Method::POST, "/api/v1/orders", order)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
        self.settled(Duration::from_secs(60)).await;
        let (id, _) = self
            .active_services()
            .await
            .pop()
            .expect("the order's service");
        id
    }

    /// A console URL minted with the operator's token by the daemon (or nginx) at `base`.
    async fn console_url(&self, base: &str, service_id: i64) -> String {
        let (status, body) =
            crate::console::mint_at(base, &self.admin_token, service_id, "term", None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["url"].as_str().unwrap().to_owned()
    }

    /// `url` (which names nginx, the panel's public address) sent to the daemon at `base`
    /// instead, as nginx would have forwarded it.
    fn at(&self, url: &str, base: &str) -> String {
        let public = format!("ws://{}", self.nginx.addr);
        let direct = base.replacen("http://", "ws://", 1);
        assert!(url.starts_with(&public), "{url}");
        url.replacen(&public, &direct, 1)
    }

    /// A working terminal console on `service_id`, minted through nginx and opened at `base`
    /// (nginx or one daemon), from the panel's page.
    async fn live_console(&self, service_id: i64, base: &str) -> LiveConsole {
        let url = self.at(&self.console_url(&self.url(), service_id).await, base);
        let socket = crate::console::open_from(&url, &self.url())
            .await
            .expect("the console opens");
        let (terminal, closed) = crate::console::byte_stream(socket);
        LiveConsole::working(terminal, closed).await
    }

    /// Waits until the service is in `state`; returns (about) when it changed.
    async fn turned(&self, service_id: i64, state: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self
                .store
                .query_one(
                    "SELECT state FROM services WHERE id = ?1",
                    params![service_id],
                )
                .await
                .unwrap()
                .get::<String>(0)
                .unwrap();
            if now == state {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "service {service_id} is {now}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The errors and warnings the daemons logged, for a failed assertion to show.
    fn logged_errors(&self) -> String {
        self.members
            .iter()
            .map(|member| {
                let log = std::fs::read_to_string(&member.log).unwrap_or_default();
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|line| line.contains("ERROR") || line.contains("WARN"))
                    .collect();
                format!(
                    "{}:\n{}\n",
                    member.url,
                    lines[lines.len().saturating_sub(20)..].join("\n")
                )
            })
            .collect()
    }

    /// The services that are not active, with the last error of their jobs: what a failed
    /// assertion on them should say.
    async fn not_active(&self) -> Vec<(i64, String, Option<String>)> {
        self.store
            .query_as(
                "SELECT s.id, s.state, max(j.last_error) FROM services s
                 LEFT JOIN jobs j ON j.service_id = s.id
                 WHERE s.state <> 'active' GROUP BY s.id, s.state ORDER BY s.id",
                params![],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .await
            .unwrap()
    }

    /// Waits until no job is pending or compensating.
    async fn settled(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let unfinished = self
                .count("SELECT count(*) FROM jobs WHERE state IN ('pending', 'compensating')")
                .await;
            if unfinished == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{unfinished} jobs still unfinished"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every service is active with exactly one VM, tunnel, DNS record and snippet, and the
    /// simulators hold nothing else: no second clone, no orphan of any kind.
    async fn each_service_has_one_of_each_and_nothing_is_orphaned(&self, what: &str) {
        let active = self.active_services().await;
        let others = self.not_active().await;
        assert!(others.is_empty(), "{what}: services not active: {others:?}");
        for (id, hostname) in &active {
            assert_eq!(vms_marked(&self.sim, *id).len(), 1, "{what}: service {id}");
            assert_eq!(
                Leftovers::of(&self.sim, &self.snippets, *id, hostname),
                Leftovers::ONE_OF_EACH,
                "{what}: service {id}"
            );
        }
        nothing_orphaned(&self.sim, &self.snippets, active.len(), what);
    }

    async fn stop(self) {
        for process in self.members.into_iter().filter_map(|m| m.process) {
            process.kill();
        }
        self.sim.shutdown().await;
    }
}

/// The first operator and their API token, made with the CLI before any daemon runs.
pub(crate) fn admin_token(config: &Path) -> String {
    let run = |args: &[&str], input: &str| admin(config, args, input);
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

/// `porthole admin --config CONFIG ARGS…` with `input` on standard input; what it printed.
pub(crate) fn admin(config: &Path, args: &[&str], input: &str) -> String {
    let config = config.to_str().unwrap();
    let output = crate::cli::porthole(&[&["admin", "--config", config], args].concat(), input);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// 200 orders at once through nginx, spread over three daemons (40 customers ordering five VMs
/// each): every one becomes one active service with exactly one VM, tunnel, DNS record and
/// snippet.
#[tokio::test]
async fn two_hundred_concurrent_orders_over_three_daemons_each_become_one_vm() {
    const ORDERS: usize = 200;
    const CUSTOMERS: usize = 40;
    let cluster = Cluster::start(3, 5).await;
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
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{receipt}\n{}",
            cluster.logged_errors()
        );
    }
    cluster.settled(Duration::from_secs(300)).await;
    eprintln!(
        "{ORDERS} orders over 3 daemons took {:?}",
        started.elapsed()
    );
    assert_eq!(
        cluster.active_services().await.len(),
        ORDERS,
        "{:?}",
        cluster.not_active().await
    );
    cluster
        .each_service_has_one_of_each_and_nothing_is_orphaned("200 orders")
        .await;
    cluster.stop().await;
}

/// Stripe retries a webhook it thinks was lost; here the same delivery reaches every daemon at
/// the same moment. One service results.
#[tokio::test]
async fn the_same_webhook_delivered_to_three_daemons_at_once_creates_one_service() {
    let cluster = Cluster::start(3, 5).await;
    for round in 0..5 {
        let event = StripeEvent::checkout(
            &format!("evt_race_{round}"),
            &format!("sub_race_{round}"),
            &format!("race{round}"),
        );
        let deliveries = cluster
            .direct_urls()
            .map(|url| event.deliver(&cluster.http, url));
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

/// A machine lost mid-provisioning: one of three daemons is SIGKILLed at a random moment while
/// orders are being provisioned, ten times over. The other two take its jobs over when their
/// leases run out (they cannot see its process: to them it is on another machine), and every
/// order ends as exactly one VM, tunnel, DNS record and snippet, with nothing orphaned.
#[tokio::test]
async fn a_daemon_killed_at_random_moments_leaves_its_jobs_to_the_others_ten_times_over() {
    const RUNS: usize = 10;
    const ORDERS: usize = 6;
    let mut cluster = Cluster::start(3, 2).await;
    let customer = cluster.customer("survivor", (RUNS * ORDERS) as u64).await;
    let mut took_over = 0;
    for run in 0..RUNS {
        let orders = (0..ORDERS).map(|k| {
            let body = json!({
                "customer": customer, "plan": "small", "template": "debian-12",
                "hostname": format!("kill{run}x{k}"), "username": "ada",
            });
            cluster.send(reqwest::Method::POST, "/api/v1/orders", body)
        });
        for (status, receipt) in futures_util::future::join_all(orders).await {
            assert_eq!(status, StatusCode::ACCEPTED, "run {run}: {receipt}");
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..300))).await;
        // A daemon in the middle of a job if there is one at this moment, so that most runs
        // prove a takeover rather than a quiet death.
        let holders = cluster.lease_holders().await;
        let victim = holders
            .first()
            .copied()
            .unwrap_or_else(|| rand::random_range(0..cluster.members.len()));
        let pid = cluster.members[victim]
            .process
            .as_ref()
            .map(ChildDaemon::pid);
        cluster.kill(victim);
        // Jobs it held when it died, which only the others can finish.
        let stranded = cluster
            .count(&format!(
                "SELECT count(*) FROM jobs WHERE state IN ('pending', 'compensating')
                 AND lease_owner LIKE '%/{}/%'",
                pid.unwrap_or_default()
            ))
            .await;
        took_over += usize::from(stranded > 0);
        cluster.settled(Duration::from_secs(60)).await;
        cluster
            .each_service_has_one_of_each_and_nothing_is_orphaned(&format!(
                "run {run}, daemon {victim} killed"
            ))
            .await;
        cluster.restart(victim).await;
    }
    assert_eq!(
        cluster
            .count("SELECT count(*) FROM jobs WHERE state = 'succeeded'")
            .await,
        (RUNS * ORDERS) as i64
    );
    assert!(
        took_over >= RUNS / 2,
        "only {took_over} of {RUNS} kills left jobs for the others"
    );
    cluster.stop().await;
}

/// A suspension is processed by whichever daemon claims its job; the VM's consoles are relayed
/// by all three (one through nginx, one opened at each daemon), so most of them live on a
/// daemon that learns of it only from the database. Every one is closed within a second.
#[tokio::test]
async fn consoles_on_every_daemon_close_within_a_second_of_a_suspension_made_by_any_of_them() {
    let cluster = Cluster::start(3, 5).await;
    let service = cluster.active_service("watched").await;
    let mut consoles = vec![cluster.live_console(service, &cluster.url()).await];
    for base in cluster.direct_urls() {
        consoles.push(cluster.live_console(service, base).await);
    }
    let (status, receipt) = cluster
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/services/{service}/suspend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let suspended_at = cluster.turned(service, "suspended").await;
    for console in consoles {
        console
            .closed_within_a_second_of(suspended_at, (4003, "the VM is suspended"))
            .await;
    }
    cluster.stop().await;
}

/// A token minted by one daemon opens a console at another, once; after that every daemon
/// (and nginx, whichever daemon it picks) refuses it as already used.
#[tokio::test]
async fn a_console_token_minted_at_one_daemon_opens_at_another_once_and_nowhere_again() {
    let cluster = Cluster::start(3, 5).await;
    let service = cluster.active_service("tokens").await;
    let daemons: Vec<&str> = cluster.direct_urls().collect();
    for (n, minter) in daemons.iter().enumerate() {
        let redeemer = daemons[(n + 1) % daemons.len()];
        let url = cluster.console_url(minter, service).await;
        let first = crate::console::open_from(&cluster.at(&url, redeemer), &cluster.url())
            .await
            .expect("the token opens a console at another daemon");
        for base in daemons.iter().copied().chain([cluster.url().as_str()]) {
            let refused = crate::console::open_from(&cluster.at(&url, base), &cluster.url())
                .await
                .expect_err("a spent token is refused");
            assert_eq!(refused.status, 401, "at {base}: {}", refused.body);
            assert!(refused.body.contains("already used"), "{}", refused.body);
        }
        drop(first);
    }
    cluster.stop().await;
}

/// A service's progress streams from every daemon: the provision runs on whichever daemon claims
/// it, and a stream opened at each daemon (and one through nginx) follows its steps to the end.
#[tokio::test]
async fn a_services_progress_streams_from_every_daemon_whichever_runs_its_job() {
    let cluster = Cluster::start(3, 5).await;
    let customer = cluster.customer("follower", 1).await;
    let order = json!({
        "customer": customer, "plan": "small", "template": "debian-12",
        "hostname": "followed", "username": "ada",
    });
    let (status, receipt) = cluster
        .send(reqwest::Method::POST, "/api/v1/orders", order)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let id = receipt["service_id"].as_i64().unwrap();
    let bases: Vec<String> = cluster
        .direct_urls()
        .map(str::to_owned)
        .chain([cluster.url()])
        .collect();
    let streams = bases.iter().map(|base| {
        let request = cluster
            .http
            .get(format!("{base}/api/v1/services/{id}/events"))
            .bearer_auth(&cluster.admin_token)
            .send();
        async move {
            let mut stream = request.await.unwrap();
            assert_eq!(stream.headers()["content-type"], "text/event-stream");
            let mut seen = String::new();
            while !seen.contains("\"succeeded\"") {
                let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
                    .await
                    .unwrap_or_else(|_| panic!("{base}: the stream stalled after {seen}"))
                    .unwrap()
                    .unwrap_or_else(|| panic!("{base}: the stream ended after {seen}"));
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
            (base.clone(), seen)
        }
    });
    for (base, seen) in futures_util::future::join_all(streams).await {
        for step in ["place", "clone", "configure", "start_vm", "mark_active"] {
            assert!(
                seen.contains(&format!("\"step\":\"{step}\"")),
                "{base}: {step} missing from {seen}"
            );
        }
    }
    cluster.stop().await;
}

/// An operator sees from any daemon the consoles every daemon relays, and closes one relayed by
/// another daemon than the one they asked.
#[tokio::test]
async fn operators_see_and_close_consoles_relayed_by_any_daemon() {
    let cluster = Cluster::start(3, 5).await;
    let service = cluster.active_service("operated").await;
    let daemons: Vec<String> = cluster.direct_urls().map(str::to_owned).collect();
    let console = cluster.live_console(service, &daemons[0]).await;
    let sessions_at = |base: &str| {
        let request = cluster
            .http
            .get(format!("{base}/api/v1/console/sessions"))
            .bearer_auth(&cluster.admin_token)
            .send();
        async move {
            let body: Value = request.await.unwrap().json().await.unwrap();
            body["sessions"].as_array().unwrap().clone()
        }
    };
    let listed = sessions_at(&daemons[1]).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["service_id"], service);
    assert_eq!(listed[0]["service_name"], "operated");

    let asked = Instant::now();
    let closed = cluster
        .http
        .delete(format!(
            "{}/api/v1/console/sessions/{}",
            daemons[2], listed[0]["id"]
        ))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), StatusCode::NO_CONTENT);
    console
        .closed_within_a_second_of(asked, (4004, "closed by an operator"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sessions_at(&daemons[1]).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the closed session is still listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = cluster
        .http
        .delete(format!(
            "{}/api/v1/console/sessions/{}",
            daemons[1], listed[0]["id"]
        ))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::NOT_FOUND,
        "no longer live anywhere"
    );
    cluster.stop().await;
}

/// The daemon relaying a customer's console in Chromium is SIGKILLed: the panel's page
/// reconnects by itself through nginx to a daemon still alive, and the terminal works again.
/// The browser's side is `panel-ui/tests/cluster-reconnect.mjs`.
#[tokio::test]
async fn a_browser_whose_console_daemon_is_killed_reconnects_through_nginx() {
    let panel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../panel-ui");
    assert!(
        panel.join("dist/index.html").exists()
            && panel.join("node_modules/playwright-core").exists(),
        "the panel is not built: run `npm ci && npm run build` in panel-ui (`cargo xtask test` does)"
    );
    let cluster = Cluster::start(3, 5).await;
    let service = cluster.active_service("reconnect").await;
    let daemons: Vec<Value> = cluster
        .members
        .iter()
        .map(|m| json!({ "url": m.url, "pid": m.process.as_ref().map(ChildDaemon::pid) }))
        .collect();
    let setup = json!({
        "panel": cluster.url(), "username": "reconnect", "password": "a-long-password-1",
        "service": service, "admin_token": cluster.admin_token, "daemons": daemons,
    });
    let browser = tokio::process::Command::new("node")
        .arg("tests/cluster-reconnect.mjs")
        .current_dir(&panel)
        .env("CLUSTER_RECONNECT", setup.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(100), browser)
        .await
        .expect("the browser test finished")
        .expect("node runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    cluster.stop().await;
}
