//! What a browser reaches over HTTPS, two ways a provider deploys: Debian's nginx serving the
//! shipped site (`examples/deploy/nginx-porthole.conf`) in front of `porthole serve`, and the
//! daemon serving TLS itself. The same checks run on both: the panel, the API, `Secure` cookies,
//! the client's address in the audit and the rate limits (believed only from the proxy), a
//! service's progress stream, and both consoles, one of them idle past nginx's read timeout.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use porthole_sim::SimHandle;
use porthole_sim::rfb_client::{RfbClient, Security};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::cluster::free_addr;
use crate::deploy::Nginx;
use crate::lifecycle_acceptance::ChildDaemon;

/// nginx's read timeout in these tests, far below the shipped 90 s; the daemon's console
/// keepalive is set below it, as the shipped files have 25 s against 90 s.
const PROXY_READ_TIMEOUT_SECS: u64 = 3;
const KEEPALIVE_SECS: u64 = 1;

/// The browser's address: loopback, but not nginx's, so the two can be told apart.
const BROWSER: &str = "127.0.0.2";
/// Another browser, for what the first one's rate limit must not touch.
const OTHER_BROWSER: &str = "127.0.0.3";

struct Front {
    /// `https://localhost:PORT`, what browsers type.
    url: String,
    cert_pem: String,
    admin_token: String,
    _nginx: Option<Nginx>,
    _daemon: ChildDaemon,
    _sim: SimHandle,
    _dir: TempDir,
}

impl Front {
    async fn behind_nginx() -> Self {
        Self::start(true).await
    }

    async fn serving_tls_itself() -> Self {
        Self::start(false).await
    }

    async fn start(behind_nginx: bool) -> Self {
        let dir = TempDir::new().unwrap();
        let sim = porthole_sim::Simulator::start(porthole_sim::SimConfig::default())
            .await
            .unwrap();
        let cert_pem = crate::tls::write_self_signed(dir.path(), "panel");
        let (cert, key) = (dir.path().join("panel.crt"), dir.path().join("panel.key"));
        let daemon_addr = free_addr();
        let front_addr = if behind_nginx {
            free_addr()
        } else {
            daemon_addr
        };
        let url = format!("https://localhost:{}", front_addr.port());
        let mut config = crate::first_party::simulator_config_head(dir.path(), daemon_addr, &sim)
            .replace(
                &format!("public_url = \"http://{daemon_addr}\""),
                &format!("public_url = \"{url}\"\ntrusted_proxies = [\"127.0.0.1/32\"]"),
            )
            // No tunnel here, which the lab template needs.
            .replace(
                "cloud_init = \"cloudinit-lab\"",
                "cloud_init = \"cloudinit-basic\"",
            );
        config += &crate::first_party::plugin_entry("cloudinit-basic", "cloud-init-template");
        config += &format!("\n[console]\nkeepalive_secs = {KEEPALIVE_SECS}\n");
        if !behind_nginx {
            config += "\n[tls]\ncert_file = \"panel.crt\"\nkey_file = \"panel.key\"\n";
        }
        let config_file = dir.path().join("porthole.toml");
        std::fs::write(&config_file, config).unwrap();
        let admin_token = crate::cluster::admin_token(&config_file);
        create_customer(&config_file, "alice");
        let log = dir.path().join("daemon.log");
        let (daemon, nginx) = if behind_nginx {
            let daemon =
                ChildDaemon::spawn(&config_file, &log, &format!("http://{daemon_addr}")).await;
            let site = crate::deploy::site_for_test(
                front_addr,
                free_addr(),
                &cert,
                &key,
                &[daemon_addr],
                &format!("{PROXY_READ_TIMEOUT_SECS}s"),
            );
            (
                daemon,
                Some(Nginx::serve(&dir.path().join("nginx"), &site, front_addr)),
            )
        } else {
            let http = crate::tls::client_trusting(&cert_pem);
            (
                ChildDaemon::spawn_with(&config_file, &log, &url, http).await,
                None,
            )
        };
        Self {
            url,
            cert_pem,
            admin_token,
            _nginx: nginx,
            _daemon: daemon,
            _sim: sim,
            _dir: dir,
        }
    }

