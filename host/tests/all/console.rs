//! The console relay through the real daemon and the simulator: tokens over HTTP, the browser's
//! WebSocket on loopback, the daemon's WSS to the simulated node, the simulator's RFB server and
//! termproxy shell. The browser side is played by the simulator's RFB client and a small
//! termproxy-frame writer; every refusal is checked for its answer and its audit entry.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use porthole::console::Revocation;
use porthole::console::records::SessionRecord;
use porthole::daemon::Daemon;
use porthole::demo::{Demo, DemoSetup};
use porthole::store::audit::{self, Record};
use porthole::store::services::{self, ExistingVm};
use porthole::store::{Db as _, console, params, users};
use porthole_sim::rfb_client::{RfbClient, Security};
use porthole_sim::{Fault, FaultKind, SimConfig, Times, VmSeed, VncPasswordMode};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{
    AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, DuplexStream, ReadBuf,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::qemu::{Qemu, qemu_step};

/// Generous bound for the test's own waiting; never an assertion about speed. Every wait in this
/// file has it, so a stuck step (an unanswered HTTP call, a WebSocket handshake, an incremental
/// update the simulator holds until the screen changes) fails with its name instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

fn fast_sim() -> SimConfig {
    SimConfig {
        auth_failure_delay: Duration::from_millis(10),
        ..SimConfig::default()
    }
}

async fn demo_with(sim: SimConfig, extra_config: &str) -> Demo {
    let starting = Demo::start_with(DemoSetup {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: None,
        sim,
        extra_config: extra_config.to_owned(),
        plugins_dir: None,
        plugin_runner: Some(env!("CARGO_BIN_EXE_porthole").into()),
    });
    within("starting the simulator and the daemon", starting)
        .await
        .unwrap()
}

async fn demo() -> Demo {
    demo_with(fast_sim(), "").await
}

fn origin(demo: &Demo) -> String {
    demo.credentials().url.clone()
}

fn token<'a>(demo: &'a Demo, username: &str) -> &'a str {
    &demo.account(username).unwrap().api_token
}

/// Service ids: alice owns VM 101 (running, pve1) and 102 (stopped); bob owns 103.
fn service(demo: &Demo, username: &str, index: usize) -> i64 {
    demo.account(username).unwrap().vms[index]
}

/// Everything a browser received over HTTP, for the secrets check.
type Transcript = Arc<Mutex<Vec<u8>>>;

/// `POST /vms/{id}/console` as `username`; records the whole answer into `transcript`.
async fn mint_recorded(
    demo: &Demo,
    username: &str,
    service_id: i64,
    kind: &str,
    transcript: Option<&Transcript>,
) -> (StatusCode, Value) {
    let bearer = token(demo, username);
    mint_at(&origin(demo), bearer, service_id, kind, transcript).await
}

/// `POST /vms/{id}/console` to the daemon at `base` with the API token `bearer`.
pub(crate) async fn mint_at(
    base: &str,
    bearer: &str,
    service_id: i64,
    kind: &str,
    transcript: Option<&Transcript>,
) -> (StatusCode, Value) {
    let request = reqwest::Client::new()
        .post(format!("{base}/api/v1/vms/{service_id}/console"))
        .bearer_auth(bearer)
        .json(&json!({ "kind": kind }))
        .timeout(PATIENCE)
        .send();
    let response = request
        .await
        .unwrap_or_else(|err| panic!("POST console at {base}: {err}"));
    let status = response.status();
    let headers = format!("{:?}", response.headers());
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|err| panic!("console token answer from {base}: {err}"));
    if let Some(transcript) = transcript {
        let mut log = transcript.lock().unwrap();
        log.extend_from_slice(headers.as_bytes());
        log.extend_from_slice(&body);
    }
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn mint(demo: &Demo, username: &str, service_id: i64, kind: &str) -> (StatusCode, Value) {
    mint_recorded(demo, username, service_id, kind, None).await
}

/// A console URL that must be granted.
async fn console_url(demo: &Demo, username: &str, service_id: i64, kind: &str) -> String {
    let (status, body) = mint(demo, username, service_id, kind).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["url"].as_str().unwrap().to_owned()
}

/// A browser's WebSocket: every byte it reads is appended to a transcript.
pub(crate) type Socket = WebSocketStream<Recording<TcpStream>>;

/// An HTTP answer instead of an upgrade.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// Opens `url` as a browser on the panel's page at `origin` would.
pub(crate) async fn open_from(url: &str, origin: &str) -> Result<Socket, Refused> {
    open(url, Some(origin), &Transcript::default()).await
}

/// Opens `url` as a browser on the panel's page would (`Origin`, subprotocol `binary`).
async fn open(url: &str, origin: Option<&str>, transcript: &Transcript) -> Result<Socket, Refused> {
    within(
        "the console WebSocket handshake",
        open_unbounded(url, origin, transcript),
    )
    .await
}

