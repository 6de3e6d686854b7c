//! Consoles end to end: `vncproxy`/`termproxy` over HTTPS, `vncwebsocket` over WSS with the
//! simulator's own certificate, and the RFB and termproxy servers behind it, driven by the
//! crate's own clients.

use crate::fixture::{Auth, Sim, body};
use futures_util::{SinkExt as _, StreamExt as _};
use porthole_sim::rfb_client::ws::{self, WsTarget};
use porthole_sim::rfb_client::{RfbClient, RfbError, Security, TermClient};
use porthole_sim::{Fault, FaultKind, SimConfig, Simulator, Times, VmSeed, VncPasswordMode};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

const WEB: u32 = 100;
const DB: u32 = 101;
const STOPPED: u32 = 102;
/// Runs on the second node.
const OTHER_NODE: u32 = 103;

/// Guards against a hang turning into a stuck test run; never an assertion about speed.
const PATIENCE: Duration = Duration::from_secs(20);

async fn start_with(config: SimConfig) -> Sim {
    let vm = |vmid, name: &str, running| VmSeed {
        vmid,
        name: name.into(),
        running,
        ..VmSeed::default()
    };
    let config = SimConfig {
        auth_failure_delay: Duration::from_millis(20),
        vms: vec![
            vm(WEB, "web-1", true),
            vm(DB, "db-1", true),
            vm(STOPPED, "idle", false),
            VmSeed {
                node: "pve2".into(),
                ..vm(OTHER_NODE, "far", true)
            },
        ],
        ..config
    };
    let handle = Simulator::start(config)
        .await
        .unwrap_or_else(|err| panic!("simulator start: {err:#}"));
    let cert = reqwest::Certificate::from_pem(handle.cert_pem().as_bytes())
        .unwrap_or_else(|err| panic!("{err}"));
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .build()
        .unwrap_or_else(|err| panic!("client: {err}"));
    Sim { handle, client }
}

async fn start() -> Sim {
    start_with(SimConfig::default()).await
}

/// A `vncproxy` or `termproxy` answer.
struct Proxy {
    vmid: u32,
    port: u16,
    ticket: String,
    user: String,
    password: Option<String>,
    upid: String,
}

async fn open(sim: &Sim, vmid: u32, endpoint: &str) -> Proxy {
    let form: &[(&str, &str)] = if endpoint == "vncproxy" {
        &[("websocket", "1")]
    } else {
        &[]
    };
    let data = sim
        .ok(
            Method::POST,
            &format!("/nodes/pve1/qemu/{vmid}/{endpoint}"),
            form,
        )
        .await;
    let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
    Proxy {
        vmid,
        port: data["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0),
        ticket: text("ticket"),
        user: text("user"),
        password: data["password"].as_str().map(str::to_owned),
        upid: text("upid"),
    }
}

/// The WebSocket of `proxy`, reached through VM `vmid`'s endpoint with the API token.
fn target(sim: &Sim, vmid: u32, proxy: &Proxy) -> WsTarget {
    let url = ws::vncwebsocket_url(
        &sim.handle.api_url(),
        "pve1",
        vmid,
        proxy.port,
        &proxy.ticket,
    );
    let token = format!(
        "PVEAPIToken={}={}",
        sim.handle.token_id(),
        sim.handle.token_secret()
    );
    let tls = ws::tls_trusting(&sim.handle.cert_pem()).unwrap_or_else(|err| panic!("{err}"));
    WsTarget::new(url).header("Authorization", &token).tls(tls)
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("no answer within {PATIENCE:?}"))
}

async fn vnc(
    sim: &Sim,
    proxy: &Proxy,
    password: &str,
) -> Result<RfbClient<tokio::io::DuplexStream>, RfbError> {
    let stream = within(ws::open(&target(sim, proxy.vmid, proxy))).await?;
    within(RfbClient::connect(
        stream,
        Security::VncAuth(password.into()),
    ))
    .await
}

fn http_status(result: Result<impl Sized, RfbError>) -> Option<u16> {
    match result {
        Err(RfbError::Http { status }) => Some(status),
        _ => None,
    }
}

#[tokio::test]
async fn vncproxy_returns_a_password_that_authenticates_and_a_wrong_one_fails() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    let password = proxy.password.clone().unwrap_or_default();
    assert_eq!(password.len(), 8);
    assert_eq!(proxy.user, sim.handle.token_id());
    assert!((5900..=5999).contains(&proxy.port));
    let client = vnc(&sim, &proxy, &password)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(client.name(), "web-1");
    assert_eq!(
        (client.server_init().width, client.server_init().height),
        (800, 600)
    );

    let proxy = open(&sim, WEB, "vncproxy").await;
    let wrong = vnc(&sim, &proxy, "not-it").await;
    assert!(
        matches!(wrong, Err(RfbError::Refused(ref reason)) if reason == "Authentication failed"),
        "{:?}",
        wrong.err()
    );
}