    /// A browser at `address` that trusts the test certificate and keeps cookies.
    fn browser(&self, address: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).unwrap())
            .cookie_store(true)
            .local_address(address.parse::<IpAddr>().unwrap())
            .build()
            .unwrap()
    }

    fn admin(&self) -> reqwest::Client {
        self.browser(BROWSER)
    }

    async fn admin_get(&self, path: &str) -> Value {
        let answer = self
            .admin()
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "GET {path}");
        answer.json().await.unwrap()
    }

    async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let answer = self
            .admin()
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .header("Idempotency-Key", format!("key-{}", rand::random::<u64>()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// Signs `username` in from `browser`; the answer's status and `Set-Cookie`.
    async fn sign_in(&self, browser: &reqwest::Client, username: &str) -> (StatusCode, String) {
        let answer = browser
            .post(format!("{}/api/v1/auth/login", self.url))
            // A client's own claim to be someone else: nginx replaces it, the daemon ignores it.
            .header("X-Forwarded-For", "203.0.113.9")
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let cookie = answer
            .headers()
            .get("set-cookie")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (answer.status(), cookie)
    }

    /// A TLS connection to the front, trusting the test certificate.
    async fn tls_stream(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let port = url::Url::parse(&self.url).unwrap().port().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        crate::tls::connect_trusting(addr, &self.cert_pem)
            .await
            .unwrap()
    }

    /// A console of `kind` on `service`, minted and opened through the front as the panel
    /// does; its byte stream and how it closed.
    async fn console(
        &self,
        service: i64,
        kind: &str,
    ) -> (
        tokio::io::DuplexStream,
        tokio::sync::oneshot::Receiver<crate::console::Closed>,
    ) {
        let (status, body) = self
            .admin_post(
                &format!("/api/v1/vms/{service}/console"),
                json!({ "kind": kind }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let url = body["url"].as_str().unwrap();
        assert!(
            url.starts_with(&self.url.replacen("https", "wss", 1)),
            "{url}"
        );
        let mut request = url.into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
        headers.insert("Origin", self.url.parse().unwrap());
        let (socket, _) = tokio_tungstenite::client_async(request, self.tls_stream().await)
            .await
            .expect("the console WebSocket opens through the front");
        crate::console::byte_stream(socket)
    }
}

const PASSWORD: &str = "a-long-password-1";

fn create_customer(config: &Path, username: &str) {
    let args = [
        "create-user",
        "--username",
        username,
        "--role",
        "customer",
        "--password-stdin",
    ];
    crate::cluster::admin(config, &args, &format!("{PASSWORD}\n"));
}

/// Everything a browser does through the front.
async fn a_browser_gets_everything_through(front: &Front) {
    the_panel_and_api_come_over_https(front).await;
    sign_ins_carry_secure_cookies_and_the_browsers_own_address(front).await;
    let service = a_services_progress_streams_to_the_end(front).await;
    the_terminal_stays_open_idle_past_the_read_timeout(front, service).await;
    the_vnc_console_completes_its_handshake(front, service).await;
}

async fn the_panel_and_api_come_over_https(front: &Front) {
    let page = front.admin().get(&front.url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains("<!doctype html"), "{html}");
    let whoami = front.admin_get("/api/v1/whoami").await;
    assert_eq!(whoami["user"]["username"], "admin", "{whoami}");
}

async fn sign_ins_carry_secure_cookies_and_the_browsers_own_address(front: &Front) {
    let browser = front.browser(BROWSER);
    let (status, cookie) = front.sign_in(&browser, "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let me = browser
        .get(format!("{}/api/v1/whoami", front.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the cookie signs the browser in"
    );

    let audit = front.admin_get("/api/v1/audit?action=auth.login").await;
    let clients: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["client"].as_str())
        .collect();
    assert_eq!(clients, [BROWSER], "{audit}");

    // The per-address limit (20 failures) counts this browser's address, not nginx's and not
    // the one it claimed: another browser still signs in.
    let mut refused = None;
    for n in 0..25 {
        let (status, _) = front.sign_in(&browser, &format!("nobody-{n}")).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(n);
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(refused.is_some(), "the failures were never limited");
    let (status, _) = front.sign_in(&front.browser(OTHER_BROWSER), "alice").await;
    assert_eq!(status, StatusCode::OK, "another address was limited too");
}

/// Orders a VM for alice and follows its progress to the end; the service's id.
async fn a_services_progress_streams_to_the_end(front: &Front) -> i64 {
    let users = front.admin_get("/api/v1/users").await;
    let alice = users
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["username"] == "alice")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let order = json!({
        "customer": alice, "plan": "small", "template": "debian-12",
        "hostname": "front-door", "username": "debian"
    });
    let (status, receipt) = front.admin_post("/api/v1/orders", order).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let service = receipt["service_id"].as_i64().unwrap();
    let mut events = front
        .admin()
        .get(format!("{}/api/v1/services/{service}/events", front.url))
        .bearer_auth(&front.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let mut seen = String::new();
    let followed = tokio::time::timeout(Duration::from_secs(60), async {
        while !["\"succeeded\"", "\"rolled_back\"", "\"parked\""]
            .iter()
            .any(|end| seen.contains(end))
        {
            let chunk = events
                .chunk()
                .await
                .unwrap()
                .expect("the stream ended early");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(
        followed.is_ok(),
        "the progress stream stopped short: {seen}"
    );
    service
}

async fn the_terminal_stays_open_idle_past_the_read_timeout(front: &Front, service: i64) {
    let (mut terminal, _closed) = front.console(service, "term").await;
    echo(&mut terminal, "before-idle").await;
    tokio::time::sleep(Duration::from_secs(2 * PROXY_READ_TIMEOUT_SECS)).await;
    echo(&mut terminal, "after-idle").await;
}

/// Types `echo WORD` into the terminal and waits for the word to come back on a line.
async fn echo(terminal: &mut tokio::io::DuplexStream, word: &str) {
    let line = format!("echo {word}\r");
    let message = format!("0:{}:{line}", line.len());
    terminal.write_all(message.as_bytes()).await.unwrap();
    let mut output = Vec::new();
    let mut chunk = [0u8; 4096];
    let echoed = tokio::time::timeout(Duration::from_secs(20), async {
        while !String::from_utf8_lossy(&output).contains(&format!("\r\n{word}")) {
            let n = terminal.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the terminal closed");
            output.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(
        echoed.is_ok(),
        "no echo of {word}: {}",
        String::from_utf8_lossy(&output)
    );
}

async fn the_vnc_console_completes_its_handshake(front: &Front, service: i64) {
    let (stream, _closed) = front.console(service, "vnc").await;
    let mut viewer = tokio::time::timeout(
        Duration::from_secs(20),
        RfbClient::connect(stream, Security::None),
    )
    .await
    .expect("the RFB handshake did not complete")
    .unwrap();
    let init = viewer.server_init();
    assert!(init.width > 0 && init.height > 0);
    let update = tokio::time::timeout(Duration::from_secs(20), viewer.update(false))
        .await
        .expect("no framebuffer update")
        .unwrap();
    assert!(update > 0, "an empty framebuffer update");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_gets_everything_through_the_shipped_nginx_site() {
    let front = Front::behind_nginx().await;
    a_browser_gets_everything_through(&front).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_gets_everything_from_a_daemon_serving_tls_itself() {
    let front = Front::serving_tls_itself().await;
    a_browser_gets_everything_through(&front).await;
}
