//! The HTTP/1.1 upgrade that opens a `vncwebsocket` (RFC 6455 §4.1), done by hand so that what
//! the node sends right after its `101` (RFB's greeting) stays with the socket.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The longest response head, and error body, read from the node.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// Why the upgrade failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpgradeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The node answered, but not with `101`: its status, reason phrase and body.
    #[error("HTTP {status}")]
    Refused {
        status: u16,
        reason: Option<String>,
        body: Vec<u8>,
    },
    #[error("{0}")]
    Invalid(&'static str),
}

/// What to ask for: `target` is the path and query, `headers` go out as given.
pub(super) struct UpgradeRequest<'a> {
    pub host: &'a str,
    pub target: &'a str,
    pub protocol: &'static str,
    pub headers: &'a [(http::HeaderName, http::HeaderValue)],
}

/// Sends the upgrade request and reads the answer. Returns the bytes read past the answer's head.
pub(super) async fn upgrade<S>(
    io: &mut S,
    request: &UpgradeRequest<'_>,
) -> Result<BytesMut, UpgradeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let key = generate_key();
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: {}\r\n",
        request.target, request.host, request.protocol
    )
    .into_bytes();
    for (name, value) in request.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    io.write_all(&head).await?;
    io.flush().await?;

    let mut buf = BytesMut::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let parsed = response
            .parse(&buf)
            .map_err(|_| UpgradeError::Invalid("malformed HTTP response"))?;
        if let httparse::Status::Complete(len) = parsed {
            let status = response.code.unwrap_or(0);
            if status != 101 {
                let reason = response.reason.map(str::to_owned);
                let length = content_length(response.headers);
                let body = read_body(io, buf.split_off(len), length).await?;
                return Err(UpgradeError::Refused {
                    status,
                    reason,
                    body,
                });
            }
            check_switch(response.headers, &key, request.protocol)?;
            return Ok(buf.split_off(len));
        }
        if buf.len() >= MAX_HEAD {
            return Err(UpgradeError::Invalid("HTTP response head too long"));
        }
        if read_more(io, &mut buf).await? == 0 {
            return Err(UpgradeError::Invalid(
                "connection closed during the upgrade",
            ));
        }
    }
}

async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + 4096, 0);
    let read = io.read(&mut buf[start..]).await;
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn content_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    let value = header(headers, "content-length")?;
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The body of a refusal, for its message: `Content-Length` bytes, or to the end of the stream.
async fn read_body<S: AsyncRead + Unpin>(
    io: &mut S,
    mut body: BytesMut,
    length: Option<usize>,
) -> io::Result<Vec<u8>> {
    let want = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    while body.len() < want {
        if read_more(io, &mut body).await? == 0 {
            break;
        }
    }
    body.truncate(want);
    Ok(body.to_vec())
}

fn check_switch(
    headers: &[httparse::Header<'_>],
    key: &str,
    protocol: &str,
) -> Result<(), UpgradeError> {
    let has = |name: &str, token: &str| {
        header(headers, name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return Err(UpgradeError::Invalid("101 without an upgrade to websocket"));
    }
    let accept = derive_accept_key(key.as_bytes());
    if header(headers, "sec-websocket-accept") != Some(accept.as_bytes()) {
        return Err(UpgradeError::Invalid("wrong Sec-WebSocket-Accept"));
    }
    if header(headers, "sec-websocket-protocol").is_some_and(|p| p != protocol.as_bytes()) {
        return Err(UpgradeError::Invalid("a subprotocol that was not offered"));
    }
    if header(headers, "sec-websocket-extensions").is_some() {
        return Err(UpgradeError::Invalid("an extension that was not offered"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn answered_with(answer: String) -> Result<BytesMut, UpgradeError> {
        let (mut ours, mut node) = tokio::io::duplex(64 * 1024);
        let node = tokio::spawn(async move {
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                node.read_exact(&mut byte).await.unwrap();
                request.push(byte[0]);
            }
            let request = String::from_utf8(request).unwrap();
            let key = request
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .to_owned();
            let answer = answer.replace("{accept}", &derive_accept_key(key.as_bytes()));
            node.write_all(answer.as_bytes()).await.unwrap();
            (request, node)
        });
        let auth = [(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("PVEAPIToken=x"),
        )];
        let request = UpgradeRequest {
            host: "pve1:8006",
            target: "/api2/json/nodes/pve1/qemu/100/vncwebsocket?port=5900",
            protocol: "binary",
            headers: &auth,
        };
        let result = upgrade(&mut ours, &request).await;
        let (sent, _node) = node.await.unwrap();
        assert!(
            sent.starts_with(
                "GET /api2/json/nodes/pve1/qemu/100/vncwebsocket?port=5900 HTTP/1.1\r\n"
            )
        );
        assert!(sent.contains("\r\nauthorization: PVEAPIToken=x\r\n"));
        result
    }

    #[tokio::test]
    async fn a_switch_keeps_the_bytes_sent_after_it() {
        let leftover = answered_with(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: binary\r\n\r\nRFB 003.008\n"
                .into(),
        )
        .await
        .unwrap();
        assert_eq!(&leftover[..], b"RFB 003.008\n");
    }

    #[tokio::test]
    async fn a_refusal_comes_back_with_status_reason_and_body() {
        let body = r#"{"data":null,"message":"Permission check failed\n"}"#;
        let answer = format!(
            "HTTP/1.1 401 permission denied\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match answered_with(answer).await {
            Err(UpgradeError::Refused {
                status,
                reason,
                body: got,
            }) => {
                assert_eq!(status, 401);
                assert_eq!(reason.as_deref(), Some("permission denied"));
                assert_eq!(got, body.as_bytes());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_switch_with_a_wrong_accept_key_is_refused() {
        let result = answered_with(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
             Sec-WebSocket-Accept: bm90IHRoZSBrZXk=\r\n\r\n"
                .into(),
        )
        .await;
        assert!(matches!(result, Err(UpgradeError::Invalid(_))));
    }
}
