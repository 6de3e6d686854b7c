//! Console calls: `vncproxy`, `termproxy`, and the `vncwebsocket` they open the way to.
//!
//! A console ticket is only good on the host that issued it, so both proxy calls report which
//! API endpoint answered, and [`Client::open_vncwebsocket`] connects to exactly that endpoint,
//! with this client's credentials and TLS trust. Tickets and VNC passwords are [`Sensitive`]:
//! their `Debug` is redacted and they never enter a log line, an error or a call description.

use std::fmt;

use reqwest::Method;
use serde::Deserialize;
use serde::de::Deserializer;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite;
use url::Url;

use super::api::{check_vm, vm_segments};
use super::client::{ApiRequest, Client, api_url};
use super::console_socket;
use super::error::{CallContext, ProxmoxError};
use super::ws_upgrade::{self, UpgradeError, UpgradeRequest};

/// pveproxy refuses WebSocket frames above 128 KiB; nothing larger is sent or accepted.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// The subprotocol pveproxy's `vncwebsocket` speaks (and echoes).
pub const SUBPROTOCOL: &str = "binary";

/// An open `vncwebsocket` to a node.
pub type ConsoleSocket = console_socket::ConsoleSocket<TlsStream<TcpStream>>;

/// A secret from Proxmox (a console ticket or VNC password). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Sensitive {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// The answer of `vncproxy`: where and how to open the VNC WebSocket.
#[derive(Debug, Clone)]
pub struct VncProxyTicket {
    /// The Proxmox user the ticket is bound to (e.g. `porthole@pve!daemon`).
    pub user: String,
    pub ticket: Sensitive,
    /// VNC port on the node (5900–5999), passed back to `vncwebsocket`.
    pub port: u16,
    /// The VNC password, from qemu-server ≥ 9.1.7; older nodes use the ticket instead.
    pub password: Option<Sensitive>,
    pub upid: String,
    /// The API endpoint that answered; the WebSocket must go to this host.
    pub endpoint: Url,
}

impl VncProxyTicket {
    /// What VNC authentication must prove: the password when the node generated one, else the
    /// ticket (of which VNC's DES key keeps the first 8 bytes).
    pub fn vnc_password(&self) -> &Sensitive {
        self.password.as_ref().unwrap_or(&self.ticket)
    }
}

/// The answer of `termproxy`.
#[derive(Debug, Clone)]
pub struct TermProxyTicket {
    pub user: String,
    pub ticket: Sensitive,
    pub port: u16,
    pub upid: String,
    pub endpoint: Url,
}

#[derive(Deserialize)]
struct ProxyAnswer {
    user: String,
    ticket: Sensitive,
    #[serde(deserialize_with = "port_from_number_or_text")]
    port: u16,
    upid: String,
    #[serde(default)]
    password: Option<Sensitive>,
}

