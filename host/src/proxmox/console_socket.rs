//! The daemon's end of a `vncwebsocket`: RFC 6455 client framing over the node's TLS stream.
//!
//! Written for the relay rather than taken from a general WebSocket library because of what the
//! console benchmark measured: a general library keeps a read buffer as large as the largest
//! frame it ever received, and a write buffer as large as the largest it ever sent, for the life
//! of the connection — most of what an idle console cost. Here both buffers exist only while
//! bytes are moving, and payloads are handed on as slices of the read buffer, never copied.
//!
//! It speaks what pveproxy speaks: no extensions, frames of at most [`MAX_FRAME_BYTES`]. It masks
//! what it sends; it refuses masked frames, reserved bits, oversized frames and fragmented text
//! from the node; it answers pings, and answers a close with a close.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::console::MAX_FRAME_BYTES;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The least asked of the TLS stream per read: one TLS record's worth of plaintext.
const READ_CHUNK: usize = 16 * 1024;
/// Encoded frames waiting beyond this make `poll_ready` write them out first (backpressure).
const WRITE_HIGH_WATER: usize = 4 * MAX_FRAME_BYTES;

/// Why the socket failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    #[error("protocol error from the node: {0}")]
    Protocol(&'static str),
    #[error("the connection ended without a close frame")]
    Reset,
    #[error("the socket is already closing")]
    Closing,
    #[error("raw frames are not sent")]
    RawFrame,
}

/// An open `vncwebsocket`, after the upgrade. A `Stream` of the node's messages and a `Sink`
/// for ours, in tungstenite's message type.
pub struct ConsoleSocket<S> {
    io: S,
    /// Received bytes not yet returned as messages; unallocated while the node is quiet.
    read: BytesMut,
    /// Bytes still missing from the frame at the front of `read`.
    missing: usize,
    /// Encoded frames not yet written; unallocated once written out.
    write: BytesMut,
    /// A fragmented binary message is in progress.
    continuing: bool,
    close_sent: bool,
    close_received: bool,
}

impl<S> ConsoleSocket<S> {
    /// `leftover`: bytes the node sent right after its `101`, already read.
    pub fn new(io: S, leftover: BytesMut) -> Self {
        Self {
            io,
            read: leftover,
            missing: 0,
            write: BytesMut::new(),
            continuing: false,
            close_sent: false,
            close_received: false,
        }
    }

    fn queue(&mut self, opcode: u8, payload: &[u8]) {
        let len = payload.len();
        self.write.reserve(len + 14);
        self.write.put_u8(0x80 | opcode);
        match len {
            0..=125 => self.write.put_u8(0x80 | len as u8),
            126..=0xFFFF => {
                self.write.put_u8(0x80 | 126);
                self.write.put_u16(len as u16);
            }
            _ => {
                self.write.put_u8(0x80 | 127);
                self.write.put_u64(len as u64);
            }
        }
        let mask: [u8; 4] = rand::random();
        self.write.put_slice(&mask);
        let start = self.write.len();
        self.write.put_slice(payload);
        apply_mask(&mut self.write[start..], mask);
    }

    fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        let payload = match frame {
            Some(frame) => {
                let mut payload = u16::from(frame.code).to_be_bytes().to_vec();
                payload.extend_from_slice(frame.reason.as_bytes());
                payload
            }
            None => Vec::new(),
        };
        self.queue(OP_CLOSE, &payload);
        self.close_sent = true;
    }

    /// The next whole frame at the front of `read`, if it is all there.
    fn parse(&mut self) -> Result<Option<(u8, bool, Bytes)>, SocketError> {
        let buf = &self.read[..];
        if buf.len() < 2 {
            self.missing = 2 - buf.len();
            return Ok(None);
        }
        let (first, second) = (buf[0], buf[1]);
        if first & 0x70 != 0 {
            return Err(SocketError::Protocol("reserved bits set"));
        }
        if second & 0x80 != 0 {
            return Err(SocketError::Protocol("masked frame from the server"));
        }
        let (head, len) = match second & 0x7F {
            126 if buf.len() >= 4 => (4, u64::from(u16::from_be_bytes([buf[2], buf[3]]))),
            127 if buf.len() >= 10 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&buf[2..10]);
                (10, u64::from_be_bytes(len))
            }
            126 | 127 => {
                self.missing = 10 - buf.len().min(10);
                return Ok(None);
            }
            n => (2, u64::from(n)),
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= MAX_FRAME_BYTES)
            .ok_or(SocketError::Protocol("frame over 128 KiB"))?;
        if buf.len() < head + len {
            self.missing = head + len - buf.len();
            return Ok(None);
        }
        self.missing = 0;
        self.read.advance(head);
        let payload = self.read.split_to(len).freeze();
        Ok(Some((first & 0x0F, first & 0x80 != 0, payload)))
    }

    /// What a frame means, answering pings and closes on the way.
    fn message(&mut self, opcode: u8, fin: bool, payload: Bytes) -> Result<Message, SocketError> {
        let protocol = |what| Err(SocketError::Protocol(what));
        if opcode >= OP_CLOSE && (!fin || payload.len() > 125) {
            return protocol("fragmented or oversized control frame");
        }
        match opcode {
            OP_CONTINUATION if self.continuing => {
                self.continuing = !fin;
                Ok(Message::Binary(payload))
            }
            OP_CONTINUATION => protocol("continuation without a message"),
            OP_TEXT | OP_BINARY if self.continuing => {
                protocol("new message inside a fragmented one")
            }
            OP_TEXT if !fin => protocol("fragmented text"),
            OP_TEXT => Utf8Bytes::try_from(payload)
                .map(Message::Text)
                .or(protocol("text that is not UTF-8")),
            OP_BINARY => {
                self.continuing = !fin;
                Ok(Message::Binary(payload))
            }
            OP_PING => {
                if !self.close_sent {
                    self.queue(OP_PONG, &payload);
                }
                Ok(Message::Ping(payload))
            }
            OP_PONG => Ok(Message::Pong(payload)),
            OP_CLOSE => {
                let frame = close_frame(&payload)?;
                self.close_received = true;
                if !self.close_sent {
                    self.queue_close(frame.as_ref());
                }
                Ok(Message::Close(frame))
            }
            _ => protocol("unknown opcode"),
        }
    }
}

fn close_frame(payload: &[u8]) -> Result<Option<CloseFrame>, SocketError> {
    match payload {
        [] => Ok(None),
        [_] => Err(SocketError::Protocol("close frame of one byte")),
        [high, low, reason @ ..] => {
            let reason = std::str::from_utf8(reason)
                .map_err(|_| SocketError::Protocol("close reason that is not UTF-8"))?;
            Ok(Some(CloseFrame {
                code: u16::from_be_bytes([*high, *low]).into(),
                reason: reason.to_owned().into(),
            }))
        }
    }
}

