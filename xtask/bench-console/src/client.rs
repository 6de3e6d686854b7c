//! The browser's side: a lean RFB client over a WebSocket (or, for the baseline, plain TCP) that
//! counts and skips pixel data instead of decoding it, so the client is never the bottleneck, and
//! the three ways to reach the bench VM's VNC server:
//!
//! - `relay`: token from the daemon, WebSocket to the daemon (security None offered by it);
//! - `direct`: `vncproxy` on the simulator, WSS `vncwebsocket` with the API token, VNC auth —
//!   the node side of the relay alone, to tell what the daemon adds;
//! - `websockify`: WebSocket to websockify, which connects to the VNC server over TCP.

use anyhow::{Context as _, bail, ensure};
use bytes::{Bytes, BytesMut};
use des::Des;
use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt as _, KeyInit as _};
use futures_util::{SinkExt as _, StreamExt as _};
use porthole_sim::rfb_client::ws::{self, WebSocket, WsTarget};
use serde_json::Value;
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Everything the child process told us about the daemon and the simulator.
pub struct Panel {
    pub url: String,
    pub token: String,
    pub sim_api: url::Url,
    pub sim_token: String,
    pub sim_tls: Arc<rustls::ClientConfig>,
    pub http: reqwest::Client,
    pub sim_http: reqwest::Client,
}

/// A VM's service id and location.
#[derive(Debug, Clone)]
pub struct Vm {
    pub service: i64,
    pub node: String,
    pub vmid: u32,
}

impl Vm {
    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
        Ok(Self {
            service: value["service"].as_i64().context("service id")?,
            node: value["node"].as_str().context("node")?.to_owned(),
            vmid: value["vmid"]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .context("vmid")?,
        })
    }
}

impl Panel {
    pub fn from_json(info: &Value) -> anyhow::Result<Self> {
        let text = |key: &str| -> anyhow::Result<String> {
            Ok(info[key]
                .as_str()
                .with_context(|| format!("no {key}"))?
                .to_owned())
        };
        let cert = text("sim_cert")?;
        let sim_http = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes())?)
            .build()?;
        Ok(Self {
            url: text("url")?,
            token: text("token")?,
            sim_api: text("sim_api")?.parse()?,
            sim_token: text("sim_token")?,
            sim_tls: ws::tls_trusting(&cert).map_err(|e| anyhow::anyhow!("{e}"))?,
            http: reqwest::Client::new(),
            sim_http,
        })
    }

    /// A console token and URL from the daemon, as the panel's page gets one.
    pub async fn console_url(&self, vm: &Vm) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/api/v1/vms/{}/console", self.url, vm.service))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "kind": "vnc" }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(
            status.is_success(),
            "console token refused: {status} {body}"
        );
        Ok(body["url"].as_str().context("no url")?.to_owned())
    }

    /// Through the daemon: token, WebSocket, RFB with security None.
    pub async fn open_relay(&self, vm: &Vm) -> anyhow::Result<Link> {
        let url = self.console_url(vm).await?;
        let target = WsTarget::new(url.parse()?).header("Origin", &self.url);
        let mut link = Link::ws(&target).await?;
        link.handshake(None).await?;
        Ok(link)
    }

    /// Straight to the simulated node: `vncproxy`, WSS, VNC authentication.
    pub async fn open_direct(&self, vm: &Vm) -> anyhow::Result<Link> {
        let mut url = self.sim_api.clone();
        url.set_path(&format!(
            "/api2/json/nodes/{}/qemu/{}/vncproxy",
            vm.node, vm.vmid
        ));
        let response = self
            .sim_http
            .post(url)
            .header("Authorization", &self.sim_token)
            .form(&[("websocket", "1")])
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "vncproxy: {}",
            response.status()
        );
        let body: Value = response.json().await?;
        let data = &body["data"];
        let port = data["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .context("vncproxy port")?;
        let ticket = data["ticket"].as_str().context("vncproxy ticket")?;
        let password = data["password"].as_str().unwrap_or(ticket).to_owned();
        let url = ws::vncwebsocket_url(&self.sim_api, &vm.node, vm.vmid, port, ticket);
        let target = WsTarget::new(url)
            .header("Authorization", &self.sim_token)
            .tls(self.sim_tls.clone());
        let mut link = Link::ws(&target).await?;
        link.handshake(Some(&password)).await?;
        Ok(link)
    }
}

/// Through websockify (plain `ws://`), which dials the VNC server itself.
pub async fn open_websockify(addr: std::net::SocketAddr) -> anyhow::Result<Link> {
    let target = WsTarget::new(format!("ws://{addr}/").parse()?);
    let mut link = Link::ws(&target).await?;
    link.handshake(None).await?;
    Ok(link)
}

/// Plain TCP to the VNC server: the floor under every path.
pub async fn open_tcp(addr: std::net::SocketAddr) -> anyhow::Result<Link> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut link = Link::Tcp(stream, BytesMut::new());
    link.handshake(None).await?;
    Ok(link)
}

/// One viewer's connection.
pub enum Link {
    Ws(Box<WebSocket>, BytesMut),
    Tcp(TcpStream, BytesMut),
}

