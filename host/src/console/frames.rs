//! One view of WebSocket messages for both legs of the relay (axum's on the browser side,
//! tungstenite's towards Proxmox), and a byte reader over a message stream for the handshakes,
//! which must read exact byte counts regardless of how the peer framed them.

use axum::extract::ws::{CloseFrame as BrowserCloseFrame, Message as BrowserMessage};
use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};

use crate::proxmox::UpstreamMessage;

/// What a message means to the relay.
pub(super) enum Frame {
    Binary(Bytes),
    /// Text is relayed as text (termproxy clients send their input as text frames).
    Text(Bytes),
    /// A close from the peer, with its code and reason when given.
    Close(Option<(u16, String)>),
    /// Ping/pong: the WebSocket libraries answer pings themselves.
    Control,
}

/// A message type of one leg of the relay.
pub(super) trait Message: Sized {
    fn into_frame(self) -> Frame;
    fn binary(data: Bytes) -> Self;
    /// `data` must be UTF-8; callers only pass text that came from a text frame, split at
    /// character boundaries.
    fn text(data: Bytes) -> Option<Self>;
    fn ping() -> Self;
    fn close(code: u16, reason: &'static str) -> Self;
}

impl Message for BrowserMessage {
    fn into_frame(self) -> Frame {
        match self {
            Self::Binary(data) => Frame::Binary(data),
            Self::Text(text) => Frame::Text(Bytes::from(text)),
            Self::Close(frame) => Frame::Close(frame.map(|f| (f.code, f.reason.to_string()))),
            Self::Ping(_) | Self::Pong(_) => Frame::Control,
        }
    }

    fn binary(data: Bytes) -> Self {
        Self::Binary(data)
    }

    fn text(data: Bytes) -> Option<Self> {
        axum::extract::ws::Utf8Bytes::try_from(data)
            .ok()
            .map(Self::Text)
    }

    fn ping() -> Self {
        Self::Ping(Bytes::new())
    }

    fn close(code: u16, reason: &'static str) -> Self {
        Self::Close(Some(BrowserCloseFrame {
            code,
            reason: reason.into(),
        }))
    }
}

impl Message for UpstreamMessage {
    fn into_frame(self) -> Frame {
        match self {
            Self::Binary(data) => Frame::Binary(data),
            Self::Text(text) => Frame::Text(Bytes::from(text)),
            Self::Close(frame) => {
                Frame::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Self::Ping(_) | Self::Pong(_) | Self::Frame(_) => Frame::Control,
        }
    }

    fn binary(data: Bytes) -> Self {
        Self::Binary(data)
    }

    fn text(data: Bytes) -> Option<Self> {
        tokio_tungstenite::tungstenite::Utf8Bytes::try_from(data)
            .ok()
            .map(Self::Text)
    }

    fn ping() -> Self {
        Self::Ping(Bytes::new())
    }

    fn close(code: u16, reason: &'static str) -> Self {
        Self::Close(Some(crate::proxmox::UpstreamCloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    }
}

/// Why a handshake could not read what it needed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("{0}")]
    Transport(String),
}

/// Reads exact byte counts from a stream of messages, keeping what it read past them.
pub(super) struct ByteReader<'a, S> {
    stream: &'a mut S,
    pending: BytesMut,
}

impl<'a, S, M, E> ByteReader<'a, S>
where
    S: Stream<Item = Result<M, E>> + Unpin,
    M: Message,
    E: std::fmt::Display,
{
    pub fn new(stream: &'a mut S) -> Self {
        Self {
            stream,
            pending: BytesMut::new(),
        }
    }

    /// The next `n` bytes, however the peer split them into messages.
    pub async fn read_exact(&mut self, n: usize) -> Result<Bytes, ReadError> {
        while self.pending.len() < n {
            match self.stream.next().await {
                None => return Err(ReadError::Closed),
                Some(Err(err)) => return Err(ReadError::Transport(err.to_string())),
                Some(Ok(message)) => match message.into_frame() {
                    Frame::Binary(data) | Frame::Text(data) => {
                        self.pending.extend_from_slice(&data)
                    }
                    Frame::Close(_) => return Err(ReadError::Closed),
                    Frame::Control => {}
                },
            }
        }
        Ok(self.pending.split_to(n).freeze())
    }

    pub async fn read_u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.read_exact(1).await?[0])
    }

    pub async fn read_u32(&mut self) -> Result<u32, ReadError> {
        Ok(self.read_exact(4).await?.get_u32())
    }

    /// Bytes read past the handshake; they belong to the relay.
    pub fn into_leftover(self) -> Bytes {
        self.pending.freeze()
    }
}

/// Sends `data` as one binary message and flushes it.
pub(super) async fn send_binary<K, M>(sink: &mut K, data: Bytes) -> Result<(), String>
where
    K: Sink<M> + Unpin,
    K::Error: std::fmt::Display,
    M: Message,
{
    sink.send(M::binary(data)).await.map_err(|e| e.to_string())
}