#[tokio::test]
async fn ticket_only_mode_authenticates_with_the_tickets_first_eight_bytes() {
    let sim = start_with(SimConfig {
        vnc_password: VncPasswordMode::TicketOnly,
        ..SimConfig::default()
    })
    .await;
    let proxy = open(&sim, DB, "vncproxy").await;
    assert_eq!(proxy.password, None);
    let client = vnc(&sim, &proxy, &proxy.ticket)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(client.name(), "db-1");

    let proxy = open(&sim, DB, "vncproxy").await;
    assert!(matches!(
        vnc(&sim, &proxy, "PVEVNC:0").await,
        Err(RfbError::Refused(_))
    ));
}

#[tokio::test]
async fn key_events_change_the_framebuffer() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    let password = proxy.password.clone().unwrap_or_default();
    let mut client = vnc(&sim, &proxy, &password)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    within(client.refresh())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let before = client.framebuffer_hash();
    assert!(
        client.pixels().iter().all(|&p| p == 0 || p == 0x00aa_aaaa),
        "a dark text console"
    );
    assert!(client.pixels().contains(&0x00aa_aaaa), "with text on it");

    within(client.type_text("root"))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let mut hash = before.clone();
    while hash == before {
        within(client.update(true))
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        hash = client.framebuffer_hash();
    }
    let screen = sim.handle.console_screen_text(WEB).unwrap_or_default();
    assert_eq!(screen.get(2).map(String::as_str), Some("web-1 login: root"));
    assert_eq!(sim.handle.console_sessions(WEB), 1);
}

#[tokio::test]
async fn ticket_for_one_vm_is_refused_on_another_vms_endpoint() {
    let sim = start().await;
    let web = open(&sim, WEB, "vncproxy").await;
    let db = open(&sim, DB, "vncproxy").await;
    let crossed = Proxy {
        port: db.port,
        ..web
    };
    assert_eq!(
        http_status(within(ws::open(&target(&sim, DB, &crossed))).await),
        Some(401)
    );
    assert_eq!(
        http_status(within(ws::open(&target(&sim, WEB, &crossed))).await),
        Some(401)
    );
}

#[tokio::test]
async fn proxy_accepts_only_one_connection() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    let first = within(ws::open(&target(&sim, WEB, &proxy))).await;
    assert!(first.is_ok());
    let second = within(ws::open(&target(&sim, WEB, &proxy))).await;
    assert_eq!(http_status(second), Some(500));
}

#[tokio::test]
async fn connection_after_the_connect_window_is_refused() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    sim.handle.advance_clock(Duration::from_secs(11));
    assert_eq!(
        http_status(within(ws::open(&target(&sim, WEB, &proxy))).await),
        Some(500)
    );
    let task = sim.wait_task("pve1", &proxy.upid).await;
    assert_eq!(task["exitstatus"], "connection timed out");
    let next = open(&sim, WEB, "vncproxy").await;
    assert_eq!(
        next.port, proxy.port,
        "the expired proxy's port is free again"
    );
}

#[tokio::test]
async fn ticket_older_than_its_lifetime_is_refused() {
    let sim = start_with(SimConfig {
        console_connect_window: Duration::from_secs(120),
        ..SimConfig::default()
    })
    .await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    sim.handle.advance_clock(Duration::from_secs(41));
    assert_eq!(
        http_status(within(ws::open(&target(&sim, WEB, &proxy))).await),
        Some(401)
    );
}

#[tokio::test]
async fn websocket_of_another_user_is_refused() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    let (ticket, _) = sim.login().await;
    let mut as_user = target(&sim, WEB, &proxy);
    as_user.headers = vec![("Cookie".into(), format!("PVEAuthCookie={ticket}"))];
    assert_eq!(http_status(within(ws::open(&as_user)).await), Some(401));
    let mut anonymous = target(&sim, WEB, &proxy);
    anonymous.headers.clear();
    assert_eq!(http_status(within(ws::open(&anonymous)).await), Some(401));
}

#[tokio::test]
async fn upgrade_echoes_binary_and_never_negotiates_compression() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    let offer = target(&sim, WEB, &proxy).header(
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits",
    );
    let (_ws, response) = within(ws::connect(&offer))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(response.status(), 101);
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("binary")
    );
    assert!(response.headers().get("sec-websocket-extensions").is_none());
}

#[tokio::test]
async fn upgrade_without_the_binary_subprotocol_is_refused() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    let mut plain = target(&sim, WEB, &proxy);
    plain.protocol = None;
    assert_eq!(http_status(within(ws::open(&plain)).await), Some(400));
}