impl Link {
    async fn ws(target: &WsTarget) -> anyhow::Result<Self> {
        let (socket, _) = ws::connect(target)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self::Ws(Box::new(socket), BytesMut::new()))
    }

    fn pending(&mut self) -> &mut BytesMut {
        match self {
            Self::Ws(_, pending) | Self::Tcp(_, pending) => pending,
        }
    }

    /// The next bytes from the peer, whole as they arrived.
    async fn next_chunk(&mut self) -> anyhow::Result<Bytes> {
        match self {
            Self::Ws(socket, _) => loop {
                match socket.next().await {
                    Some(Ok(Message::Binary(data))) => return Ok(data),
                    Some(Ok(Message::Text(text))) => {
                        return Ok(Bytes::copy_from_slice(text.as_bytes()));
                    }
                    Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => bail!("websocket: {err}"),
                    None => bail!("websocket ended"),
                }
            },
            Self::Tcp(stream, _) => {
                let mut chunk = vec![0u8; 256 * 1024];
                let n = stream.read(&mut chunk).await?;
                ensure!(n > 0, "connection ended");
                chunk.truncate(n);
                Ok(chunk.into())
            }
        }
    }

    /// Waits until at least one byte from the peer is buffered, without consuming it.
    pub async fn wait_for_data(&mut self) -> anyhow::Result<()> {
        while self.pending().is_empty() {
            let chunk = self.next_chunk().await?;
            self.pending().extend_from_slice(&chunk);
        }
        Ok(())
    }

    pub async fn read_exact(&mut self, count: usize) -> anyhow::Result<Bytes> {
        while self.pending().len() < count {
            let chunk = self.next_chunk().await?;
            self.pending().extend_from_slice(&chunk);
        }
        Ok(self.pending().split_to(count).freeze())
    }

    /// Consumes `count` bytes without copying whole chunks that fall inside them.
    pub async fn skip(&mut self, mut count: usize) -> anyhow::Result<()> {
        let buffered = self.pending().len().min(count);
        let _ = self.pending().split_to(buffered);
        count -= buffered;
        while count > 0 {
            let chunk = self.next_chunk().await?;
            if chunk.len() <= count {
                count -= chunk.len();
            } else {
                self.pending().extend_from_slice(&chunk[count..]);
                count = 0;
            }
        }
        Ok(())
    }

    pub async fn send(&mut self, data: Bytes) -> anyhow::Result<()> {
        match self {
            Self::Ws(socket, _) => socket.send(Message::Binary(data)).await?,
            Self::Tcp(stream, _) => stream.write_all(&data).await?,
        }
        Ok(())
    }

    /// Version, security (None, or VNC authentication with `password`), ClientInit, ServerInit,
    /// and SetEncodings Raw.
    async fn handshake(&mut self, password: Option<&str>) -> anyhow::Result<()> {
        let version = self.read_exact(12).await?;
        ensure!(
            version.starts_with(b"RFB 003."),
            "server version {version:?}"
        );
        self.send(Bytes::from_static(b"RFB 003.008\n")).await?;
        let count = self.read_exact(1).await?[0];
        ensure!(count > 0, "the server refused the connection");
        let offered = self.read_exact(usize::from(count)).await?;
        match password {
            Some(password) if offered.contains(&2) => {
                self.send(Bytes::from_static(&[2])).await?;
                let challenge = self.read_exact(16).await?;
                self.send(Bytes::copy_from_slice(&vnc_response(password, &challenge)))
                    .await?;
            }
            _ if offered.contains(&1) => self.send(Bytes::from_static(&[1])).await?,
            _ => bail!("security types {offered:?}"),
        }
        let result = self.read_exact(4).await?;
        ensure!(
            result.as_ref() == [0, 0, 0, 0],
            "security result {result:?}"
        );
        self.send(Bytes::from_static(&[1])).await?;
        let init = self.read_exact(24).await?;
        let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]);
        self.skip(name_len as usize).await?;
        self.send(Bytes::from_static(&[2, 0, 0, 1, 0, 0, 0, 0]))
            .await
    }

    /// FramebufferUpdateRequest for `width`×`height` at the origin.
    pub async fn request(
        &mut self,
        incremental: bool,
        width: u16,
        height: u16,
    ) -> anyhow::Result<()> {
        let mut message = vec![3, u8::from(incremental), 0, 0, 0, 0];
        message.extend_from_slice(&width.to_be_bytes());
        message.extend_from_slice(&height.to_be_bytes());
        self.send(message.into()).await
    }

    /// Reads one FramebufferUpdate of Raw 32-bpp rectangles; returns its size in bytes.
    pub async fn read_update(&mut self) -> anyhow::Result<usize> {
        let head = self.read_exact(4).await?;
        ensure!(head[0] == 0, "server message type {}", head[0]);
        let rects = u16::from_be_bytes([head[2], head[3]]);
        let mut total = 4;
        for _ in 0..rects {
            let rect = self.read_exact(12).await?;
            let width = usize::from(u16::from_be_bytes([rect[4], rect[5]]));
            let height = usize::from(u16::from_be_bytes([rect[6], rect[7]]));
            ensure!(rect[8..12] == [0, 0, 0, 0], "encoding {:?}", &rect[8..12]);
            self.skip(width * height * 4).await?;
            total += 12 + width * height * 4;
        }
        Ok(total)
    }

    /// Best-effort close, so the far side frees its session at once.
    pub async fn close(self) {
        if let Self::Ws(mut socket, _) = self {
            let closing = tokio_tungstenite::WebSocketStream::close(&mut *socket, None);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), closing).await;
        }
    }
}

/// VNC authentication: DES of the challenge with the password's first 8 bytes, bits mirrored.
fn vnc_response(password: &str, challenge: &[u8]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (slot, byte) in key.iter_mut().zip(password.as_bytes()) {
        *slot = byte.reverse_bits();
    }
    let cipher = Des::new(GenericArray::from_slice(&key));
    let mut response = [0u8; 16];
    response.copy_from_slice(&challenge[..16]);
    for block in response.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    response
}
