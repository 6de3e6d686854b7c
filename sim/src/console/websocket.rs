//! The WebSocket side of `vncwebsocket`, as pveproxy speaks it: RFC 6455 version 13 only, the
//! `binary` subprotocol echoed, no extensions ever negotiated (a client offering
//! permessage-deflate gets none), and a frame reader that refuses what pveproxy refuses —
//! fragmented frames, RSV bits, unmasked client frames, frames over 128 KiB — by closing the
//! connection. Payloads of data frames are relayed to the proxy as a byte stream, and the proxy's
//! output goes back as binary frames.

use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};

/// pveproxy's `$max_payload_size`.
pub const MAX_FRAME: u64 = 128 * 1024;
/// The largest frame the server sends; a read from the proxy fills at most one.
const OUT_CHUNK: usize = 16 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// A request to upgrade to a WebSocket, checked the way pveproxy checks it.
pub struct WebSocketRequest {
    key: String,
    upgrade: hyper::upgrade::OnUpgrade,
}

impl WebSocketRequest {
    /// `Ok(None)` when the request does not ask for an upgrade (a plain API call);
    /// `Err` when it asks for one pveproxy would refuse.
    pub fn from_request(req: &mut Request<Incoming>) -> Result<Option<Self>, ApiError> {
        let headers = req.headers();
        let Some(upgrade) = header_str(headers, header::UPGRADE) else {
            return Ok(None);
        };
        let bad = |message: String| Err(ApiError::new(400, message));
        if !upgrade.eq_ignore_ascii_case("websocket") {
            return bad(format!("unable to upgrade to protocol '{upgrade}'"));
        }
        match header_str(headers, header::SEC_WEBSOCKET_VERSION) {
            Some("13") => {}
            other => {
                return bad(format!(
                    "unsupported websocket-version '{}'",
                    other.unwrap_or_default()
                ));
            }
        }
        let Some(key) = header_str(headers, header::SEC_WEBSOCKET_KEY).map(str::to_owned) else {
            return bad("missing websocket-key".into());
        };
        let Some(protocols) = header_str(headers, header::SEC_WEBSOCKET_PROTOCOL) else {
            return bad("missing websocket-protocol header".into());
        };
        if !protocols.split(',').any(|p| p.trim() == "binary") {
            return bad(format!(
                "unsupported websocket-protocol protocol '{protocols}'"
            ));
        }
        let upgrade = hyper::upgrade::on(req);
        Ok(Some(Self { key, upgrade }))
    }

    /// The `101 Switching Protocols` answer, and the upgrade to await once it is sent.
    pub fn accept(self) -> (Response<Full<Bytes>>, hyper::upgrade::OnUpgrade) {
        let accept =
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("binary"),
        );
        if let Ok(value) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        (response, self.upgrade)
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Why the connection ended.
#[derive(Debug, thiserror::Error)]
pub enum Violation {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("frame of {0} bytes exceeds 128 KiB")]
    TooBig(u64),
}

impl Violation {
    fn close_code(&self) -> Option<u16> {
        match self {
            Self::Io(_) => None,
            Self::Protocol(_) => Some(CLOSE_PROTOCOL_ERROR),
            Self::TooBig(_) => Some(CLOSE_TOO_BIG),
        }
    }
}

/// One client frame, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Reads one client frame, refusing what pveproxy refuses.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Frame, Violation> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).await?;
    let (fin, rsv, opcode) = (head[0] & 0x80 != 0, head[0] & 0x70, head[0] & 0x0f);
    if rsv != 0 {
        return Err(Violation::Protocol(
            "RSV bits set (no extension was negotiated)",
        ));
    }
    if !fin || opcode == OP_CONTINUATION {
        return Err(Violation::Protocol("fragmented frame"));
    }
    if !matches!(opcode, OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
        return Err(Violation::Protocol("unknown opcode"));
    }
    if head[1] & 0x80 == 0 {
        return Err(Violation::Protocol("unmasked client frame"));
    }
    let len = match head[1] & 0x7f {
        126 => u64::from(reader.read_u16().await?),
        127 => reader.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_FRAME {
        return Err(Violation::TooBig(len));
    }
    if opcode >= OP_CLOSE && len > 125 {
        return Err(Violation::Protocol("control frame over 125 bytes"));
    }
    let mut mask = [0u8; 4];
    reader.read_exact(&mut mask).await?;
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload).await?;
    unmask(&mut payload, mask);
    Ok(Frame { opcode, payload })
}

/// XORs `payload` with the repeating 4-byte `mask`, eight bytes at a time: a byte-wise loop
/// made this the simulator's largest cost per byte received.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // Each whole word consumed the mask twice, so the tail starts at mask offset 0.
    for (byte, m) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// Encodes a server frame (final, unmasked).
pub fn encode_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    encode_frame(OP_CLOSE, &payload)
}

/// What the reading half asks the writing half to send.
enum Outgoing {
    Pong(Vec<u8>),
    Close(u16, String),
}