/// Perl's JSON encoder writes the port as a number or as a string depending on how it was last
/// used; accept both.
fn port_from_number_or_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Text(String),
    }
    match Port::deserialize(deserializer)? {
        Port::Number(port) => Ok(port),
        Port::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

/// VNC ports a proxy hands out; anything else would make `vncwebsocket` refuse the call.
const VNC_PORTS: std::ops::RangeInclusive<u16> = 5900..=5999;

impl Client {
    /// `POST /nodes/{node}/qemu/{vmid}/vncproxy` with `websocket=1`, asking the node for a
    /// generated VNC password (`generate-password`, in the schema) so that VNC authentication
    /// does not rest on a ticket's first 8 bytes where the node supports it.
    pub async fn vncproxy(&self, node: &str, vmid: u32) -> Result<VncProxyTicket, ProxmoxError> {
        let request = ApiRequest::new(Method::POST, vm_segments(node, vmid, &["vncproxy"]))
            .check(check_vm(node, vmid))
            .param("websocket", "1")
            .param("generate-password", "1");
        let (answer, endpoint): (ProxyAnswer, Url) = self.request_answered_by(request).await?;
        self.check_port(answer.port, node, vmid, "vncproxy")?;
        Ok(VncProxyTicket {
            user: answer.user,
            ticket: answer.ticket,
            port: answer.port,
            password: answer.password.filter(|p| !p.expose().is_empty()),
            upid: answer.upid,
            endpoint,
        })
    }

    /// `POST /nodes/{node}/qemu/{vmid}/termproxy` (the VM's display terminal).
    pub async fn termproxy(&self, node: &str, vmid: u32) -> Result<TermProxyTicket, ProxmoxError> {
        let request = ApiRequest::new(Method::POST, vm_segments(node, vmid, &["termproxy"]))
            .check(check_vm(node, vmid));
        let (answer, endpoint): (ProxyAnswer, Url) = self.request_answered_by(request).await?;
        self.check_port(answer.port, node, vmid, "termproxy")?;
        Ok(TermProxyTicket {
            user: answer.user,
            ticket: answer.ticket,
            port: answer.port,
            upid: answer.upid,
            endpoint,
        })
    }

    fn check_port(&self, port: u16, node: &str, vmid: u32, call: &str) -> Result<(), ProxmoxError> {
        if VNC_PORTS.contains(&port) {
            return Ok(());
        }
        let ctx = self.context(format!("POST nodes/{node}/qemu/{vmid}/{call}"));
        Err(ctx.invalid_response(format!("port {port} is outside 5900-5999")))
    }

    /// Opens `GET /nodes/{node}/qemu/{vmid}/vncwebsocket?port=&vncticket=` on `endpoint` (the
    /// host that issued the ticket), authenticated as this client, with subprotocol `binary`,
    /// no extensions and frames of at most 128 KiB either way.
    pub async fn open_vncwebsocket(
        &self,
        endpoint: &Url,
        node: &str,
        vmid: u32,
        port: u16,
        ticket: &Sensitive,
    ) -> Result<ConsoleSocket, ProxmoxError> {
        let ctx = self.context(format!("GET nodes/{node}/qemu/{vmid}/vncwebsocket"));
        check_vm(node, vmid).map_err(|problem| ctx.invalid_request(problem))?;
        if !VNC_PORTS.contains(&port) {
            return Err(ctx.invalid_request(format!("port {port} is outside 5900-5999")));
        }
        let url = socket_url(endpoint, node, vmid, port, ticket);
        let connect = self.connect_socket(&ctx, endpoint, url);
        tokio::time::timeout(self.connect_timeout(), connect)
            .await
            .map_err(|_| ctx.transient("no WebSocket within the connect timeout".to_owned()))?
    }

    async fn connect_socket(
        &self,
        ctx: &CallContext,
        endpoint: &Url,
        url: Url,
    ) -> Result<ConsoleSocket, ProxmoxError> {
        let (host, server_name) = host_and_server_name(endpoint)
            .ok_or_else(|| ctx.invalid_request("endpoint has no usable host"))?;
        let port = endpoint.port_or_known_default().unwrap_or(8006);
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| ctx.transient(format!("connect: {e}")))?;
        // Keystrokes and small screen updates should not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let mut tls = TlsConnector::from(self.tls_config())
            .connect(server_name, tcp)
            .await
            .map_err(|e| tls_error(ctx, e))?;
        let host = match endpoint.port() {
            Some(port) => format!("{}:{port}", endpoint.host_str().unwrap_or_default()),
            None => endpoint.host_str().unwrap_or_default().to_owned(),
        };
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let headers = self.auth_header_pairs().await?;
        let request = UpgradeRequest {
            host: &host,
            target: &target,
            protocol: SUBPROTOCOL,
            headers: &headers,
        };
        let leftover = ws_upgrade::upgrade(&mut tls, &request)
            .await
            .map_err(|e| handshake_error(ctx, e))?;
        Ok(ConsoleSocket::new(tls, leftover))
    }
}

fn socket_url(endpoint: &Url, node: &str, vmid: u32, port: u16, ticket: &Sensitive) -> Url {
    let mut url = api_url(endpoint, &vm_segments(node, vmid, &["vncwebsocket"]));
    // `https` → `wss` cannot fail: both are special schemes.
    let _ = url.set_scheme("wss");
    url.query_pairs_mut()
        .append_pair("port", &port.to_string())
        .append_pair("vncticket", ticket.expose());
    url
}