/// XORs `data` with the repeating 4-byte `mask`, eight bytes at a time.
fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // Each whole word used the mask twice, so the tail starts at mask offset 0.
    for (byte, m) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ConsoleSocket<S> {
    /// Reads what the node has sent into `read`; `Ok(false)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let start = self.read.len();
        let chunk = self.missing.max(READ_CHUNK);
        // Zeroed rather than uninitialised, as unsafe code is not allowed here; the memset is
        // cheap beside the decryption that fills it.
        self.read.resize(start + chunk, 0);
        let mut buf = ReadBuf::new(&mut self.read[start..]);
        let polled = Pin::new(&mut self.io).poll_read(cx, &mut buf);
        let filled = buf.filled().len();
        self.read.truncate(start + filled);
        match polled {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(filled > 0)),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                if self.read.is_empty() {
                    // Nothing in flight: give the buffer back while the node is quiet.
                    self.read = BytesMut::new();
                }
                Poll::Pending
            }
        }
    }

    /// Writes out every queued frame, then releases the buffer.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.write.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write.advance(written);
        }
        self.write = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    /// Sends a close frame (unless one was sent) and shuts the connection down.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), SocketError> {
        if !self.close_sent {
            self.queue_close(frame.as_ref());
        }
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_close(cx)).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ConsoleSocket<S> {
    type Item = Result<Message, SocketError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.close_received {
                // The reply to the node's close goes out before the stream ends.
                return match ready!(this.poll_write_out(cx)) {
                    Ok(()) => Poll::Ready(None),
                    Err(err) => Poll::Ready(Some(Err(err.into()))),
                };
            }
            if let Some((opcode, fin, payload)) = this.parse()? {
                let message = this.message(opcode, fin, payload)?;
                if !this.write.is_empty() && !this.close_received {
                    // A pong goes out now if it can; if not, with the next write or flush.
                    if let Poll::Ready(Err(err)) = this.poll_write_out(cx) {
                        return Poll::Ready(Some(Err(err.into())));
                    }
                }
                return Poll::Ready(Some(Ok(message)));
            }
            match ready!(this.poll_fill(cx)) {
                Ok(true) => {}
                Ok(false) => return Poll::Ready(Some(Err(SocketError::Reset))),
                Err(err) => return Poll::Ready(Some(Err(err.into()))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for ConsoleSocket<S> {
    type Error = SocketError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        if self.write.len() > WRITE_HIGH_WATER {
            ready!(self.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), SocketError> {
        if self.close_sent {
            return Err(SocketError::Closing);
        }
        match message {
            Message::Binary(data) => self.queue(OP_BINARY, &data),
            Message::Text(text) => self.queue(OP_TEXT, text.as_bytes()),
            Message::Ping(data) => self.queue(OP_PING, &data),
            Message::Pong(data) => self.queue(OP_PONG, &data),
            Message::Close(frame) => self.queue_close(frame.as_ref()),
            Message::Frame(_) => return Err(SocketError::RawFrame),
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        ready!(self.poll_write_out(cx))?;
        Poll::Ready(ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(Into::into))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        if !self.close_sent {
            self.queue_close(None);
        }
        ready!(self.poll_write_out(cx))?;
        Poll::Ready(ready!(Pin::new(&mut self.io).poll_shutdown(cx)).map_err(Into::into))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

    fn pair() -> (ConsoleSocket<DuplexStream>, DuplexStream) {
        let (ours, node) = tokio::io::duplex(1 << 20);
        (ConsoleSocket::new(ours, BytesMut::new()), node)
    }

    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(n as u8),
            n if n <= 0xFFFF => {
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

    /// Reads one client frame from the node's end and unmasks it.
    async fn client_frame(node: &mut DuplexStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        node.read_exact(&mut head).await.unwrap();
        assert_eq!(head[1] & 0x80, 0x80, "client frames are masked");
        let len = match head[1] & 0x7F {
            126 => usize::from(node.read_u16().await.unwrap()),
            127 => node.read_u64().await.unwrap() as usize,
            n => usize::from(n),
        };
        let mut mask = [0u8; 4];
        node.read_exact(&mut mask).await.unwrap();
        let mut payload = vec![0u8; len];
        node.read_exact(&mut payload).await.unwrap();
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        (head[0], payload)
    }

    #[tokio::test]
    async fn frames_of_every_length_encoding_arrive_whole_and_in_order() {
        let (ours, mut node) = tokio::io::duplex(1 << 20);
        let leftover = server_frame(0x82, b"RFB 003.008\n");
        let mut socket = ConsoleSocket::new(ours, BytesMut::from(&leftover[..]));
        for len in [0, 125, 126, 65_535, 65_536, MAX_FRAME_BYTES] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            node.write_all(&server_frame(0x82, &payload)).await.unwrap();
        }
        node.write_all(&server_frame(0x81, "é".as_bytes()))
            .await
            .unwrap();
        let first = socket.next().await.unwrap().unwrap();
        assert_eq!(first, Message::Binary(Bytes::from_static(b"RFB 003.008\n")));
        for len in [0, 125, 126, 65_535, 65_536, MAX_FRAME_BYTES] {
            match socket.next().await.unwrap().unwrap() {
                Message::Binary(data) => {
                    assert_eq!(data.len(), len);
                    assert!(data.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            Message::Text("é".into())
        );
    }

    #[tokio::test]
    async fn sent_messages_are_masked_frames_with_their_opcode() {
        let (mut socket, mut node) = pair();
        let big = vec![7u8; 70_000];
        socket
            .send(Message::Binary(Bytes::from(big.clone())))
            .await
            .unwrap();
        socket.send(Message::Text("hi".into())).await.unwrap();
        assert_eq!(client_frame(&mut node).await, (0x82, big));
        assert_eq!(client_frame(&mut node).await, (0x81, b"hi".to_vec()));
    }

    #[tokio::test]
    async fn pings_are_answered_and_a_close_is_echoed_before_the_stream_ends() {
        let (mut socket, mut node) = pair();
        node.write_all(&server_frame(0x89, b"beat")).await.unwrap();
        node.write_all(&server_frame(0x88, &[0x03, 0xE8, b'o', b'k']))
            .await
            .unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            Message::Ping(Bytes::from_static(b"beat"))
        );
        match socket.next().await.unwrap().unwrap() {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1000);
                assert_eq!(frame.reason.as_str(), "ok");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(socket.next().await.is_none());
        assert_eq!(client_frame(&mut node).await, (0x8A, b"beat".to_vec()));
        assert_eq!(
            client_frame(&mut node).await,
            (0x88, vec![0x03, 0xE8, b'o', b'k'])
        );
    }

    #[tokio::test]
    async fn what_pveproxy_never_sends_is_refused() {
        for bad in [
            server_frame(0xC2, b"x"),                // reserved bit
            vec![0x82, 0x81, 1, 2, 3, 4, 5],         // masked
            server_frame(0x01, b"part"),             // fragmented text
            server_frame(0x80, b"rest"),             // continuation of nothing
            server_frame(0x83, b"?"),                // unknown opcode
            server_frame(0x81, &[0xFF]),             // text that is not UTF-8
            server_frame(0x09, b""),                 // fragmented ping
            vec![0x82, 127, 0, 0, 0, 0, 0, 2, 0, 1], // over 128 KiB
        ] {
            let (mut socket, mut node) = pair();
            node.write_all(&bad).await.unwrap();
            let got = socket.next().await.unwrap();
            assert!(
                matches!(got, Err(SocketError::Protocol(_))),
                "{bad:?}: {got:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_end_without_a_close_is_a_reset_and_buffers_are_released_when_quiet() {
        let (mut socket, mut node) = pair();
        node.write_all(&server_frame(0x82, &[1u8; 40_000]))
            .await
            .unwrap();
        let message = socket.next().await.unwrap().unwrap();
        drop(message);
        let quiet = std::future::poll_fn(|cx| Poll::Ready(socket.poll_next_unpin(cx))).await;
        assert!(quiet.is_pending());
        assert_eq!(socket.read.capacity(), 0);
        assert_eq!(socket.write.capacity(), 0);
        drop(node);
        assert!(matches!(
            socket.next().await.unwrap(),
            Err(SocketError::Reset)
        ));
    }

    #[test]
    fn masking_matches_the_byte_wise_definition_for_every_length() {
        let mask = [0x6d, 0xb6, 0xb2, 0x80];
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let expected: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            let mut actual = data.clone();
            apply_mask(&mut actual, mask);
            assert_eq!(actual, expected, "length {len}");
        }
    }
}