/// Sends one raw frame after the upgrade and reads until the server closes the connection;
/// returns the close code it sent, if any.
async fn close_code_after(sim: &Sim, frame: Frame) -> Option<u16> {
    let proxy = open(sim, WEB, "vncproxy").await;
    let (mut ws, _) = within(ws::connect(&target(sim, WEB, &proxy)))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    ws.send(Message::Frame(frame))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let mut code = None;
    while let Some(message) = within(ws.next()).await {
        match message {
            Ok(Message::Close(Some(close))) => code = Some(u16::from(close.code)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    code
}

#[tokio::test]
async fn fragmented_frame_closes_the_connection_with_a_protocol_error() {
    let sim = start().await;
    let header = FrameHeader {
        is_final: false,
        opcode: OpCode::Data(Data::Binary),
        ..FrameHeader::default()
    };
    let frame = Frame::from_payload(header, b"RFB 003.008\n".to_vec().into());
    assert_eq!(close_code_after(&sim, frame).await, Some(1002));
}

#[tokio::test]
async fn rsv_bits_close_the_connection_with_a_protocol_error() {
    let sim = start().await;
    let header = FrameHeader {
        rsv1: true,
        opcode: OpCode::Data(Data::Binary),
        ..FrameHeader::default()
    };
    let frame = Frame::from_payload(header, b"compressed?".to_vec().into());
    assert_eq!(close_code_after(&sim, frame).await, Some(1002));
}

#[tokio::test]
async fn frame_over_128_kib_is_refused() {
    let sim = start().await;
    let frame = Frame::message(vec![0u8; 128 * 1024 + 1], OpCode::Data(Data::Binary), true);
    assert_eq!(close_code_after(&sim, frame).await, Some(1009));
}

#[tokio::test]
async fn termproxy_answers_ok_then_echoes_and_reports_the_resized_terminal() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "termproxy").await;
    assert_eq!(proxy.password, None);
    let stream = within(ws::open(&target(&sim, WEB, &proxy)))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let mut term = within(TermClient::connect(stream, &proxy.user, &proxy.ticket))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    within(term.read_until("root@web-1:~# "))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    term.send_input("echo hello\r")
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let echoed = within(term.read_until("root@web-1:~# "))
        .await
        .unwrap_or_default();
    assert_eq!(echoed, "echo hello\r\nhello\r\nroot@web-1:~# ");
    term.resize(132, 43)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    term.ping().await.unwrap_or_else(|err| panic!("{err}"));
    term.send_input("stty size\r")
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let size = within(term.read_until("root@web-1:~# "))
        .await
        .unwrap_or_default();
    assert_eq!(size, "stty size\r\n43 132\r\nroot@web-1:~# ");
}

#[tokio::test]
async fn termproxy_closes_on_a_wrong_preamble() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "termproxy").await;
    let stream = within(ws::open(&target(&sim, WEB, &proxy)))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let refused = within(TermClient::connect(stream, "root@pam", &proxy.ticket)).await;
    assert!(
        matches!(refused, Err(RfbError::Refused(_))),
        "{:?}",
        refused.err()
    );
}

#[tokio::test]
async fn vncproxy_on_a_stopped_vm_fails_like_pve() {
    let sim = start().await;
    let response = sim
        .call(
            Method::POST,
            &format!("/nodes/pve1/qemu/{STOPPED}/vncproxy"),
            Auth::Token,
            &[],
        )
        .await;
    let (status, body) = body(response).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (500, Some("VM 102 not running\n"))
    );
}

#[tokio::test]
async fn vncproxy_validates_its_parameters_against_the_schema() {
    let sim = start().await;
    let response = sim
        .call(
            Method::POST,
            &format!("/nodes/pve1/qemu/{WEB}/vncproxy"),
            Auth::Token,
            &[("bogus", "1")],
        )
        .await;
    let (status, body) = body(response).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["bogus"].is_string(), "{body}");
}

#[tokio::test]
async fn ports_are_per_node_and_run_out_after_a_hundred() {
    let sim = start().await;
    let mut ports = Vec::new();
    for _ in 0..100 {
        ports.push(open(&sim, WEB, "termproxy").await.port);
    }
    assert_eq!(ports, (5900..=5999).collect::<Vec<u16>>());
    let response = sim
        .call(
            Method::POST,
            &format!("/nodes/pve1/qemu/{WEB}/termproxy"),
            Auth::Token,
            &[],
        )
        .await;
    let (status, body) = body(response).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (500, Some("unable to find free port (5900-5999)\n"))
    );
    let data = sim
        .ok(
            Method::POST,
            &format!("/nodes/pve2/qemu/{OTHER_NODE}/termproxy"),
            &[],
        )
        .await;
    assert_eq!(data["port"], 5900, "another node has its own ports");
}

