//! The daemon serving TLS itself (`[tls]`): HTTPS with HSTS and `Secure` cookies, and a new
//! certificate taken on SIGHUP while connections made with the old one keep working.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::client::TlsStream;

use crate::lifecycle_acceptance::ChildDaemon;

/// Writes `{name}.crt` and `{name}.key`: a self-signed certificate for `localhost` and
/// `127.0.0.1`. Answers the certificate's PEM.
pub(crate) fn write_self_signed(dir: &Path, name: &str) -> String {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pem = certified.cert.pem();
    std::fs::write(dir.join(format!("{name}.crt")), &pem).unwrap();
    std::fs::write(
        dir.join(format!("{name}.key")),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    pem
}

/// An HTTPS client that trusts only `pem`.
pub(crate) fn client_trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A TLS connection to `addr` trusting only `pem`; an error when the handshake fails.
pub(crate) async fn connect_trusting(
    addr: SocketAddr,
    pem: &str,
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// `GET /healthz` on a kept-alive connection; the status line.
async fn health_on(stream: &mut TlsStream<tokio::net::TcpStream>) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    // The body is "ok": the answer ends with it.
    while !answer.ends_with(b"ok") {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed");
        answer.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_daemon_serving_tls_takes_a_new_certificate_on_sighup_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let sim = porthole_sim::Simulator::start(porthole_sim::SimConfig::default())
        .await
        .unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let first = write_self_signed(dir.path(), "first");
    std::fs::copy(dir.path().join("first.crt"), dir.path().join("panel.crt")).unwrap();
    std::fs::copy(dir.path().join("first.key"), dir.path().join("panel.key")).unwrap();
    let config = crate::first_party::simulator_config_head(dir.path(), addr, &sim).replace(
        &format!("public_url = \"http://{addr}\""),
        &format!(
            "public_url = \"https://localhost:{}\"\nlog_format = \"json\"",
            addr.port()
        ),
    ) + &crate::first_party::plugin_entry("cloudinit-lab", "cloud-init-template")
        + "\n[tls]\ncert_file = \"panel.crt\"\nkey_file = \"panel.key\"\n";
    let config_file = dir.path().join("porthole.toml");
    std::fs::write(&config_file, config).unwrap();
    let url = format!("https://localhost:{}", addr.port());
    let daemon = ChildDaemon::spawn_with(
        &config_file,
        &dir.path().join("daemon.log"),
        &url,
        client_trusting(&first),
    )
    .await;

    let answer = client_trusting(&first)
        .get(format!("{url}/api/v1/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let mut kept = connect_trusting(addr, &first).await.unwrap();
    assert_eq!(health_on(&mut kept).await, "HTTP/1.1 200 OK");

    // Renewed in place, as certbot or an ACME client does, then SIGHUP.
    let second = write_self_signed(dir.path(), "second");
    std::fs::copy(dir.path().join("second.crt"), dir.path().join("panel.crt")).unwrap();
    std::fs::copy(dir.path().join("second.key"), dir.path().join("panel.key")).unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect_trusting(addr, &second).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        connect_trusting(addr, &first).await.is_err(),
        "new connections still get the old certificate"
    );
    assert_eq!(
        health_on(&mut kept).await,
        "HTTP/1.1 200 OK",
        "the old connection was dropped"
    );

    // A broken renewal is refused and the daemon keeps the last good certificate.
    std::fs::write(dir.path().join("panel.key"), "garbage\n").unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut after = connect_trusting(addr, &second).await.unwrap();
    assert_eq!(health_on(&mut after).await, "HTTP/1.1 200 OK");
    // One JSON object per line, for log shippers.
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let refusal = lines
        .iter()
        .find(|line| {
            line["message"] == "cannot reload the TLS certificate; still serving the previous one"
        })
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(refusal["level"], "ERROR");
    assert!(
        refusal["error"].as_str().unwrap().contains("panel.key"),
        "{refusal}"
    );
}
