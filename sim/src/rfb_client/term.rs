//! A termproxy client: the `<user>:<ticket>\n` preamble and its `OK`, input, resize and ping
//! messages, and reading the terminal's output until an expected text shows up.

use super::RfbError;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

pub struct TermClient<S> {
    stream: S,
    /// Output read but not yet consumed by `read_until`.
    output: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TermClient<S> {
    /// Sends the preamble and waits for `OK`.
    pub async fn connect(mut stream: S, user: &str, ticket: &str) -> Result<Self, RfbError> {
        stream
            .write_all(format!("{user}:{ticket}\n").as_bytes())
            .await?;
        stream.flush().await?;
        let mut output = Vec::new();
        let mut chunk = [0u8; 1024];
        while output.len() < 2 {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(RfbError::Refused(
                    "termproxy closed the connection after the preamble".into(),
                ));
            }
            output.extend_from_slice(&chunk[..read]);
        }
        if !output.starts_with(b"OK") {
            return Err(RfbError::Protocol(format!(
                "termproxy answered {:?}",
                String::from_utf8_lossy(&output)
            )));
        }
        output.drain(..2);
        Ok(Self { stream, output })
    }

    /// Types `text` (`\r` is Enter).
    pub async fn send_input(&mut self, text: &str) -> Result<(), RfbError> {
        self.send(&format!("0:{}:{text}", text.len())).await
    }

    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), RfbError> {
        self.send(&format!("1:{cols}:{rows}:")).await
    }

    pub async fn ping(&mut self) -> Result<(), RfbError> {
        self.send("2").await
    }

    /// Reads until the output contains `needle`; returns everything up to and including it.
    pub async fn read_until(&mut self, needle: &str) -> Result<String, RfbError> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(at) = find(&self.output, needle.as_bytes()) {
                let taken: Vec<u8> = self.output.drain(..at + needle.len()).collect();
                return Ok(String::from_utf8_lossy(&taken).into_owned());
            }
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(RfbError::Protocol(format!(
                    "terminal closed before {needle:?}; got {:?}",
                    String::from_utf8_lossy(&self.output)
                )));
            }
            self.output.extend_from_slice(&chunk[..read]);
        }
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    async fn send(&mut self, message: &str) -> Result<(), RfbError> {
        self.stream.write_all(message.as_bytes()).await?;
        self.stream.flush().await?;
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