#[tokio::test]
async fn dropping_console_sessions_cuts_them_mid_stream_and_ends_the_task() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "termproxy").await;
    let stream = within(ws::open(&target(&sim, WEB, &proxy)))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let mut term = within(TermClient::connect(stream, &proxy.user, &proxy.ticket))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    within(term.read_until("# "))
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(sim.handle.console_sessions(WEB), 1);
    assert_eq!(sim.handle.drop_console_sessions(WEB), 1);
    let mut stream = term.into_inner();
    let mut rest = Vec::new();
    let _ = within(stream.read_to_end(&mut rest)).await;
    assert_eq!(sim.handle.console_sessions(WEB), 0);
    let task = sim.wait_task("pve1", &proxy.upid).await;
    assert_eq!(task["exitstatus"], "OK");
}

#[tokio::test]
async fn control_api_counts_and_drops_console_sessions() {
    let sim = start().await;
    let proxy = open(&sim, DB, "vncproxy").await;
    let password = proxy.password.clone().unwrap_or_default();
    let _client = vnc(&sim, &proxy, &password)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let url = format!("{}vms/{DB}/consoles", sim.handle.control_url());
    let count: Value = reqwest::get(&url)
        .await
        .unwrap_or_else(|err| panic!("{err}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(count["sessions"], 1);
    let cut: Value = reqwest::Client::new()
        .delete(&url)
        .send()
        .await
        .unwrap_or_else(|err| panic!("{err}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(cut["cut"], 1);
}

#[tokio::test]
async fn drop_fault_on_vncwebsocket_drops_the_upgrade() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    sim.handle.inject(Fault {
        method: None,
        path: "/nodes/{node}/qemu/{vmid}/vncwebsocket".into(),
        kind: FaultKind::Drop {},
        times: Times::ONCE,
    });
    let dropped = within(ws::open(&target(&sim, WEB, &proxy))).await;
    assert!(
        matches!(dropped, Err(RfbError::WebSocket(_))),
        "{:?}",
        dropped.err()
    );
    let password = proxy.password.clone().unwrap_or_default();
    assert!(
        vnc(&sim, &proxy, &password).await.is_ok(),
        "the proxy still waits for its one connection"
    );
}

/// A stand-in for QEMU's `-vnc 127.0.0.1:N` without a password: RFB 3.8, security None, and a
/// ServerInit naming itself. Returns its address.
async fn fake_qemu_vnc_server() -> String {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut version = [0u8; 12];
        let mut chosen = [0u8; 1];
        let mut shared = [0u8; 1];
        let _ = stream.write_all(b"RFB 003.008\n").await;
        let _ = stream.read_exact(&mut version).await;
        let _ = stream.write_all(&[1, 1]).await;
        let _ = stream.read_exact(&mut chosen).await;
        let _ = stream.write_all(&0u32.to_be_bytes()).await;
        let _ = stream.read_exact(&mut shared).await;
        let mut init = vec![0, 64, 0, 48];
        init.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
        init.extend_from_slice(&9u32.to_be_bytes());
        init.extend_from_slice(b"real-qemu");
        let _ = stream.write_all(&init).await;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    address
}

#[tokio::test]
async fn vm_with_a_vnc_backend_fronts_the_real_server_behind_vnc_auth() {
    let sim = start().await;
    let backend = fake_qemu_vnc_server().await;
    sim.handle
        .add_vm(VmSeed {
            vmid: 200,
            name: "fronted".into(),
            running: true,
            vnc_backend: Some(backend),
            ..VmSeed::default()
        })
        .unwrap_or_else(|err| panic!("{err}"));
    let proxy = open(&sim, 200, "vncproxy").await;
    let wrong = vnc(&sim, &proxy, "wrong").await;
    assert!(
        matches!(wrong, Err(RfbError::Refused(_))),
        "the simulator checks the password itself"
    );
    let proxy = open(&sim, 200, "vncproxy").await;
    let password = proxy.password.clone().unwrap_or_default();
    let client = vnc(&sim, &proxy, &password)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(client.name(), "real-qemu");
    assert_eq!(
        (client.server_init().width, client.server_init().height),
        (64, 48)
    );
}

#[tokio::test]
async fn stopping_the_vm_ends_its_console_sessions() {
    let sim = start().await;
    let proxy = open(&sim, WEB, "vncproxy").await;
    let password = proxy.password.clone().unwrap_or_default();
    let client = vnc(&sim, &proxy, &password)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let upid = sim
        .ok(
            Method::POST,
            &format!("/nodes/pve1/qemu/{WEB}/status/stop"),
            &[],
        )
        .await;
    sim.wait_task("pve1", upid.as_str().unwrap_or_default())
        .await;
    let mut stream = client.into_inner();
    let mut rest = Vec::new();
    let _ = within(stream.read_to_end(&mut rest)).await;
    assert_eq!(sim.handle.console_sessions(WEB), 0);
}
