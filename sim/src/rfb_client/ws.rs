//! WebSockets for the clients: open one (plain or TLS with a given trust, with extra headers such
//! as `Authorization: PVEAPIToken=…`, asking for the `binary` subprotocol as noVNC does), and turn
//! it into a byte stream: incoming binary and text frames become bytes to read, written bytes go
//! out as binary frames of at most 64 KiB (pveproxy refuses frames over 128 KiB).

use super::RfbError;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, DuplexStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Anything a WebSocket can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type WebSocket = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;
pub type HandshakeResponse = tokio_tungstenite::tungstenite::handshake::client::Response;

/// The largest frame the byte stream sends.
const MAX_OUT_FRAME: usize = 64 * 1024;

/// Where and how to open a WebSocket.
#[derive(Clone)]
pub struct WsTarget {
    /// `wss://…` or `ws://…`.
    pub url: url::Url,
    /// Extra request headers, e.g. `("Authorization", "PVEAPIToken=…")` or a `Cookie`.
    pub headers: Vec<(String, String)>,
    /// `Sec-WebSocket-Protocol`; `Some("binary")` unless set otherwise.
    pub protocol: Option<String>,
    /// TLS settings for `wss://`; `None` trusts nothing and fails.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl WsTarget {
    pub fn new(url: url::Url) -> Self {
        Self {
            url,
            headers: Vec::new(),
            protocol: Some("binary".into()),
            tls: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

/// A TLS client configuration that trusts only the given PEM certificate(s), e.g. the
/// simulator's self-signed one.
pub fn tls_trusting(cert_pem: &str) -> Result<Arc<rustls::ClientConfig>, RfbError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        let cert = cert.map_err(|err| RfbError::WebSocket(format!("certificate PEM: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| RfbError::WebSocket(format!("certificate: {err}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| RfbError::WebSocket(err.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The `vncwebsocket` URL of a simulator (or PVE node) for a `vncproxy`/`termproxy` answer.
pub fn vncwebsocket_url(
    api_url: &url::Url,
    node: &str,
    vmid: u32,
    port: u16,
    ticket: &str,
) -> url::Url {
    let mut url = api_url.clone();
    let scheme = if api_url.scheme() == "http" {
        "ws"
    } else {
        "wss"
    };
    let _ = url.set_scheme(scheme);
    url.set_path(&format!("/api2/json/nodes/{node}/qemu/{vmid}/vncwebsocket"));
    url.query_pairs_mut()
        .clear()
        .append_pair("port", &port.to_string())
        .append_pair("vncticket", ticket);
    url
}

/// Opens the WebSocket; the handshake response shows what the server negotiated.
pub async fn connect(target: &WsTarget) -> Result<(WebSocket, HandshakeResponse), RfbError> {
    let ws_error = |err: &dyn std::fmt::Display| RfbError::WebSocket(err.to_string());
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ws_error(&e))?;
    for (name, value) in &target.headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::try_from(name.as_str())
            .map_err(|e| ws_error(&e))?;
        request.headers_mut().append(
            name,
            HeaderValue::from_str(value).map_err(|e| ws_error(&e))?,
        );
    }
    if let Some(protocol) = &target.protocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).map_err(|e| ws_error(&e))?,
        );
    }
    let host = target
        .url
        .host_str()
        .ok_or_else(|| RfbError::WebSocket("URL without host".into()))?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = target.url.port_or_known_default().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let io: Box<dyn Io> = if target.url.scheme() == "wss" {
        let config = target
            .tls
            .clone()
            .ok_or_else(|| RfbError::WebSocket("wss:// needs a TLS configuration".into()))?;
        let name = ServerName::try_from(host).map_err(|e| ws_error(&e))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    tokio_tungstenite::client_async(request, io)
        .await
        .map_err(|err| match err {
            tokio_tungstenite::tungstenite::Error::Http(response) => RfbError::Http {
                status: response.status().as_u16(),
            },
            other => ws_error(&other),
        })
}

/// Opens the WebSocket and returns it as a byte stream.
pub async fn open(target: &WsTarget) -> Result<DuplexStream, RfbError> {
    let (ws, _) = connect(target).await?;
    Ok(byte_stream(ws))
}

/// Relays a WebSocket to the returned byte stream in a background task. The stream reads EOF
/// when the WebSocket closes; shutting down or dropping the stream closes the WebSocket.
pub fn byte_stream(ws: WebSocket) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(2 * MAX_OUT_FRAME);
    tokio::spawn(async move {
        let (mut sink, mut frames) = ws.split();
        let (mut from_user, mut to_user) = tokio::io::split(theirs);
        let incoming = async move {
            while let Some(Ok(message)) = frames.next().await {
                let data: Bytes = match message {
                    Message::Binary(data) => data,
                    Message::Text(text) => Bytes::copy_from_slice(text.as_bytes()),
                    Message::Close(_) => break,
                    _ => continue,
                };
                if to_user.write_all(&data).await.is_err() {
                    break;
                }
            }
            let _ = to_user.shutdown().await;
        };
        let outgoing = async move {
            let mut chunk = vec![0u8; MAX_OUT_FRAME];
            loop {
                match from_user.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let frame = Message::Binary(Bytes::copy_from_slice(&chunk[..n]));
                        if sink.send(frame).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = sink.send(Message::Close(None)).await;
        };
        tokio::join!(incoming, outgoing);
    });
    ours
}
