//! The runner's channel: length-prefixed, versioned frames of CBOR over the one socket a runner
//! inherits.
//!
//! A frame is `[length: u32 big-endian][version: u8][CBOR]`, the length counting the version
//! byte and the CBOR. Either side refuses a frame of another version or over its size limit,
//! and the daemon treats everything a runner sends as untrusted: sizes are checked before any
//! allocation, and what a runner answers is validated as if a plugin had answered it directly.

use std::collections::BTreeMap;
use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::PluginWorld;
use crate::error::CallError;
use crate::invoke::{Answer, Invocation};

/// The frame layout and message set this build speaks.
pub const VERSION: u8 = 1;

/// The largest frame the daemon sends (a component travels in one).
pub const MAX_TO_RUNNER: usize = 256 * 1024 * 1024;
/// The largest frame a runner may send: an HTTP request body, a `kv` value or an answer, and
/// the 8 MiB of hostcall fuel bounds each of them well below this.
pub const MAX_FROM_RUNNER: usize = 16 * 1024 * 1024;

/// What the daemon sends a runner.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToRunner {
    /// The first frame after the runner says it is confined: the plugin it serves.
    Start(Box<Start>),
    Call {
        call: u64,
        invocation: Invocation,
        /// Unix seconds the plugin's wall clock reads, when an author's test fixes it.
        wall_clock: Option<u64>,
    },
    /// The answer to a runner's `Host` request.
    Reply { request: u64, reply: HostReply },
}

/// The plugin a runner serves, and the limits of its calls.
#[derive(Serialize, Deserialize)]
pub struct Start {
    pub plugin: String,
    pub world: PluginWorld,
    /// The component as the daemon compiled it, in an engine configured as the runner's.
    #[serde(with = "serde_bytes")]
    pub artifact: Vec<u8>,
    /// That plugin's settings, and no other's.
    pub settings: BTreeMap<String, String>,
    pub memory_bytes: usize,
    pub timeout_ms: u64,
}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Start")
            .field("plugin", &self.plugin)
            .field("world", &self.world)
            .field("artifact_bytes", &self.artifact.len())
            .finish_non_exhaustive()
    }
}

/// What a runner sends the daemon.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FromRunner {
    /// Sent once the lockdown is complete, before any plugin byte is read.
    Confined(Confinement),
    /// The component compiled and linked; calls may come.
    Ready,
    /// The runner cannot serve; it exits after this.
    Failed { reason: String },
    /// A capability the guest of call `call` asked for, which the daemon performs.
    Host {
        call: u64,
        request: u64,
        ask: HostRequest,
    },
    /// A line of the plugin's log or output, or of the runner's own.
    Log { level: LogLevel, text: String },
    Done {
        call: u64,
        outcome: Result<Answer, CallError>,
    },
}

/// What the runner's lockdown achieved, as the operator's status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Confinement {
    /// `PR_SET_NO_NEW_PRIVS`, the descriptors closed and the resource limits set.
    pub no_new_privs: bool,
    /// The Landlock ABI enforced (no filesystem access at all), or `None`.
    pub landlock_abi: Option<u8>,
    /// Whether the runner is in a network namespace of its own, with no interfaces.
    pub network_namespace: bool,
    /// Whether the seccomp allow-list is in force.
    pub seccomp: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// A capability a runner asks the daemon for.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostRequest {
    KvGet {
        key: String,
    },
    KvSet {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    KvDelete {
        key: String,
    },
    KvList {
        prefix: String,
        limit: u32,
    },
    Http(HttpRequest),
}

/// An outgoing request, whole.
#[derive(Debug, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, Vec<u8>)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
}

/// A response, whole.
#[derive(Debug, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// The daemon's answer to a `HostRequest`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostReply {
    Kv(Result<KvAnswer, KvRefusal>),
    Http(Result<HttpResponse, HttpFailure>),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KvAnswer {
    Value(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    Stored,
    Deleted,
    Keys(Vec<String>),
}

/// The `kv` interface's own errors, as the guest sees them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KvRefusal {
    InvalidKey(String),
    QuotaExceeded(String),
    Unavailable(String),
}

/// Why an outgoing request failed, in `wasi:http`'s terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpFailure {
    Denied,
    DestinationIpProhibited,
    DestinationNotFound,
    DnsTimeout,
    DnsError,
    ConnectionRefused,
    ConnectionTimeout,
    ConnectionReadTimeout,
    ResponseTooLarge { limit: Option<u64> },
    Tls,
    Other { detail: String },
}

/// One frame holding `message`.
pub fn encode<T: Serialize>(message: &T) -> io::Result<Vec<u8>> {
    let mut frame = vec![0, 0, 0, 0, VERSION];
    ciborium::into_writer(message, &mut frame).map_err(io::Error::other)?;
    let length = u32::try_from(frame.len() - 4).map_err(io::Error::other)?;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    Ok(frame)
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(
    writer: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> io::Result<()> {
    writer.write_all(&encode(message)?).await?;
    writer.flush().await
}

/// Reads one frame of at most `max` bytes; `None` at a clean end of the stream.
pub async fn read_frame<T: DeserializeOwned>(
    reader: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> io::Result<Option<T>> {
    let mut length = [0; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length == 0 || length > max {
        return Err(malformed(format!(
            "a frame of {length} bytes (the limit is {max})"
        )));
    }
    let mut frame = vec![0; length];
    reader.read_exact(&mut frame).await?;
    if frame[0] != VERSION {
        return Err(malformed(format!(
            "protocol version {} (this build speaks {VERSION})",
            frame[0]
        )));
    }
    ciborium::from_reader(&frame[1..])
        .map(Some)
        .map_err(|err| malformed(format!("an unreadable frame: {err}")))
}

fn malformed(detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail)
}