/// Relays between the client's WebSocket and the proxy's byte stream until either side ends.
/// Returns how the client side ended.
pub async fn relay<C, P>(client: C, proxy: P) -> Result<(), Violation>
where
    C: AsyncRead + AsyncWrite + Send + 'static,
    P: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut client_rd, client_wr) = tokio::io::split(client);
    let (proxy_rd, mut proxy_wr) = tokio::io::split(proxy);
    let (control, outgoing) = mpsc::channel(4);
    let (writer_done, done) = oneshot::channel::<()>();
    let inbound = async move {
        let result = tokio::select! {
            result = client_to_proxy(&mut client_rd, &mut proxy_wr, &control) => result,
            _ = done => Ok(()),
        };
        let _ = proxy_wr.shutdown().await;
        match &result {
            Err(violation) => {
                if let Some(code) = violation.close_code() {
                    let _ = control
                        .send(Outgoing::Close(code, violation.to_string()))
                        .await;
                }
            }
            Ok(()) => {
                let _ = control
                    .send(Outgoing::Close(CLOSE_NORMAL, String::new()))
                    .await;
            }
        }
        result
    };
    let outbound = async move {
        let result = proxy_to_client(proxy_rd, client_wr, outgoing).await;
        let _ = writer_done.send(());
        result
    };
    let (inbound, outbound) = tokio::join!(inbound, outbound);
    if let Err(err) = outbound {
        tracing::debug!(%err, "console writer ended");
    }
    inbound
}

/// Client frames to the proxy, until the client closes (`Ok`) or breaks the protocol.
async fn client_to_proxy<R, W>(
    client: &mut R,
    proxy: &mut W,
    control: &mpsc::Sender<Outgoing>,
) -> Result<(), Violation>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let frame = read_frame(client).await?;
        match frame.opcode {
            OP_TEXT | OP_BINARY => {
                proxy.write_all(&frame.payload).await?;
                proxy.flush().await?;
            }
            OP_PING => {
                let _ = control.send(Outgoing::Pong(frame.payload)).await;
            }
            OP_CLOSE => return Ok(()),
            _ => {}
        }
    }
}

/// Proxy output to the client as binary frames, plus pongs and the final close frame.
async fn proxy_to_client<R, W>(
    mut proxy: R,
    mut client: W,
    mut outgoing: mpsc::Receiver<Outgoing>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut chunk = vec![0u8; OUT_CHUNK];
    loop {
        tokio::select! {
            read = proxy.read(&mut chunk) => {
                let read = read?;
                if read == 0 {
                    client.write_all(&close_frame(CLOSE_NORMAL, "")).await?;
                    return client.shutdown().await;
                }
                client.write_all(&encode_frame(OP_BINARY, &chunk[..read])).await?;
                client.flush().await?;
            }
            message = outgoing.recv() => match message {
                Some(Outgoing::Pong(payload)) => {
                    client.write_all(&encode_frame(OP_PONG, &payload)).await?;
                    client.flush().await?;
                }
                Some(Outgoing::Close(code, reason)) => {
                    client.write_all(&close_frame(code, &reason)).await?;
                    return client.shutdown().await;
                }
                None => return client.shutdown().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![first, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    async fn read(bytes: Vec<u8>) -> Result<Frame, Violation> {
        read_frame(&mut bytes.as_slice()).await
    }

    #[tokio::test]
    async fn reads_masked_final_frames() {
        let frame = read(masked(0x82, b"hello")).await;
        assert_eq!(
            frame.ok(),
            Some(Frame {
                opcode: OP_BINARY,
                payload: b"hello".to_vec()
            })
        );
    }

    #[tokio::test]
    async fn refuses_fragments_rsv_bits_unmasked_and_oversized_frames() {
        assert!(matches!(
            read(masked(0x02, b"part")).await,
            Err(Violation::Protocol(_))
        ));
        assert!(matches!(
            read(masked(0x80, b"rest")).await,
            Err(Violation::Protocol(_))
        ));
        assert!(matches!(
            read(masked(0xC2, b"zip")).await,
            Err(Violation::Protocol(_))
        ));
        assert!(matches!(
            read(vec![0x82, 0x01, 0x00]).await,
            Err(Violation::Protocol(_))
        ));
        let mut big = vec![0x82, 0xFF];
        big.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
        assert!(matches!(read(big).await, Err(Violation::TooBig(_))));
    }

    #[test]
    fn unmasking_matches_the_byte_wise_definition_for_every_length() {
        let mask = [0x6d, 0xb6, 0xb2, 0x80];
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let expected: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            let mut actual = data.clone();
            unmask(&mut actual, mask);
            assert_eq!(actual, expected, "length {len}");
        }
    }

    #[test]
    fn encodes_lengths_in_all_three_sizes() {
        assert_eq!(encode_frame(OP_BINARY, b"hi"), [0x82, 2, b'h', b'i']);
        assert_eq!(encode_frame(OP_BINARY, &[0; 300])[..4], [0x82, 126, 1, 44]);
        assert_eq!(encode_frame(OP_BINARY, &[0; 70_000])[..2], [0x82, 127]);
    }
}