fn host_and_server_name(
    endpoint: &Url,
) -> Option<(String, rustls::pki_types::ServerName<'static>)> {
    use rustls::pki_types::ServerName;
    match endpoint.host()? {
        url::Host::Domain(domain) => {
            let name = ServerName::try_from(domain.to_owned()).ok()?;
            Some((domain.to_owned(), name))
        }
        url::Host::Ipv4(ip) => Some((ip.to_string(), ServerName::IpAddress(ip.into()))),
        url::Host::Ipv6(ip) => Some((ip.to_string(), ServerName::IpAddress(ip.into()))),
    }
}

fn tls_error(ctx: &CallContext, error: std::io::Error) -> ProxmoxError {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(err) => {
            let failure = match super::tls::fingerprint_mismatch(err) {
                Some(mismatch) => super::TlsFailure::FingerprintMismatch {
                    actual: super::tls::format_fingerprint(&mismatch.actual),
                },
                None => super::TlsFailure::Handshake(err.to_string()),
            };
            ctx.tls(failure)
        }
        None => ctx.transient(format!("TLS: {error}")),
    }
}

/// Turns a failed upgrade into the error pveproxy's HTTP answer stands for (401 → unauthorized,
/// 5xx → transient, …), with the message from its body, else its reason phrase. The request
/// URL carries the ticket, so it is never part of the message.
fn handshake_error(ctx: &CallContext, error: UpgradeError) -> ProxmoxError {
    match error {
        UpgradeError::Refused {
            status,
            reason,
            body,
        } => {
            let message = body_message(&body)
                .or(reason.filter(|r| !r.trim().is_empty()))
                .or_else(|| {
                    reqwest::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            ctx.http_error(status, message, Default::default())
        }
        other => ctx.transient(format!("WebSocket upgrade: {other}")),
    }
}

/// pveproxy's JSON error body carries the message; anything else is quoted as text, shortened.
fn body_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<String>,
    }
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => parsed.message?,
        Err(_) => String::from_utf8_lossy(body).chars().take(200).collect(),
    };
    let message = message.trim().to_owned();
    (!message.is_empty()).then_some(message)
}

/// Re-exported for the relay, so that it need not name tungstenite's paths itself.
pub use tungstenite::Message as UpstreamMessage;
pub use tungstenite::protocol::CloseFrame as UpstreamCloseFrame;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let ticket = VncProxyTicket {
            user: "porthole@pve!daemon".into(),
            ticket: Sensitive::new("PVEVNC:SECRET-TICKET"),
            port: 5900,
            password: Some(Sensitive::new("pw-secret")),
            upid: "UPID:pve1:…".into(),
            endpoint: Url::parse("https://pve1:8006/").unwrap(),
        };
        let shown = format!("{ticket:?}");
        assert!(!shown.contains("SECRET-TICKET") && !shown.contains("pw-secret"));
    }

    #[test]
    fn the_vnc_password_is_the_generated_one_when_present_else_the_ticket() {
        let mut ticket = VncProxyTicket {
            user: "u".into(),
            ticket: Sensitive::new("ticket"),
            port: 5900,
            password: Some(Sensitive::new("generated")),
            upid: String::new(),
            endpoint: Url::parse("https://pve1:8006/").unwrap(),
        };
        assert_eq!(ticket.vnc_password().expose(), "generated");
        ticket.password = None;
        assert_eq!(ticket.vnc_password().expose(), "ticket");
    }

    #[test]
    fn the_socket_url_goes_to_the_answering_endpoint_with_port_and_encoded_ticket() {
        let endpoint = Url::parse("https://10.0.0.2:8006/").unwrap();
        let url = socket_url(&endpoint, "pve2", 101, 5901, &Sensitive::new("PVE:a+b/c=="));
        assert_eq!(
            url.as_str(),
            "wss://10.0.0.2:8006/api2/json/nodes/pve2/qemu/101/vncwebsocket?port=5901&vncticket=PVE%3Aa%2Bb%2Fc%3D%3D"
        );
    }

    #[test]
    fn ports_are_read_from_numbers_and_strings() {
        let answer: ProxyAnswer =
            serde_json::from_str(r#"{"user":"u","ticket":"t","port":"5901","upid":"x"}"#).unwrap();
        assert_eq!(answer.port, 5901);
        let answer: ProxyAnswer =
            serde_json::from_str(r#"{"user":"u","ticket":"t","port":5902,"upid":"x","cert":"c"}"#)
                .unwrap();
        assert_eq!(answer.port, 5902);
    }
}