async fn open_unbounded(
    url: &str,
    origin: Option<&str>,
    transcript: &Transcript,
) -> Result<Socket, Refused> {
    let parsed = url::Url::parse(url).unwrap();
    let tcp = TcpStream::connect((
        parsed.host_str().unwrap(),
        parsed.port_or_known_default().unwrap(),
    ))
    .await
    .unwrap();
    let stream = Recording {
        inner: tcp,
        log: transcript.clone(),
    };
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, response)) => {
            let protocol = response.headers().get("sec-websocket-protocol");
            assert_eq!(protocol.and_then(|p| p.to_str().ok()), Some("binary"));
            Ok(socket)
        }
        Err(WsError::Http(response)) => Err(Refused {
            status: response.status().as_u16(),
            body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned(),
        }),
        Err(other) => panic!("WebSocket failed: {other}"),
    }
}

/// Opens `url` from the panel's own origin; it must upgrade.
async fn open_ok(demo: &Demo, url: &str) -> (Socket, Transcript) {
    let transcript = Transcript::default();
    let socket = open(url, Some(&origin(demo)), &transcript)
        .await
        .expect("the console WebSocket should open");
    (socket, transcript)
}

/// The close code and reason a browser saw, or `None` if the connection just ended.
pub(crate) type Closed = Option<(u16, String)>;

/// Turns the WebSocket into a byte stream for the RFB and terminal clients, reporting how it was
/// closed. Dropping the byte stream closes the WebSocket.
pub(crate) fn byte_stream<S>(
    socket: WebSocketStream<S>,
) -> (DuplexStream, oneshot::Receiver<Closed>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut sink, mut frames) = socket.split();
        let (mut from_user, mut to_user) = tokio::io::split(theirs);
        let incoming = async move {
            let mut closed = None;
            while let Some(Ok(message)) = frames.next().await {
                let data = match message {
                    Message::Binary(data) => data.to_vec(),
                    Message::Text(text) => text.as_bytes().to_vec(),
                    Message::Close(frame) => {
                        closed = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                        break;
                    }
                    _ => continue,
                };
                if to_user.write_all(&data).await.is_err() {
                    break;
                }
            }
            let _ = closed_tx.send(closed);
            let _ = to_user.shutdown().await;
        };
        let outgoing = async move {
            let mut chunk = vec![0u8; 64 * 1024];
            while let Ok(n) = from_user.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let frame = Message::Binary(chunk[..n].to_vec().into());
                if sink.send(frame).await.is_err() {
                    return;
                }
            }
            let _ = sink.send(Message::Close(None)).await;
        };
        tokio::join!(incoming, outgoing);
    });
    (ours, closed_rx)
}

/// Awaits `work`, failing the test loudly instead of hanging if it never completes.
async fn within<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not complete"))
}

async fn wait_closed(closed: oneshot::Receiver<Closed>) -> (u16, String) {
    tokio::time::timeout(PATIENCE, closed)
        .await
        .expect("the console was not closed")
        .unwrap()
        .expect("the console ended without a close frame")
}

