//! A plugin's stdout and stderr: captured per call with a byte cap, then written to `tracing`.
//!
//! Output past the cap is dropped silently (a plugin that floods its stdout keeps running within
//! its time limit; it just is not heard any more) and the number of dropped bytes is logged once.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Shared buffer of one stream for one call.
#[derive(Clone)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    bytes: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl CapturedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                bytes: Vec::new(),
                cap,
                dropped: 0,
            })),
        }
    }

    fn push(&self, data: &[u8]) {
        // A poisoned lock only means another writer panicked mid-push; the bytes are still fine.
        let mut captured = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = captured.cap.saturating_sub(captured.bytes.len());
        let taken = room.min(data.len());
        captured.bytes.extend_from_slice(&data[..taken]);
        captured.dropped += (data.len() - taken) as u64;
    }

    /// Writes what was captured to the log as `stream` of `plugin`, then forgets it.
    pub fn flush_to_log(&self, plugin: &str, stream: &'static str) {
        let mut captured = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !captured.bytes.is_empty() {
            let text = String::from_utf8_lossy(&captured.bytes);
            for line in text.lines().filter(|line| !line.is_empty()) {
                tracing::info!(plugin, stream, "{line}");
            }
        }
        if captured.dropped > 0 {
            tracing::warn!(
                plugin,
                stream,
                dropped_bytes = captured.dropped,
                "plugin output exceeded its cap; the rest was dropped"
            );
        }
        captured.bytes.clear();
        captured.dropped = 0;
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
