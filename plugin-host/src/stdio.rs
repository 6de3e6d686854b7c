//! A plugin's stdout and stderr: captured per call with a byte cap, then written to `tracing`.
//!
//! Both caps hold while the plugin writes, so what the host keeps for a call never grows past
//! the call's cap however the plugin prints: a line longer than [`MAX_LINE_BYTES`] keeps its
//! start and ends in a marker saying how much was cut, and output past the call's cap is dropped
//! and counted, and the count logged once. A plugin that floods its stdout keeps running within
//! its time limit; it just is not heard any more.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept, the same as for `host.log`.
pub const MAX_LINE_BYTES: usize = crate::host_api::MAX_LINE_BYTES;

/// Shared buffer of one stream for one call.
#[derive(Clone)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    /// Kept lines, each ended by `\n` but perhaps the last, with their cut markers.
    text: Vec<u8>,
    /// Bytes `text` may hold.
    cap: usize,
    /// Bytes of the current line kept so far.
    line_len: usize,
    /// Bytes of the current line past `MAX_LINE_BYTES`.
    line_cut: u64,
    /// Bytes past `cap`.
    dropped: u64,
}

impl Captured {
    fn push(&mut self, mut data: &[u8]) {
        loop {
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.take(&data[..end]);
                    self.end_line(true);
                    data = &data[end + 1..];
                }
                None => {
                    self.take(data);
                    return;
                }
            }
        }
    }

    /// Keeps what fits of a piece of the current line.
    fn take(&mut self, piece: &[u8]) {
        let within_line = piece.len().min(MAX_LINE_BYTES - self.line_len);
        self.line_cut += (piece.len() - within_line) as u64;
        let kept = within_line.min(self.room());
        self.dropped += (within_line - kept) as u64;
        self.text.extend_from_slice(&piece[..kept]);
        self.line_len += kept;
    }

    /// Closes the current line: its cut marker, if it was cut, and its newline.
    fn end_line(&mut self, newline: bool) {
        if self.line_cut > 0 {
            let marker = format!(" [… {} more bytes of this line cut]", self.line_cut);
            if marker.len() <= self.room() {
                self.text.extend_from_slice(marker.as_bytes());
            } else {
                self.dropped += self.line_cut;
            }
        }
        if newline {
            if self.room() > 0 {
                self.text.push(b'\n');
            } else {
                self.dropped += 1;
            }
        }
        self.line_len = 0;
        self.line_cut = 0;
    }

    fn room(&self) -> usize {
        self.cap.saturating_sub(self.text.len())
    }

    /// The non-empty lines kept and the bytes dropped, then forgets both.
    fn take_lines(&mut self) -> (Vec<String>, u64) {
        self.end_line(false);
        let lines = String::from_utf8_lossy(&self.text)
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        let dropped = self.dropped;
        self.text.clear();
        self.dropped = 0;
        (lines, dropped)
    }
}

impl CapturedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                text: Vec::new(),
                cap,
                line_len: 0,
                line_cut: 0,
                dropped: 0,
            })),
        }
    }

    fn push(&self, data: &[u8]) {
        // A poisoned lock only means another writer panicked mid-push; the bytes are still fine.
        let mut captured = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        captured.push(data);
    }

    /// Writes what was captured to the log as `stream` of `plugin`, then forgets it.
    pub fn flush_to_log(&self, plugin: &str, stream: &'static str) {
        let (lines, dropped, cap) = {
            let mut captured = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let (lines, dropped) = captured.take_lines();
            (lines, dropped, captured.cap)
        };
        for line in &lines {
            let line = crate::text::escape_controls(line);
            tracing::info!(plugin, stream, "{line}");
        }
        if dropped > 0 {
            tracing::warn!(
                plugin,
                stream,
                dropped_bytes = dropped,
                cap_bytes = cap,
                "plugin output exceeded its cap for one call; the rest was dropped"
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: usize = 16 * 1024;

    #[test]
    fn a_gigantic_line_without_a_newline_keeps_its_start_and_a_marker_and_nothing_more() {
        let output = CapturedOutput::new(CAP);
        let chunk = vec![b'a'; 64 * 1024];
        // 64 MiB in the pieces a guest's writes arrive in.
        for _ in 0..1024 {
            output.push(&chunk);
            let held = output.inner.lock().map(|c| c.text.len()).unwrap_or(0);
            assert!(held <= CAP, "the host holds {held} bytes");
        }
        let (lines, dropped) = output
            .inner
            .lock()
            .map(|mut c| c.take_lines())
            .unwrap_or_default();
        assert_eq!(lines.len(), 1);
        let expected = format!(
            "{} [… {} more bytes of this line cut]",
            "a".repeat(MAX_LINE_BYTES),
            64 * 1024 * 1024 - MAX_LINE_BYTES
        );
        assert_eq!(lines[0], expected);
        assert_eq!(dropped, 0);
    }

    #[test]
    fn each_line_is_cut_on_its_own_and_the_call_cap_counts_what_it_drops() {
        let output = CapturedOutput::new(CAP);
        let long = format!("{}\nshort\n", "b".repeat(MAX_LINE_BYTES + 10));
        output.push(long.as_bytes());
        let (lines, _) = output
            .inner
            .lock()
            .map(|mut c| c.take_lines())
            .unwrap_or_default();
        assert_eq!(
            lines,
            [
                format!(
                    "{} [… 10 more bytes of this line cut]",
                    "b".repeat(MAX_LINE_BYTES)
                ),
                "short".to_owned()
            ]
        );

        let line = format!("{}\n", "c".repeat(1000));
        for _ in 0..100 {
            output.push(line.as_bytes());
        }
        let (kept, dropped) = output
            .inner
            .lock()
            .map(|c| (c.text.len(), c.dropped))
            .unwrap_or_default();
        assert_eq!(kept, CAP);
        assert_eq!(kept as u64 + dropped, 100 * 1001);
    }
}