/// A terminal console of the daemon at `base` (`http://addr`), opened as the panel's page
/// would: the token minted with the API token `bearer`, the WebSocket from the panel's origin.
/// Returns the terminal's byte stream and how the console was closed.
pub(crate) async fn terminal_at(
    base: &str,
    bearer: &str,
    service_id: i64,
) -> (DuplexStream, oneshot::Receiver<Closed>) {
    let (status, body) = mint_at(base, bearer, service_id, "term", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let url = body["url"].as_str().unwrap();
    let socket = open(url, Some(base), &Transcript::default())
        .await
        .expect("the console WebSocket should open");
    byte_stream(socket)
}

/// A VNC viewer through the relay: security None, ServerInit read.
async fn vnc_viewer(
    demo: &Demo,
    username: &str,
    service_id: i64,
) -> (
    RfbClient<DuplexStream>,
    oneshot::Receiver<Closed>,
    Transcript,
) {
    let url = console_url(demo, username, service_id, "vnc").await;
    let (socket, transcript) = open_ok(demo, &url).await;
    let (stream, closed) = byte_stream(socket);
    let viewer = within(
        "the RFB handshake",
        RfbClient::connect(stream, Security::None),
    )
    .await
    .unwrap();
    (viewer, closed, transcript)
}

async fn audit_entries(demo: &Demo, action: &'static str) -> Vec<Record> {
    let reading = audit::recent(demo.daemon().store(), Some(action), 100);
    within("reading the audit log", reading).await.unwrap()
}

/// Waits (generously) for an audit entry of `action` whose detail `reason` is `reason`.
async fn audited(demo: &Demo, action: &'static str, reason: &str) -> Record {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            let entries = audit_entries(demo, action).await;
            if let Some(entry) = entries.into_iter().find(|e| e.detail["reason"] == reason) {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {action} audit entry with reason {reason}"))
}

/// The `console_sessions` rows of a service, newest first.
async fn session_rows(demo: &Demo, service_id: i64) -> Vec<SessionRecord> {
    let reading = console::sessions_for_service(demo.daemon().store(), service_id);
    within("reading the console sessions", reading)
        .await
        .unwrap()
}

async fn set_state(demo: &Demo, service_id: i64, state: &'static str) {
    let writing = demo.daemon().store().execute(
        "UPDATE services SET state = ?2 WHERE id = ?1",
        params![service_id, state],
    );
    within("changing the service's state", writing)
        .await
        .unwrap();
}

/// Reads the terminal's output until `needle` shows up.
async fn read_until(stream: &mut DuplexStream, output: &mut Vec<u8>, needle: &str) -> String {
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(at) = output
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
            {
                let taken: Vec<u8> = output.drain(..at + needle.len()).collect();
                return String::from_utf8_lossy(&taken).into_owned();
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "terminal closed before {needle:?}: {:?}",
                String::from_utf8_lossy(output)
            );
            output.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} on the terminal"))
}

/// Writes terminal input (a duplex write waits while the relay is not draining it).
async fn type_into(stream: &mut DuplexStream, bytes: &[u8]) {
    within("writing to the terminal", stream.write_all(bytes))
        .await
        .unwrap();
}

/// termproxy's input message for `text`.
fn input(text: &str) -> Vec<u8> {
    format!("0:{}:{text}", text.len()).into_bytes()
}

// ---------------------------------------------------------------------------------------------
// VNC and terminal through the relay
// ---------------------------------------------------------------------------------------------

async fn vnc_shows_the_screen_and_takes_keys(mode: VncPasswordMode) {
    let demo = demo_with(
        SimConfig {
            vnc_password: mode,
            ..fast_sim()
        },
        "",
    )
    .await;
    let (mut viewer, _closed, _) = vnc_viewer(&demo, "alice", service(&demo, "alice", 0)).await;
    assert_eq!(viewer.name(), "alice-web");
    let rects = within("a full framebuffer update", viewer.refresh()).await;
    assert!(rects.unwrap() > 0, "a framebuffer update");
    let before = viewer.framebuffer_hash();
    within("typing", viewer.type_text("hello relay\n"))
        .await
        .unwrap();
    // Incremental: the simulator answers once the typed text has changed the screen.
    within("an update showing the typed text", viewer.update(true))
        .await
        .unwrap();
    assert_ne!(
        before,
        viewer.framebuffer_hash(),
        "typing changes the screen"
    );
    let opened = audit_entries(&demo, "console.open").await;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].detail["kind"], "vnc");
    assert_eq!(opened[0].client.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn vnc_console_shows_the_vm_screen_and_takes_keys_when_the_node_returns_a_password() {
    vnc_shows_the_screen_and_takes_keys(VncPasswordMode::Returned).await;
}

#[tokio::test]
async fn vnc_console_shows_the_vm_screen_and_takes_keys_when_the_node_returns_only_a_ticket() {
    vnc_shows_the_screen_and_takes_keys(VncPasswordMode::TicketOnly).await;
}

#[tokio::test]
async fn terminal_console_echoes_a_typed_line_and_passes_resizes_to_the_shell() {
    let demo = demo().await;
    let url = console_url(&demo, "alice", service(&demo, "alice", 0), "term").await;
    let (socket, _) = open_ok(&demo, &url).await;
    let (mut stream, _closed) = byte_stream(socket);
    let mut output = Vec::new();
    type_into(&mut stream, b"1:132:43:").await;
    type_into(&mut stream, &input("echo hello-relay\r")).await;
    read_until(&mut stream, &mut output, "echo hello-relay").await;
    read_until(&mut stream, &mut output, "\r\nhello-relay").await;
    type_into(&mut stream, &input("stty size\r")).await;
    read_until(&mut stream, &mut output, "43 132").await;
}

#[tokio::test]
async fn two_viewers_watch_one_vm_and_suspension_closes_both() {
    let demo = demo().await;
    let vm = service(&demo, "alice", 0);
    let (mut first, first_closed, _) = vnc_viewer(&demo, "alice", vm).await;
    let (mut second, second_closed, _) = vnc_viewer(&demo, "alice", vm).await;
    assert!(
        within("the first viewer's update", first.refresh())
            .await
            .unwrap()
            > 0
    );
    assert!(
        within("the second viewer's update", second.refresh())
            .await
            .unwrap()
            > 0
    );
    assert_eq!(demo.sim().console_sessions(101), 2);

    set_state(&demo, vm, "suspended").await;
    let revoking = demo.daemon().console().revoke(vm, Revocation::Suspended);
    let closed = within("revoking the VM's consoles", revoking).await;
    assert_eq!(closed, 2);

    for closed in [first_closed, second_closed] {
        let (code, reason) = wait_closed(closed).await;
        assert_eq!((code, reason.as_str()), (4003, "the VM is suspended"));
    }
    audited(&demo, "console.close", "suspended").await;
    let (status, body) = mint(&demo, "alice", vm, "vnc").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn termination_closes_live_consoles_with_a_code_and_text_of_its_own() {
    let demo = demo().await;
    let vm = service(&demo, "alice", 0);
    let (mut viewer, closed, _) = vnc_viewer(&demo, "alice", vm).await;
    within("a framebuffer update", viewer.refresh())
        .await
        .unwrap();
    set_state(&demo, vm, "terminating").await;
    let revoking = demo.daemon().console().revoke(vm, Revocation::Terminated);
    assert_eq!(within("revoking the VM's consoles", revoking).await, 1);
    let (code, reason) = wait_closed(closed).await;
    assert_eq!((code, reason.as_str()), (4005, "the VM was terminated"));
    audited(&demo, "console.close", "terminated").await;
}

/// A second daemon on the demo's configuration, database and simulator, as behind a load
/// balancer; only its own address differs. Returns it with its base URL.
async fn second_daemon(data_dir: &std::path::Path) -> (Daemon, String) {
    let mut config = porthole::config::load(&data_dir.join("porthole.toml")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    config.listen = listener.local_addr().unwrap();
    config.public_url = base.parse().unwrap();
    let starting = Daemon::start_on(config, listener);
    let daemon = within("starting a second daemon", starting).await.unwrap();
    (daemon, base)
}

/// A terminal console that has echoed a line: relaying, not still opening.
async fn relaying_terminal(
    base: &str,
    bearer: &str,
    service_id: i64,
) -> (DuplexStream, oneshot::Receiver<Closed>) {
    let (mut terminal, closed) = terminal_at(base, bearer, service_id).await;
    type_into(&mut terminal, &input("echo relaying\r")).await;
    read_until(&mut terminal, &mut Vec::new(), "\r\nrelaying").await;
    (terminal, closed)
}

#[tokio::test]
async fn revocations_made_by_another_daemon_on_the_same_database_close_consoles_within_a_second() {
    let data = tempfile::tempdir().unwrap();
    let demo = within(
        "starting the simulator and the first daemon",
        Demo::start_with(DemoSetup {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(data.path().to_path_buf()),
            sim: fast_sim(),
            extra_config: String::new(),
            plugins_dir: None,
            plugin_runner: Some(env!("CARGO_BIN_EXE_porthole").into()),
        }),
    )
    .await
    .unwrap();
    let (other, other_url) = second_daemon(data.path()).await;
    let (alices, bobs) = (service(&demo, "alice", 0), service(&demo, "bob", 0));
    let (_alice, alice_closed) = relaying_terminal(&other_url, token(&demo, "alice"), alices).await;
    let (_bob, bob_closed) = relaying_terminal(&other_url, token(&demo, "bob"), bobs).await;

    // The first daemon suspends one VM and terminates the other, as its lifecycle engine
    // would: its own broadcast reaches no console, those live on the second daemon.
    set_state(&demo, alices, "suspended").await;
    set_state(&demo, bobs, "terminating").await;
    let changed = tokio::time::Instant::now();
    let hub = demo.daemon().console();
    assert_eq!(hub.revoke(alices, Revocation::Suspended).await, 0);
    assert_eq!(hub.revoke(bobs, Revocation::Terminated).await, 0);

    let second = Duration::from_secs(1);
    let within_a_second = |closed: oneshot::Receiver<Closed>| async move {
        tokio::time::timeout_at(changed + second, closed)
            .await
            .expect("not closed within a second of the change")
            .unwrap()
            .expect("closed without a close frame")
    };
    let (alice, bob) = tokio::join!(within_a_second(alice_closed), within_a_second(bob_closed));
    assert_eq!((alice.0, alice.1.as_str()), (4003, "the VM is suspended"));
    assert_eq!((bob.0, bob.1.as_str()), (4005, "the VM was terminated"));
    audited(&demo, "console.close", "suspended").await;
    audited(&demo, "console.close", "terminated").await;
    within("stopping the second daemon", other.stop())
        .await
        .unwrap();
}

#[tokio::test]
async fn suspension_revokes_tokens_already_handed_out() {
    let demo = demo().await;
    let vm = service(&demo, "alice", 0);
    let url = console_url(&demo, "alice", vm, "vnc").await;
    set_state(&demo, vm, "suspended").await;
    let revoking = demo.daemon().console().revoke(vm, Revocation::Suspended);
    within("revoking the VM's consoles", revoking).await;
    let refused = open(&url, Some(&origin(&demo)), &Transcript::default())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("revoked"), "{}", refused.body);
    audited(&demo, "console.refused", "revoked_token").await;
}

#[tokio::test]
async fn operators_see_live_sessions_and_can_close_one() {
    let demo = demo().await;
    let vm = service(&demo, "alice", 0);
    let (mut viewer, closed, _) = vnc_viewer(&demo, "alice", vm).await;
    within("a framebuffer update", viewer.refresh())
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let listing: Value = client
        .get(format!("{}/api/v1/console/sessions", origin(&demo)))
        .bearer_auth(token(&demo, "admin"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = listing["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{listing}");
    assert_eq!(sessions[0]["service_id"], vm);
    assert_eq!(sessions[0]["kind"], "vnc");
    assert!(sessions[0]["bytes_to_browser"].as_u64().unwrap() > 0);
    assert_eq!(listing["counters"]["live"], 1);
    assert_eq!(listing["counters"]["opened"], 1);

    let customer = client
        .get(format!("{}/api/v1/console/sessions", origin(&demo)))
        .bearer_auth(token(&demo, "alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(customer.status(), StatusCode::FORBIDDEN);

    let id = sessions[0]["id"].as_i64().unwrap();
    let closing = client
        .delete(format!("{}/api/v1/console/sessions/{id}", origin(&demo)))
        .bearer_auth(token(&demo, "admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(closing.status(), StatusCode::NO_CONTENT);
    let (code, reason) = wait_closed(closed).await;
    assert_eq!((code, reason.as_str()), (4004, "closed by an operator"));
    audited(&demo, "console.close", "closed_by_operator").await;
}

// ---------------------------------------------------------------------------------------------
// Keepalive, idle timeout and lifetime
// ---------------------------------------------------------------------------------------------

/// Pings every second, and a browser silent for a second after one is gone.
const FAST_KEEPALIVE: &str = "\n[console]\nkeepalive_secs = 1\npong_timeout_secs = 1\n";

#[tokio::test]
async fn a_browser_that_stops_answering_pings_is_closed_and_its_session_ended() {
    let demo = demo_with(fast_sim(), FAST_KEEPALIVE).await;
    let vm = service(&demo, "alice", 0);
    let url = console_url(&demo, "alice", vm, "term").await;
    // Never read again: like a browser behind a dead half-open connection, it answers no ping.
    let (_unread, _) = open_ok(&demo, &url).await;
    let entry = audited(&demo, "console.close", "browser_unresponsive").await;
    assert_eq!(entry.detail["code"], 4011);
    let sessions = session_rows(&demo, vm).await;
    assert!(sessions[0].ended_at.is_some(), "{sessions:?}");
    assert_eq!(
        sessions[0].close_reason.as_deref(),
        Some("browser_unresponsive")
    );
    assert_eq!(demo.daemon().console().counters().live, 0);
}

#[tokio::test]
async fn a_browser_that_answers_pings_keeps_a_quiet_console_open() {
    let demo = demo_with(fast_sim(), FAST_KEEPALIVE).await;
    let url = console_url(&demo, "alice", service(&demo, "alice", 0), "term").await;
    let (socket, _) = open_ok(&demo, &url).await;
    // The byte stream keeps reading, so the WebSocket library answers every ping.
    let (mut stream, closed) = byte_stream(socket);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut output = Vec::new();
    type_into(&mut stream, &input("echo still-here\r")).await;
    read_until(&mut stream, &mut output, "\r\nstill-here").await;
    drop(closed);
}

#[tokio::test]
async fn a_console_without_traffic_is_closed_with_4008_after_the_idle_timeout() {
    // Pings and pongs go back and forth meanwhile: they keep the connection, not the session.
    let config = "\n[console]\nidle_timeout_secs = 3\nkeepalive_secs = 1\n";
    let demo = demo_with(fast_sim(), config).await;
    let vm = service(&demo, "alice", 0);
    let (mut viewer, closed, _) = vnc_viewer(&demo, "alice", vm).await;
    within("a framebuffer update", viewer.refresh())
        .await
        .unwrap();
    // The viewer keeps reading (and answering pings) but asks for nothing more.
    let (code, reason) = wait_closed(closed).await;
    assert_eq!((code, reason.as_str()), (4008, "closed after inactivity"));
    let entry = audited(&demo, "console.close", "idle").await;
    assert_eq!(entry.detail["code"], 4008);
    let sessions = session_rows(&demo, vm).await;
    assert_eq!(sessions[0].close_reason.as_deref(), Some("idle"));
    assert_eq!(sessions[0].close_code, Some(4008));
}

#[tokio::test]
async fn a_busy_console_is_closed_with_4009_at_its_maximum_lifetime() {
    let demo = demo_with(fast_sim(), "\n[console]\nmax_lifetime_secs = 2\n").await;
    let vm = service(&demo, "alice", 0);
    let url = console_url(&demo, "alice", vm, "term").await;
    let (socket, _) = open_ok(&demo, &url).await;
    let (mut stream, closed) = byte_stream(socket);
    let typing = async {
        let mut chunk = vec![0u8; 4096];
        for line in 0u32.. {
            // Errors only once the console is closed, which `closed` reports.
            let _ = stream.write_all(&input(&format!("echo {line}\r"))).await;
            let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut chunk)).await;
        }
    };
    let ending = async {
        tokio::select! {
            ended = closed => ended,
            () = typing => unreachable!("typing never ends"),
        }
    };
    let (code, reason) = within("the lifetime ending a busy console", ending)
        .await
        .unwrap()
        .expect("the console ended without a close frame");
    assert_eq!(
        (code, reason.as_str()),
        (4009, "the session reached its maximum length")
    );
    let entry = audited(&demo, "console.close", "lifetime").await;
    assert!(
        entry.detail["bytes_to_vm"].as_u64().unwrap() > 0,
        "{entry:?}"
    );
    assert!(
        entry.detail["bytes_to_browser"].as_u64().unwrap() > 0,
        "{entry:?}"
    );
    let sessions = session_rows(&demo, vm).await;
    assert_eq!(sessions[0].close_reason.as_deref(), Some("lifetime"));
    assert_eq!(sessions[0].close_code, Some(4009));
}

// ---------------------------------------------------------------------------------------------
// A real VNC server: QEMU behind the simulator's vncproxy, as `qm vncproxy` fronts it
// ---------------------------------------------------------------------------------------------

/// Makes the simulator's VM `vm` a service of `username`'s, as an operator adopting it would.
async fn adopt(demo: &Demo, username: &'static str, vm: VmSeed) -> i64 {
    let store = demo.daemon().store();
    let adopting = async {
        let (owner, _) = users::find_for_login(store, username)
            .await?
            .expect("a demo account");
        services::insert_active(
            store,
            &ExistingVm {
                owner_id: owner.id,
                name: &vm.name,
                cluster: "sim",
                node: &vm.node,
                vmid: vm.vmid,
                plan: None,
                stopped: !vm.running,
            },
        )
        .await
    };
    within("adding the service", adopting).await.unwrap().id
}

#[tokio::test]
async fn vnc_console_relays_a_real_qemu_screen_and_takes_keys() {
    let qemu = Qemu::start("porthole-qemu").await;
    let vm = VmSeed {
        node: "pve1".into(),
        vmid: 150,
        name: "alice-qemu".into(),
        running: true,
        tags: Some("porthole".into()),
        vnc_backend: Some(qemu.vnc_backend()),
        ..VmSeed::default()
    };
    let sim = SimConfig {
        vms: vec![vm.clone()],
        ..fast_sim()
    };
    let demo = demo_with(sim, "").await;
    let service_id = adopt(&demo, "alice", vm).await;

    // `vnc_viewer` chose security None, so the daemon offered it. QEMU's and the simulator's
    // greetings end at the simulator and the daemon: what the browser reads is the daemon's.
    let (mut viewer, _closed, transcript) = vnc_viewer(&demo, "alice", service_id).await;
    let seen = transcript.lock().unwrap().clone();
    assert!(
        seen.windows(12).any(|w| w == b"RFB 003.008\n"),
        "the daemon greets the browser with RFB 3.8"
    );
    assert_eq!(
        viewer.name(),
        "QEMU (porthole-qemu)",
        "QEMU names its desktop after -name"
    );
    let desktop = qemu.desktop().await;
    assert_eq!(
        viewer.server_init(),
        &desktop,
        "the browser gets the ServerInit QEMU gives a direct client"
    );
    assert_eq!(demo.sim().console_sessions(150), 1, "through the simulator");

    let screen = usize::from(desktop.width) * usize::from(desktop.height);
    let rects = qemu_step("QEMU's full framebuffer update", viewer.refresh())
        .await
        .unwrap_or_else(|err| panic!("a full framebuffer update: {err}"));
    assert!(rects > 0, "a framebuffer update with rectangles");
    assert_eq!(
        viewer.last_update_area(),
        screen,
        "the update covers QEMU's {}x{} screen",
        desktop.width,
        desktop.height
    );
    // Until SeaBIOS has written on it the screen may still be blank; QEMU answers an
    // incremental request once something has changed.
    let drawn = async {
        while viewer.pixels().iter().all(|p| *p == viewer.pixels()[0]) {
            let update = viewer.update(true).await;
            update.unwrap_or_else(|err| panic!("an incremental update: {err}"));
        }
    };
    qemu_step("SeaBIOS drawing on QEMU's screen", drawn).await;

    qemu_step("a key press and release", viewer.type_text("\n"))
        .await
        .unwrap_or_else(|err| panic!("sending a key event: {err}"));
    qemu_step("a full update after the key", viewer.refresh())
        .await
        .unwrap_or_else(|err| panic!("a full update after the key: {err}"));
    assert_eq!(
        viewer.last_update_area(),
        screen,
        "the console still relays QEMU's whole screen"
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals: each answers with a reason and leaves an audit entry
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn console_refuses_an_expired_token() {
    let demo = demo().await;
    let url = console_url(&demo, "alice", service(&demo, "alice", 0), "vnc").await;
    let expiring = demo
        .daemon()
        .store()
        .execute("UPDATE console_tokens SET expires_at = 0", params![]);
    within("expiring the token", expiring).await.unwrap();
    let refused = open(&url, Some(&origin(&demo)), &Transcript::default())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("expired"), "{}", refused.body);
    let entry = audited(&demo, "console.refused", "expired_token").await;
    assert_ne!(entry.actor, "anonymous", "the token names who tried");
    assert_eq!(
        entry.target,
        Some(format!("service:{}", service(&demo, "alice", 0)))
    );
}

#[tokio::test]
async fn console_refuses_a_replayed_token() {
    let demo = demo().await;
    let url = console_url(&demo, "alice", service(&demo, "alice", 0), "vnc").await;
    let (first, _) = open_ok(&demo, &url).await;
    let refused = open(&url, Some(&origin(&demo)), &Transcript::default())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("already used"), "{}", refused.body);
    audited(&demo, "console.refused", "replayed_token").await;
    drop(first);
}

#[tokio::test]
async fn console_refuses_another_customers_vm_as_if_it_did_not_exist() {
    let demo = demo().await;
    let alices = service(&demo, "alice", 0);
    let (status, body) = mint(&demo, "bob", alices, "vnc").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (missing, _) = mint(&demo, "bob", 999_999, "vnc").await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
    audited(&demo, "console.refused", "not_found").await;
    let entries = audit_entries(&demo, "console.refused").await;
    let target = Some(format!("service:{alices}"));
    assert!(
        entries
            .iter()
            .any(|e| e.target == target && e.detail["reason"] == "not_found"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn console_refuses_a_suspended_vm_with_a_reason() {
    let demo = demo().await;
    let vm = service(&demo, "alice", 0);
    set_state(&demo, vm, "suspended").await;
    let (status, body) = mint(&demo, "alice", vm, "term").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "the VM is suspended");
    audited(&demo, "console.refused", "suspended").await;
}

#[tokio::test]
async fn console_refuses_a_foreign_origin_without_spending_the_token() {
    let demo = demo().await;
    let url = console_url(&demo, "alice", service(&demo, "alice", 0), "vnc").await;
    let refused = open(&url, Some("https://evil.example"), &Transcript::default())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("panel's own pages"),
        "{}",
        refused.body
    );
    let missing = open(&url, None, &Transcript::default()).await.unwrap_err();
    assert_eq!(missing.status, 403);
    let entry = audited(&demo, "console.refused", "wrong_origin").await;
    assert!(
        entry.actor.starts_with("user:"),
        "the token names who tried"
    );
    open_ok(&demo, &url).await;
}

#[tokio::test]
async fn console_refuses_a_missing_token() {
    let demo = demo().await;
    let url = format!("{}/api/v1/console/ws", origin(&demo)).replace("http://", "ws://");
    let refused = open(&url, Some(&origin(&demo)), &Transcript::default())
        .await
        .unwrap_err();
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.contains("token is required"),
        "{}",
        refused.body
    );
    audited(&demo, "console.refused", "missing_token").await;
}

#[tokio::test]
async fn console_refuses_kinds_it_does_not_know() {
    let demo = demo().await;
    let (status, body) = mint(&demo, "alice", service(&demo, "alice", 0), "rdp").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn console_limits_live_sessions_per_user() {
    let demo = demo_with(fast_sim(), "\n[console]\nmax_sessions_per_user = 1\n").await;
    let vm = service(&demo, "alice", 0);
    let (_viewer, _closed, _) = vnc_viewer(&demo, "alice", vm).await;
    let (status, body) = mint(&demo, "alice", vm, "vnc").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("open consoles"),
        "{body}"
    );
    audited(&demo, "console.refused", "user_session_limit").await;
    let (bob, _) = mint(&demo, "bob", service(&demo, "bob", 0), "vnc").await;
    assert_eq!(bob, StatusCode::CREATED, "the cap is per user");
}

#[tokio::test]
async fn a_cap_taken_between_minting_and_connecting_closes_the_socket_with_4029() {
    let demo = demo_with(fast_sim(), "\n[console]\nmax_sessions_per_user = 1\n").await;
    let vm = service(&demo, "alice", 0);
    // Both tokens are minted while alice has no console, so both pass the check at minting.
    let first = console_url(&demo, "alice", vm, "vnc").await;
    let second = console_url(&demo, "alice", vm, "vnc").await;
    let (socket, _) = open_ok(&demo, &first).await;
    let (stream, _first_closed) = byte_stream(socket);
    let connecting = RfbClient::connect(stream, Security::None);
    let mut viewer = within("the RFB handshake", connecting).await.unwrap();

    // A browser cannot read an HTTP refusal of a WebSocket, so the daemon upgrades to say why.
    let (socket, _) = open_ok(&demo, &second).await;
    let (_stream, closed) = byte_stream(socket);
    let (code, reason) = wait_closed(closed).await;
    assert_eq!(
        (code, reason.as_str()),
        (4029, "limit reached: you have too many consoles open")
    );
    audited(&demo, "console.refused", "user_session_limit").await;
    let sessions = session_rows(&demo, vm).await;
    assert_eq!(
        sessions.len(),
        1,
        "a refused socket is no session: {sessions:?}"
    );
    assert!(
        within("the first console's update", viewer.refresh())
            .await
            .unwrap()
            > 0,
        "the first console is untouched"
    );
}

#[tokio::test]
async fn console_closes_with_1011_when_the_node_refuses_the_daemons_credentials() {
    let demo = demo().await;
    demo.sim().inject(Fault {
        method: Some("POST".into()),
        path: "/nodes/{node}/qemu/{vmid}/vncproxy".into(),
        kind: FaultKind::Status {
            code: 401,
            message: "authentication failure".into(),
        },
        times: Times::ONCE,
    });
    let url = console_url(&demo, "alice", service(&demo, "alice", 0), "vnc").await;
    let (socket, _) = open_ok(&demo, &url).await;
    let (_stream, closed) = byte_stream(socket);
    let (code, reason) = wait_closed(closed).await;
    assert_eq!(
        (code, reason.as_str()),
        (1011, "the console could not be opened")
    );
    let entry = audited(&demo, "console.close", "upstream_unauthorized").await;
    assert!(
        entry.detail["detail"]
            .as_str()
            .unwrap()
            .contains("authentication")
    );
}

#[tokio::test]
async fn console_closes_with_4010_when_the_node_drops_the_session() {
    let demo = demo().await;
    let (mut viewer, closed, _) = vnc_viewer(&demo, "alice", service(&demo, "alice", 0)).await;
    within("a framebuffer update", viewer.refresh())
        .await
        .unwrap();
    assert_eq!(demo.sim().drop_console_sessions(101), 1);
    let (code, reason) = wait_closed(closed).await;
    assert_eq!((code, reason.as_str()), (4010, "the VM's console closed"));
    let entry = audited(&demo, "console.close", "upstream_closed").await;
    assert!(entry.detail["bytes_to_browser"].as_u64().unwrap() > 0);
    assert!(entry.detail["bytes_to_vm"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn console_reports_a_missed_connect_window_as_an_upstream_failure() {
    let demo = demo_with(
        SimConfig {
            console_connect_window: Duration::from_millis(100),
            ..fast_sim()
        },
        "",
    )
    .await;
    demo.sim().inject(Fault {
        method: Some("GET".into()),
        path: "/nodes/{node}/qemu/{vmid}/vncwebsocket".into(),
        kind: FaultKind::Latency { ms: 600 },
        times: Times::ONCE,
    });
    let url = console_url(&demo, "alice", service(&demo, "alice", 0), "term").await;
    let (socket, _) = open_ok(&demo, &url).await;
    let (_stream, closed) = byte_stream(socket);
    let (code, _) = wait_closed(closed).await;
    assert_eq!(code, 1011);
    let entry = audited(&demo, "console.close", "upstream_failed").await;
    let detail = entry.detail["detail"].as_str().unwrap();
    assert!(detail.contains("refused"), "{detail}");
}

// ---------------------------------------------------------------------------------------------
// Invariant 1: nothing of Proxmox reaches the browser
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_ticket_password_token_node_name_or_address_reaches_the_browser() {
    let demo = demo_with(
        SimConfig {
            vnc_password: VncPasswordMode::TicketOnly,
            ..fast_sim()
        },
        "",
    )
    .await;
    let vm = service(&demo, "alice", 0);
    let seen = Transcript::default();

    let (_, body) = mint_recorded(&demo, "alice", vm, "vnc", Some(&seen)).await;
    let url = body["url"].as_str().unwrap();
    let socket = open(url, Some(&origin(&demo)), &seen).await.unwrap();
    let (stream, closed) = byte_stream(socket);
    let connecting = RfbClient::connect(stream, Security::None);
    let mut viewer = within("the RFB handshake", connecting).await.unwrap();
    within("a full framebuffer update", viewer.refresh())
        .await
        .unwrap();
    within("typing", viewer.type_text("ls\n")).await.unwrap();
    within("an update showing the typed text", viewer.update(true))
        .await
        .unwrap();
    drop(viewer);
    let _ = tokio::time::timeout(PATIENCE, closed).await;

    let (_, body) = mint_recorded(&demo, "alice", vm, "term", Some(&seen)).await;
    let url = body["url"].as_str().unwrap();
    let socket = open(url, Some(&origin(&demo)), &seen).await.unwrap();
    let (mut stream, _closed) = byte_stream(socket);
    let mut output = Vec::new();
    type_into(&mut stream, &input("uname\r")).await;
    read_until(&mut stream, &mut output, "Linux").await;

    let tickets: Vec<String> = demo
        .sim()
        .requests()
        .into_iter()
        .filter_map(|r| r.params.get("vncticket").cloned())
        .collect();
    assert_eq!(
        tickets.len(),
        2,
        "one VNC and one terminal ticket were used"
    );
    let sim_addr = demo.sim().api_url();
    let mut secrets = vec![
        demo.sim().token_secret(),
        demo.sim().token_id(),
        "PVEAPIToken".to_owned(),
        "PVEVNC".to_owned(),
        "UPID:".to_owned(),
        "pve1".to_owned(),
        "pve2".to_owned(),
        format!(
            "{}:{}",
            sim_addr.host_str().unwrap(),
            sim_addr.port().unwrap()
        ),
        demo.sim().control_url().authority().to_owned(),
    ];
    secrets.extend(tickets);
    let seen = seen.lock().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("alice-web"),
        "the transcript holds the session"
    );
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the browser received {secret:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn console_limits_out_of_range_are_named_with_key_and_line() {
    let fixture = super::config::Fixture::new();
    let text = format!(
        "{}\n[console]\ntoken_ttl_secs = 60\n",
        super::config::Fixture::valid()
    );
    let err = porthole::config::parse(&text, "porthole.toml", fixture.dir.path()).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("console.token_ttl_secs"), "{err}");
    assert!(err.line.is_some(), "{err}");
    let silent = format!(
        "{}\n[console]\npong_timeout_secs = 0\n",
        super::config::Fixture::valid()
    );
    let err = porthole::config::parse(&silent, "porthole.toml", fixture.dir.path()).unwrap_err();
    assert_eq!(
        err.key.as_deref(),
        Some("console.pong_timeout_secs"),
        "{err}"
    );
    let fine = format!(
        "{}\n[console]\nidle_timeout_secs = 60\n",
        super::config::Fixture::valid()
    );
    let config = porthole::config::parse(&fine, "porthole.toml", fixture.dir.path()).unwrap();
    assert_eq!(config.console.idle_timeout_secs, 60);
    assert_eq!(config.console.token_ttl_secs, 20);
    assert_eq!(
        (
            config.console.keepalive_secs,
            config.console.pong_timeout_secs
        ),
        (25, 20)
    );
}

// ---------------------------------------------------------------------------------------------

/// A stream that appends everything read from it to a transcript.
#[derive(Debug)]
pub(crate) struct Recording<S> {
    inner: S,
    log: Transcript,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let fresh = &buf.filled()[before..];
            self.log.lock().unwrap().extend_from_slice(fresh);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
